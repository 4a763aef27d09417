//! `use_on_visible`: calls back when an element scrolls into (or out of) view, through one
//! `IntersectionObserver` per element.

use wasm_bindgen::prelude::*;
use web_sys::{IntersectionObserver, IntersectionObserverEntry, IntersectionObserverInit};
use yew::prelude::*;

/// Observes `node` and calls `on_change(true)` when it enters the viewport grown by
/// `margin_px` on every side, `on_change(false)` when it leaves. The observer is disconnected
/// when the component unmounts.
#[hook]
pub fn use_on_visible(node: NodeRef, margin_px: u32, on_change: Callback<bool>) {
    use_effect_with(node, move |node| {
        let observer = node.cast::<web_sys::Element>().and_then(|element| {
            let callback =
                Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
                    // Only the latest entry for the element matters when several queued up.
                    if let Some(entry) = entries
                        .iter()
                        .last()
                        .map(JsCast::unchecked_into::<IntersectionObserverEntry>)
                    {
                        on_change.emit(entry.is_intersecting());
                    }
                });
            let init = IntersectionObserverInit::new();
            init.set_root_margin(&format!("{margin_px}px 0px"));
            let observer =
                IntersectionObserver::new_with_options(callback.as_ref().unchecked_ref(), &init)
                    .ok()?;
            observer.observe(&element);
            Some((observer, callback))
        });
        move || {
            if let Some((observer, _callback)) = observer {
                observer.disconnect();
            }
        }
    });
}
