//! Writing a new post to Redis.
//!
//! Order matters for crash safety: the image variants (bytes, ETags, sizes) go first (content-addressed, so a retry
//! rewrites the same bytes), then the id, then one `post` script call that makes the post
//! visible everywhere at once (record, feed indexes, stream entry, `post_event`). A crash
//! before that script leaves at most an unreferenced image, never a post without its image.

use edge_kit::EdgeError;
use edge_kit::redis::{Arg, Redis, int_at};
use likes_core::PostId;
use likes_core::api::{Post, User};
use likes_core::keys::{self, image_field};
use likes_core::scripts::{self, PostCall};
use likes_images::Processed;

/// Stores `image` and a post of it by `author`; returns the post as created.
pub fn save(
    redis: &Redis,
    author: &User,
    caption: &str,
    image: &Processed,
    created_at: &str,
) -> Result<Post, EdgeError> {
    let image_id = image.image_id();
    // The sizes travel with the bytes, so the sync daemon copies them instead of decoding.
    let [full_width, full_height, thumb_width, thumb_height] = [
        image.full.width,
        image.full.height,
        image.thumb.width,
        image.thumb.height,
    ]
    .map(|n| n.to_string());
    redis.cmd_bytes(
        "HSET",
        &[
            keys::image_key(image_id).as_bytes(),
            image_field::FULL.as_bytes(),
            &image.full.bytes,
            image_field::FULL_ETAG.as_bytes(),
            image.full.hash.as_bytes(),
            image_field::FULL_WIDTH.as_bytes(),
            full_width.as_bytes(),
            image_field::FULL_HEIGHT.as_bytes(),
            full_height.as_bytes(),
            image_field::THUMB.as_bytes(),
            &image.thumb.bytes,
            image_field::THUMB_ETAG.as_bytes(),
            image.thumb.hash.as_bytes(),
            image_field::THUMB_WIDTH.as_bytes(),
            thumb_width.as_bytes(),
            image_field::THUMB_HEIGHT.as_bytes(),
            thumb_height.as_bytes(),
        ],
    )?;
    // The script refuses an id that already holds a post, which only happens when the sequence
    // fell behind the data (a Redis restored without `{posts}:seq`); the next id is then tried.
    for _ in 0..MAX_ID_ATTEMPTS {
        let id = int_at(&redis.cmd("INCR", &[Arg::Str(keys::POST_SEQ)])?, 0)?;
        let post = u64::try_from(id)
            .ok()
            .and_then(PostId::new)
            .ok_or_else(|| EdgeError::Internal(anyhow::anyhow!("post sequence returned {id}")))?;
        let call = PostCall {
            post,
            author,
            caption,
            image: image_id,
            width: image.full.width,
            height: image.full.height,
            created_at,
        };
        let (keys, args) = (call.keys(), call.args());
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let args: Vec<Arg<'_>> = args.iter().map(|a| Arg::Str(a)).collect();
        if int_at(&redis.eval(&scripts::POST, &keys, &args)?, 0)? == 1 {
            let mut post = call.announcement();
            post.liked_by_me = Some(false);
            return Ok(post);
        }
    }
    Err(EdgeError::Internal(anyhow::anyhow!(
        "{MAX_ID_ATTEMPTS} post ids in a row were taken: `{}` is behind the data",
        keys::POST_SEQ
    )))
}

/// How many taken ids an upload skips before giving up.
const MAX_ID_ATTEMPTS: u32 = 16;
