//! Pick a display name and you are in: the server makes a user and a token, which stays on
//! this device until you sign out.

use likes_core::api::{DisplayName, MAX_NAME_CHARS, NameError};
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::state::{Action, Session};
use crate::store::{AppContext, store_session};
use crate::text;

#[function_component(SignInPage)]
pub fn sign_in_page() -> Html {
    let store = use_context::<AppContext>().expect("inside the store");
    let input = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);

    let onsubmit = {
        let input = input.clone();
        let error = error.clone();
        let busy = busy.clone();
        move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let raw = input
                .cast::<HtmlInputElement>()
                .map(|i| i.value())
                .unwrap_or_default();
            // The same rule as the server's, checked here so the person hears it at once.
            let name = match DisplayName::parse(&raw) {
                Ok(n) => n.as_str().to_owned(),
                Err(NameError::Empty) => return error.set(Some("Enter a name.".into())),
                Err(e) => return error.set(Some(format!("That name won't do: {e}."))),
            };
            busy.set(true);
            error.set(None);
            let (store, error, busy) = (store.clone(), error.clone(), busy.clone());
            spawn_local(async move {
                match api::sign_in(&name).await {
                    Ok(r) => {
                        let session = Session {
                            token: r.token,
                            user: r.user,
                        };
                        store_session(Some(&session));
                        store.dispatch(Action::SignedIn(session));
                    }
                    Err(e) => {
                        busy.set(false);
                        error.set(Some(text::generic(e.status, e.problem.as_ref())));
                    }
                }
            });
        }
    };

    html! {
        <main class="sign-in">
            <h1 class="brand">{ "likes" }</h1>
            <p class="lead">{ "Share photos. See the hearts arrive as they happen." }</p>
            <form {onsubmit} novalidate=true>
                <label for="name">{ "Your display name" }</label>
                <input id="name" ref={input} name="name" type="text" autocomplete="nickname"
                    maxlength={MAX_NAME_CHARS.to_string()} required=true
                    aria-invalid={error.is_some().to_string()}
                    aria-describedby={error.is_some().then_some("name-error")} />
                if let Some(msg) = (*error).clone() {
                    <p id="name-error" class="error" role="alert">{ msg }</p>
                }
                <button type="submit" class="primary" disabled={*busy}>
                    { if *busy { "Signing in…" } else { "Continue" } }
                </button>
            </form>
        </main>
    }
}
