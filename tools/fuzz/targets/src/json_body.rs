//! Every JSON body of the API, the Pub/Sub messages and the lab's Socket.IO payloads, parsed by
//! the core crate's types: the first byte picks the type, the rest is the JSON.
//!
//! Properties: whatever parses serialises, what we serialise parses back to the same value and
//! serialises to the same JSON (floats to within rounding); a sign-in name that is accepted is
//! trimmed, 1 to 32 characters, free of control and bidirectional characters, visible, and
//! accepted again unchanged.

use lab_protocol as lab;
use likes_core::api::{
    self, ClientConfig, DisplayName, FeedPage, LikeResponse, LikersPage, MAX_NAME_CHARS, NameError,
    Post, PostImage, SessionRequest, SessionResponse, User, realtime,
};
use likes_core::events::LikeMessage;
use likes_core::problem::Problem;
use likes_core::session::Claims;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn run(data: &[u8]) {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    match which % 18 {
        0 => {
            if let Some(req) = round_trip::<SessionRequest>(json) {
                check_name(&req.name);
            }
        }
        1 => drop(round_trip::<SessionResponse>(json)),
        2 => drop(round_trip::<User>(json)),
        3 => drop(round_trip::<LikeResponse>(json)),
        4 => drop(round_trip::<LikersPage>(json)),
        5 => drop(round_trip::<Post>(json)),
        6 => drop(round_trip::<FeedPage>(json)),
        7 => drop(round_trip::<ClientConfig>(json)),
        8 => drop(round_trip::<Problem>(json)),
        9 => drop(round_trip::<LikeMessage>(json)),
        10 => drop(round_trip::<realtime::LikesUpdated>(json)),
        11 => drop(round_trip::<lab::StartRequest>(json)),
        12 => drop(round_trip::<lab::Progress>(json)),
        13 => drop(round_trip::<lab::Ack>(json)),
        14 => drop(round_trip::<lab::Done>(json)),
        15 => drop(round_trip::<lab::LabState>(json)),
        16 => drop(round_trip::<Claims>(json)),
        _ => {
            if let Some(image) = round_trip::<PostImage>(json) {
                // A rebuilt image carries the URLs the API serves it at.
                let rebuilt = PostImage::new(image.id.clone(), image.width, image.height);
                assert_eq!(
                    rebuilt.thumb_url,
                    api::image_url(&image.id, api::ImageSize::Thumb)
                );
            }
        }
    }
}

/// Parses `json` as `T` and checks that it survives serialising and parsing again.
fn round_trip<T: Serialize + DeserializeOwned>(json: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(json).ok()?;
    let text = serde_json::to_string(&value).expect("a parsed body serialises");
    let back: T = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("our own JSON does not parse back: {e}: {text}"));
    let again = serde_json::to_string(&back).expect("a parsed body serialises");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&text).expect("JSON"),
        serde_json::from_str(&again).expect("JSON"),
    );
    assert!(same(&a, &b), "changed by a round trip:\n{text}\n{again}");
    Some(value)
}

/// Equal JSON, numbers compared as the same f64 to within rounding: without serde_json's
/// `float_roundtrip` feature a parsed float may be one unit in the last place off.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => {
                        (x - y).abs() <= f64::EPSILON * 4.0 * x.abs().max(y.abs())
                    }
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn check_name(raw: &str) {
    match DisplayName::parse(raw) {
        Ok(name) => {
            let text = name.as_str();
            assert_eq!(text, raw.trim());
            let chars = text.chars().count();
            assert!((1..=MAX_NAME_CHARS).contains(&chars), "{chars} characters");
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert!(!text.chars().any(is_bidi), "{text:?}");
            assert!(!text.chars().all(char::is_whitespace), "{text:?}");
            assert_eq!(DisplayName::parse(text).as_ref(), Ok(&name), "idempotent");
        }
        Err(NameError::Empty) => assert!(raw.trim().is_empty()),
        Err(NameError::TooLong) => assert!(raw.trim().chars().count() > MAX_NAME_CHARS),
        Err(NameError::Control) => assert!(raw.chars().any(char::is_control)),
        Err(NameError::Bidi) => assert!(raw.chars().any(is_bidi)),
        Err(NameError::Invisible) => assert!(!raw.trim().is_empty()),
    }
}

/// The bidirectional controls and marks, listed independently of the parser's own list.
fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}
