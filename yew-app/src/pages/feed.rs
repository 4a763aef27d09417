//! The feed: `new` and `top` tabs, infinite scroll over the cursor API, live counts, the
//! "1 new post" pill, and likes with an optimistic heart that rolls back on error.

use std::cell::Cell;

use likes_core::PostId;
use likes_core::api::FeedSort;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::connection::ConnectionBadge;
use crate::components::post_card::PostCard;
use crate::hooks::use_on_visible;
use crate::nav::Screen;
use crate::state::{Action, Connection};
use crate::store::{AppContext, store_session};
use crate::text;

thread_local! {
    /// Numbers like requests so only the newest answer settles a heart.
    static LIKE_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// How far below the screen the end of the list starts loading the next page.
const PREFETCH_PX: u32 = 800;

/// Whether `node` is on screen or within [`PREFETCH_PX`] below it.
fn is_near(node: &NodeRef) -> bool {
    let (Some(el), Some(window)) = (node.cast::<web_sys::Element>(), web_sys::window()) else {
        return false;
    };
    let height = window
        .inner_height()
        .ok()
        .and_then(|h| h.as_f64())
        .unwrap_or(0.0);
    el.get_bounding_client_rect().top() < height + f64::from(PREFETCH_PX)
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub go: Callback<Screen>,
    /// Whether this server has a load lab (then the header links to it).
    pub lab: bool,
}

#[function_component(FeedPage)]
pub fn feed_page(props: &Props) -> Html {
    let store = use_context::<AppContext>().expect("inside the store");
    let state = &store.0;
    let token = state.session.as_ref().map(|s| s.token.clone());
    let me: AttrValue = state
        .session
        .as_ref()
        .map(|s| s.user.name.clone())
        .unwrap_or_default()
        .into();

    // Fetch a page whenever the end of the list is near and there is more to fetch.
    let sentinel = use_node_ref();
    let near_end = use_state(|| false);
    {
        let near_end = near_end.clone();
        use_on_visible(
            sentinel.clone(),
            PREFETCH_PX,
            Callback::from(move |v: bool| near_end.set(v)),
        );
    }
    {
        let store = store.clone();
        let sentinel = sentinel.clone();
        let deps = (
            state.generation,
            *near_end,
            state.wants_more(),
            state.items.len(),
        );
        use_effect_with(deps, move |&(generation, near_end, wants_more, _)| {
            // The observer's last word may predate the page just rendered: measure now.
            if near_end && wants_more && is_near(&sentinel) {
                let state = &store.0;
                let (sort, cursor) = (state.sort, state.next_cursor.clone());
                let token = state.session.as_ref().map(|s| s.token.clone());
                store.dispatch(Action::PageRequested { generation });
                let store = store.clone();
                spawn_local(async move {
                    let action = match api::feed(token.as_deref(), sort, cursor.as_deref()).await {
                        Ok(page) => Action::PageLoaded { generation, page },
                        Err(e) => Action::PageFailed {
                            generation,
                            message: format!(
                                "Couldn't load the feed. {}",
                                text::generic(e.status, e.problem.as_ref())
                            ),
                        },
                    };
                    store.dispatch(action);
                });
            }
        });
    }

    // Back after a disconnect: the `posts:created` events of the gap went nowhere, so the
    // newest page is fetched and what is new joins the pill.
    let last_connection = use_mut_ref(|| state.connection);
    {
        let store = store.clone();
        use_effect_with(state.connection, move |&now| {
            let before = std::mem::replace(&mut *last_connection.borrow_mut(), now);
            let state = &store.0;
            if before == Connection::Reconnecting
                && now == Connection::Live
                && state.sort == FeedSort::New
                && state.started
            {
                let token = state.session.as_ref().map(|s| s.token.clone());
                let store = store.clone();
                spawn_local(async move {
                    if let Ok(page) = api::feed(token.as_deref(), FeedSort::New, None).await {
                        store.dispatch(Action::CaughtUp(page.posts));
                    }
                });
            }
        });
    }

    let onlike = {
        let store = store.clone();
        Callback::from(move |(post, liked): (PostId, bool)| {
            let Some(token) = token.clone() else { return };
            let seq = LIKE_SEQ.with(|s| {
                s.set(s.get() + 1);
                s.get()
            });
            store.dispatch(Action::LikeSent { post, liked, seq });
            let store = store.clone();
            spawn_local(async move {
                match api::set_like(&token, post, liked).await {
                    Ok(response) => store.dispatch(Action::LikeConfirmed { seq, response }),
                    Err(e) => {
                        store.dispatch(Action::LikeFailed {
                            post,
                            seq,
                            message: text::like_error(liked, e.status, e.problem.as_ref()),
                        });
                        // The token expired or the secret changed: back to the sign-in page.
                        if e.status == 401 {
                            store_session(None);
                            store.dispatch(Action::SignedOut);
                        }
                    }
                }
            });
        })
    };

    let tab = |sort: FeedSort, label: &'static str| {
        let selected = state.sort == sort;
        let store = store.clone();
        html! {
            <button type="button" role="tab" aria-selected={selected.to_string()}
                class={classes!("tab", selected.then_some("on"))}
                onclick={move |_| store.dispatch(Action::SortSelected(sort))}>
                { label }
            </button>
        }
    };
    let sign_out = {
        let store = store.clone();
        move |_| {
            store_session(None);
            store.dispatch(Action::SignedOut);
        }
    };
    let show_new = {
        let store = store.clone();
        move |_| {
            store.dispatch(Action::IncomingShown);
            if let Some(w) = web_sys::window() {
                w.scroll_to_with_x_and_y(0.0, 0.0);
            }
        }
    };
    let retry = {
        let store = store.clone();
        move |_| store.dispatch(Action::Retry)
    };
    let go = props.go.clone();
    let to_lab = {
        let go = props.go.clone();
        move |_| go.emit(Screen::Lab)
    };

    html! {
        <>
        <header class="bar">
            <h1 class="brand">{ "likes" }</h1>
            <ConnectionBadge state={state.connection} />
            <span class="spacer"></span>
            if props.lab {
                <button type="button" class="quiet small" onclick={to_lab}>{ "Lab" }</button>
            }
            <button type="button" class="primary small" onclick={move |_| go.emit(Screen::Upload)}>
                { "New post" }
            </button>
            <button type="button" class="quiet small" onclick={sign_out}
                aria-label={format!("Sign out {me}")}>{ "Sign out" }</button>
        </header>
        <nav class="tabs" role="tablist" aria-label="Feed order">
            { tab(FeedSort::New, "New") }
            { tab(FeedSort::Top, "Top") }
        </nav>
        if !state.incoming.is_empty() {
            <button type="button" class="pill" onclick={show_new}>
                { format!("↑ {}", text::new_posts(state.incoming.len())) }
            </button>
        }
        <main class="feed" aria-busy={state.loading.to_string()}>
            { for state.items.iter().map(|item| html! {
                <PostCard key={item.post.id.to_string()} item={item.clone()} me={me.clone()} onlike={onlike.clone()} />
            }) }
            if state.loading {
                <p class="note" role="status">{ "Loading…" }</p>
            }
            if let Some(err) = &state.load_error {
                <div class="note" role="alert">
                    <p>{ err }</p>
                    <button type="button" class="quiet" onclick={retry}>{ "Try again" }</button>
                </div>
            }
            if state.started && !state.loading && state.load_error.is_none() && state.items.is_empty() {
                <p class="note">{ "No posts yet. Be the first!" }</p>
            }
            if state.started && !state.loading && state.next_cursor.is_none() && !state.items.is_empty() {
                <p class="note end">{ "You're all caught up." }</p>
            }
            <div ref={sentinel} class="sentinel" aria-hidden="true"></div>
        </main>
        </>
    }
}
