//! `use_live_counts`: keeps a post's count live while its card is on screen.

use likes_core::PostId;
use yew::prelude::*;

use super::use_on_visible;
use crate::realtime::RealtimeHandle;

/// Subscribes to `post` at the hub while `node` is in view (with a margin, so counts are
/// already live when the card scrolls in), and unsubscribes when it leaves or unmounts.
/// Updates arrive as reducer actions through the realtime provider.
#[hook]
pub fn use_live_counts(node: NodeRef, post: PostId) {
    let realtime = use_context::<RealtimeHandle>().unwrap_or_default();
    let visible = use_state(|| false);
    {
        let visible = visible.clone();
        use_on_visible(node, 200, Callback::from(move |v: bool| visible.set(v)));
    }
    use_effect_with((realtime, *visible, post), |(realtime, visible, post)| {
        // Subscribed only while visible; the cleanup undoes exactly what this run did.
        let subscribed = realtime.0.clone().filter(|_| *visible);
        if let Some(rt) = &subscribed {
            rt.subscribe(*post);
        }
        let post = *post;
        move || {
            if let Some(rt) = subscribed {
                rt.unsubscribe(post);
            }
        }
    });
}
