//! One post in the feed: author, the thumbnail in a box of the image's own aspect ratio (no
//! layout jump while it loads), the heart, "liked by …" and the caption. A double tap on the
//! image likes; a single tap opens the full image. The count stays live while the card is on
//! screen.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use likes_core::PostId;
use yew::prelude::*;

use super::heart::Heart;
use super::viewer::Viewer;
use crate::hooks::use_live_counts;
use crate::state::FeedItem;
use crate::text;

/// Two taps closer than this are a double tap.
const DOUBLE_TAP_MS: f64 = 300.0;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub item: FeedItem,
    /// The signed-in person's name (for "liked by you").
    pub me: AttrValue,
    /// `(post, liked)`: the person wants `post` liked or not.
    pub onlike: Callback<(PostId, bool)>,
}

#[function_component(PostCard)]
pub fn post_card(props: &Props) -> Html {
    let item = &props.item;
    let post = &item.post;
    let node = use_node_ref();
    use_live_counts(node.clone(), post.id);

    let viewing = use_state(|| false);
    let burst = use_state(|| false);
    let last_tap = use_mut_ref(|| 0.0_f64);
    let single_tap: Rc<RefCell<Option<Timeout>>> = use_mut_ref(|| None);

    let liked = item.shown_liked();
    let likes = item.shown_likes();
    let id = post.id;

    let toggle = {
        let onlike = props.onlike.clone();
        Callback::from(move |()| onlike.emit((id, !liked)))
    };
    let on_image = {
        let onlike = props.onlike.clone();
        let viewing = viewing.clone();
        let burst = burst.clone();
        move |_: MouseEvent| {
            let now = js_sys::Date::now();
            let previous = std::mem::replace(&mut *last_tap.borrow_mut(), now);
            if now - previous < DOUBLE_TAP_MS {
                single_tap.borrow_mut().take();
                *last_tap.borrow_mut() = 0.0;
                // A double tap only ever likes, as in the apps people know.
                if !liked {
                    onlike.emit((id, true));
                }
                burst.set(true);
                let burst = burst.clone();
                Timeout::new(700, move || burst.set(false)).forget();
            } else {
                let viewing = viewing.clone();
                *single_tap.borrow_mut() = Some(Timeout::new(DOUBLE_TAP_MS as u32, move || {
                    viewing.set(true)
                }));
            }
        }
    };

    let me_liking = liked.then_some(props.me.as_str());
    let drop_me = (item.liked_at_load && !liked).then_some(props.me.as_str());
    let liked_by = text::liked_by(&post.recent_likers, likes, me_liking, drop_me);
    let age_secs = js_sys::Date::parse(&post.created_at);
    let age =
        (!age_secs.is_nan()).then(|| text::age(((js_sys::Date::now() - age_secs) / 1000.0) as i64));
    let alt = if post.caption.is_empty() {
        format!("Photo by {}", post.author.name)
    } else {
        format!("Photo by {}: {}", post.author.name, post.caption)
    };
    let (w, h) = (post.image.width.max(1), post.image.height.max(1));
    let (rw, rh) = text::frame_ratio(w, h);

    html! {
        <article class="post" ref={node} data-post={post.id.to_string()} aria-label={format!("Post by {}", post.author.name)}>
            <header class="post-head">
                <span class="avatar" aria-hidden="true">
                    { post.author.name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default() }
                </span>
                <span class="author">{ &post.author.name }</span>
                if let Some(age) = age {
                    <time datetime={post.created_at.clone()}>{ age }</time>
                }
            </header>
            <div class="frame" style={format!("aspect-ratio: {rw} / {rh}")} onclick={on_image}>
                <img src={post.image.thumb_url.clone()} alt={alt.clone()}
                    width={w.to_string()} height={h.to_string()} loading="lazy" decoding="async" />
                if *burst {
                    <span class="burst" aria-hidden="true">{ "♥" }</span>
                }
            </div>
            <div class="actions">
                <Heart {liked} {likes} ontoggle={toggle} />
                <button type="button" class="open" onclick={{
                    let viewing = viewing.clone();
                    move |_| viewing.set(true)
                }}>{ "View full image" }</button>
            </div>
            if let Some(line) = liked_by {
                <p class="liked-by" data-testid="liked-by">{ line }</p>
            }
            if !post.caption.is_empty() {
                <p class="caption"><strong>{ &post.author.name }</strong>{ " " }{ &post.caption }</p>
            }
            if *viewing {
                <Viewer src={post.image.full_url.clone()} alt={alt} width={w} height={h}
                    onclose={{ let viewing = viewing.clone(); move |()| viewing.set(false) }} />
            }
        </article>
    }
}
