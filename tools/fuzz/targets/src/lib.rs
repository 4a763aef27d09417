//! The bodies of the `cargo fuzz` targets (`tools/fuzz/fuzz_targets/<name>.rs`), as plain functions on
//! stable Rust: `cargo test` replays every committed corpus file (`tools/fuzz/corpus/<name>/`) through
//! its target, which is how CI runs each target briefly without a nightly toolchain.
//!
//! Each target asserts properties of what it parses (round trips, bounds, key separation,
//! memory budgets), not only that nothing panics; a failed assertion is a finding.

pub mod alloc;
pub mod cursor;
pub mod hub_payload;
pub mod image;
mod input;
pub mod json_body;
pub mod multipart;
pub mod query;
pub mod stream_event;
pub mod token;

/// A target's body: one fuzz input, checked; a panic is a finding.
pub type Target = fn(&[u8]);

/// Every target by name: its fuzz binary and its corpus directory carry the same name.
pub const TARGETS: &[(&str, Target)] = &[
    ("cursor", cursor::run),
    ("hub_payload", hub_payload::run),
    ("image", image::run),
    ("json_body", json_body::run),
    ("multipart", multipart::run),
    ("query", query::run),
    ("stream_event", stream_event::run),
    ("token", token::run),
];
