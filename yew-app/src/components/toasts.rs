//! Small messages at the bottom of the screen (a like that failed, a session that expired),
//! announced politely to screen readers and dismissed after a few seconds or on tap.

use gloo_timers::callback::Timeout;
use yew::prelude::*;

use crate::state::Action;
use crate::store::AppContext;

const SHOWN_MS: u32 = 4_000;

#[function_component(Toasts)]
pub fn toasts() -> Html {
    let store = use_context::<AppContext>().expect("inside the store");
    let newest = store.0.toasts.last().map(|t| t.id);
    {
        let dispatcher = store.dispatcher();
        use_effect_with(newest, move |newest| {
            let timer = newest.map(|id| {
                Timeout::new(SHOWN_MS, move || {
                    dispatcher.dispatch(Action::ToastDismissed(id))
                })
            });
            move || drop(timer)
        });
    }
    html! {
        <div class="toasts" role="status" aria-live="polite">
            { for store.0.toasts.iter().map(|t| {
                let id = t.id;
                let dispatcher = store.dispatcher();
                html! {
                    <button key={id} class="toast" type="button"
                        onclick={move |_| dispatcher.dispatch(Action::ToastDismissed(id))}>
                        { &t.text }
                    </button>
                }
            }) }
        </div>
    }
}
