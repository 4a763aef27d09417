//! The I/O-free core of the likes system, built for `wasm32-wasip2` (edge components),
//! `wasm32-unknown-unknown` (the browser app) and native (host, hub, daemon, load generator).
//!
//! Everything that two processes must agree on lives here exactly once: the id formats, the
//! Redis key scheme, the Lua scripts, the event schema, the API bodies and the error body.

pub mod acl;
pub mod api;
pub mod events;
pub mod ids;
pub mod keys;
pub mod problem;
pub mod rate;
pub mod scripts;
#[cfg(feature = "jwt")]
pub mod session;
pub mod time;

pub use ids::{PostId, UserId};
