//! The root component: it holds the store (`store.rs`), loads the client configuration, and
//! shows the page for the current screen (`nav.rs`).

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::toasts::Toasts;
use crate::nav::{Screen, navigate, path, screen_at};
use crate::pages::{feed::FeedPage, lab::LabPage, sign_in::SignInPage, upload::UploadPage};
use crate::realtime::RealtimeProvider;
use crate::state::{Action, AppState};
use crate::store::{AppContext, Store, store_session, stored_session};

#[function_component(App)]
pub fn app() -> Html {
    let store = use_reducer(|| {
        // The stored session is used at once (no flash of the sign-in page); `/api/me`
        // confirms it below and signs out if the server no longer accepts it.
        let mut state = AppState::default();
        if let Some(session) = stored_session() {
            state = state.reduce(Action::SignedIn(session));
        }
        Store(state)
    });
    let screen = use_state(|| screen_at(&path()));
    let realtime_url = use_state(|| None::<AttrValue>);
    // `None` until `/api/config` answers; then the lab's URL, if this server has a lab.
    let lab_url = use_state(|| None::<Option<AttrValue>>);
    // The key the lab asks of every connection, from the same answer.
    let lab_key = use_state(|| None::<AttrValue>);

    {
        let store = store.clone();
        let realtime_url = realtime_url.clone();
        let lab_url = lab_url.clone();
        let lab_key = lab_key.clone();
        use_effect_with((), move |_| {
            if let Some(session) = store.0.session.clone() {
                let store = store.clone();
                spawn_local(async move {
                    if let Err(e) = api::me(&session.token).await
                        && e.status == 401
                    {
                        store_session(None);
                        store.dispatch(Action::SignedOut);
                        store.dispatch(Action::ToastShown(
                            "Your session has expired. Sign in again.".into(),
                        ));
                    }
                });
            }
            spawn_local(async move {
                match api::config().await {
                    Ok(config) => {
                        realtime_url.set(Some(config.realtime_url.into()));
                        lab_key.set(config.lab_key.map(Into::into));
                        lab_url.set(Some(
                            config.lab_url.filter(|u| !u.is_empty()).map(Into::into),
                        ));
                    }
                    Err(_) => {
                        lab_url.set(Some(None));
                        store.dispatch(Action::ToastShown(
                            "Live updates are unavailable; counts refresh when you reload.".into(),
                        ));
                    }
                }
            });
        });
    }

    // The network is back: retry a feed page that failed while it was gone (the socket
    // reconnects by itself).
    {
        let dispatcher = store.dispatcher();
        use_effect_with((), move |_| {
            let listener = web_sys::window().map(|w| {
                gloo_events::EventListener::new(&w, "online", move |_| {
                    dispatcher.dispatch(Action::Retry)
                })
            });
            move || drop(listener)
        });
    }

    // Back and Forward between the feed and the lab.
    {
        let screen = screen.clone();
        use_effect_with((), move |_| {
            let listener = web_sys::window().map(|w| {
                gloo_events::EventListener::new(&w, "popstate", move |_| {
                    screen.set(screen_at(&path()))
                })
            });
            move || drop(listener)
        });
    }

    let go = {
        let screen = screen.clone();
        Callback::from(move |s: Screen| {
            navigate(s);
            screen.set(s);
        })
    };
    let signed_in = store.0.session.is_some();
    let has_lab = matches!(*lab_url, Some(Some(_)));
    let page = match (signed_in, *screen) {
        (_, Screen::Lab) => html! {
            <LabPage url={(*lab_url).clone()} lab_key={(*lab_key).clone()} go={go.clone()} />
        },
        (false, _) => html! { <SignInPage /> },
        (true, Screen::Feed) => html! { <FeedPage go={go.clone()} lab={has_lab} /> },
        (true, Screen::Upload) => html! { <UploadPage go={go.clone()} /> },
    };
    html! {
        <ContextProvider<AppContext> context={store}>
            <RealtimeProvider url={if signed_in { (*realtime_url).clone() } else { None }}>
                { page }
                <Toasts />
            </RealtimeProvider>
        </ContextProvider<AppContext>>
    }
}
