//! The realtime hub's `subscribe`/`unsubscribe` payload (`realtime::parse_posts`) on arbitrary
//! JSON, as socketioxide hands it over.
//!
//! Properties: the payload is accepted exactly when it carries a list of valid post ids (an
//! independent oracle); the result is that list without repeats, in first-seen order; it
//! survives being sent again; every post's room name parses back to the post.

use likes_core::PostId;
use likes_core::api::realtime::{self, PostsRequest};
use serde_json::Value;

pub fn run(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let expected = oracle(&payload);
    let parsed = realtime::parse_posts(payload);
    assert_eq!(parsed.as_ref().ok(), expected.as_ref(), "{parsed:?}");
    let Ok(posts) = parsed else { return };
    let again = serde_json::to_value(PostsRequest {
        posts: posts.clone(),
    })
    .expect("serialises");
    assert_eq!(realtime::parse_posts(again).ok().as_ref(), Some(&posts));
    for post in &posts {
        assert_eq!(post.to_string().parse::<PostId>().ok(), Some(*post));
    }
}

/// `{"posts": [ids], …}`, or the same struct as a one-element array (serde accepts a struct
/// as the sequence of its fields): the ids, deduplicated; `None` for anything else.
fn oracle(payload: &Value) -> Option<Vec<PostId>> {
    let list = match payload {
        Value::Object(map) => map.get("posts")?,
        Value::Array(fields) if fields.len() == 1 => &fields[0],
        _ => return None,
    };
    let mut out: Vec<PostId> = Vec::new();
    for id in list.as_array()? {
        let id: PostId = id.as_str()?.parse().ok()?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Some(out)
}
