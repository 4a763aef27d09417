//! The stream-entry decoder (`StreamEvent::decode`, what the sync daemon runs on every entry)
//! on arbitrary field lists, written one `name=value` per line.
//!
//! Properties: a decoded event encoded with exactly the documented fields (`LIKE_FIELDS`,
//! `USER_FIELDS`, `POST_FIELDS`, in their order) decodes to the same event; fields the decoder
//! does not know, repeated fields after the first and the order of fields change nothing;
//! errors name what is wrong (a missing field is absent, a refused version is not ours, a kind
//! is quoted at most 32 characters long).

use likes_core::events::{
    EventError, LIKE_FIELDS, POST_FIELDS, SCHEMA_VERSION, StreamEvent, USER_FIELDS,
};

type Fields = Vec<(String, Vec<u8>)>;

pub fn run(data: &[u8]) {
    let fields: Fields = data
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| match line.iter().position(|&b| b == b'=') {
            Some(i) => (
                String::from_utf8_lossy(&line[..i]).into_owned(),
                line[i + 1..].to_vec(),
            ),
            None => (String::from_utf8_lossy(line).into_owned(), Vec::new()),
        })
        .collect();
    let decoded = StreamEvent::decode(&fields);

    let mut extended = fields.clone();
    extended.push(("v2_field".into(), b"from a later schema".to_vec()));
    extended.extend(fields.iter().cloned());
    assert_eq!(
        StreamEvent::decode(&extended),
        decoded,
        "extra fields changed it"
    );

    let mut first_only: Fields = Vec::new();
    for (k, v) in &fields {
        if !first_only.iter().any(|(seen, _)| seen == k) {
            first_only.push((k.clone(), v.clone()));
        }
    }
    first_only.reverse();
    assert_eq!(
        StreamEvent::decode(&first_only),
        decoded,
        "order changed it"
    );

    match &decoded {
        Ok(event) => {
            let encoded = encode(event);
            assert_eq!(StreamEvent::decode(&encoded).as_ref(), Ok(event));
        }
        Err(EventError::Missing(name)) => assert!(!fields.iter().any(|(k, _)| k == name)),
        Err(EventError::Version(v)) => assert_ne!(*v, SCHEMA_VERSION),
        Err(EventError::Kind(kind)) => assert!(kind.chars().count() <= 32),
        Err(EventError::Malformed(name)) => assert!(fields.iter().any(|(k, _)| k == name)),
    }
}

/// The entry the scripts would write for `event`: every documented field, in order, and no other.
fn encode(event: &StreamEvent) -> Fields {
    let names = match event {
        StreamEvent::Like { .. } | StreamEvent::Unlike { .. } => LIKE_FIELDS,
        StreamEvent::User { .. } => USER_FIELDS,
        StreamEvent::Post(_) => POST_FIELDS,
    };
    names
        .iter()
        .map(|&n| (n.to_owned(), field(event, n).into_bytes()))
        .collect()
}

/// The value of field `name` in `event`'s entry; a name the event does not carry means a field
/// list documents a field its kind never has.
fn field(event: &StreamEvent, name: &str) -> String {
    use StreamEvent::{Like, Post, Unlike, User};
    match (event, name) {
        (_, "v") => SCHEMA_VERSION.to_string(),
        (Like { .. }, "kind") => "like".into(),
        (Unlike { .. }, "kind") => "unlike".into(),
        (User { .. }, "kind") => "user".into(),
        (Post(_), "kind") => "post".into(),
        (Like { post, .. } | Unlike { post, .. }, "post") => post.get().to_string(),
        (Like { user, .. } | Unlike { user, .. } | User { user, .. }, "user") => {
            user.get().to_string()
        }
        (Like { likes, .. } | Unlike { likes, .. }, "likes") => likes.to_string(),
        (Like { ts, .. } | Unlike { ts, .. } | User { ts, .. }, "ts") => ts.clone(),
        (User { name, .. }, "name") => name.clone(),
        (Post(p), "post") => p.post.get().to_string(),
        (Post(p), "user") => p.user.get().to_string(),
        (Post(p), "name") => p.name.clone(),
        (Post(p), "caption") => p.caption.clone(),
        (Post(p), "image") => p.image.clone(),
        (Post(p), "width") => p.width.to_string(),
        (Post(p), "height") => p.height.to_string(),
        (Post(p), "ts") => p.ts.clone(),
        (_, other) => panic!("the field list of {event:?} names `{other}`, which it lacks"),
    }
}
