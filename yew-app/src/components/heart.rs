//! The like button: a real toggle button whose name stays "Like" while `aria-pressed` carries
//! the state (what screen readers expect of a toggle), with the count beside it.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub liked: bool,
    pub likes: u64,
    pub ontoggle: Callback<()>,
}

#[function_component(Heart)]
pub fn heart(props: &Props) -> Html {
    let onclick = {
        let ontoggle = props.ontoggle.clone();
        move |_| ontoggle.emit(())
    };
    html! {
        <span class="like">
            <button type="button" class={classes!("heart", props.liked.then_some("on"))}
                aria-pressed={props.liked.to_string()} aria-label="Like" {onclick}>
                <svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true">
                    <path d="M12 21s-7.5-4.6-9.6-9.3C.9 8.2 3 4.5 6.6 4.5c2.1 0 3.6 1.2 4.4 2.5.8-1.3 2.3-2.5 4.4-2.5 3.6 0 5.7 3.7 4.2 7.2C19.5 16.4 12 21 12 21z"/>
                </svg>
            </button>
            <span class="count" data-testid="likes" aria-label={crate::text::count(props.likes, "like", "likes")}>
                { props.likes }
            </span>
        </span>
    }
}
