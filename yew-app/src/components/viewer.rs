//! The full-size image, over everything, closed by its button, a tap or Escape.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub src: AttrValue,
    pub alt: AttrValue,
    pub width: u32,
    pub height: u32,
    pub onclose: Callback<()>,
}

#[function_component(Viewer)]
pub fn viewer(props: &Props) -> Html {
    let close_ref = use_node_ref();
    {
        // Focus moves into the dialog so keyboard and screen-reader users land on it.
        let close_ref = close_ref.clone();
        use_effect_with((), move |_| {
            if let Some(b) = close_ref.cast::<web_sys::HtmlElement>() {
                let _ = b.focus();
            }
        });
    }
    let close = {
        let onclose = props.onclose.clone();
        move |_: MouseEvent| onclose.emit(())
    };
    let onkeydown = {
        let onclose = props.onclose.clone();
        move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                onclose.emit(());
            }
        }
    };
    html! {
        <div class="viewer" role="dialog" aria-modal="true" aria-label="Full image"
            onclick={close.clone()} {onkeydown}>
            <img src={props.src.clone()} alt={props.alt.clone()}
                width={props.width.to_string()} height={props.height.to_string()} />
            <button ref={close_ref} type="button" class="close" onclick={close}>{ "Close" }</button>
        </div>
    }
}
