//! What every edge component shares: the error type and its problem+json response, JSON
//! request/response helpers, session authentication, variables, and calling the core crate's
//! Lua scripts through Spin's Redis interface.
//!
//! Components stay thin: parse at the boundary, call one script, shape the response.

pub mod auth;
pub mod error;
pub mod redis;
pub mod respond;
pub mod wire;

pub use error::EdgeError;

/// Reads a Spin variable declared for the component.
pub fn var(name: &str) -> Result<String, EdgeError> {
    spin_sdk::variables::get(name)
        .map_err(|e| EdgeError::Internal(anyhow::anyhow!("variable `{name}`: {e}")))
}

/// Wall-clock time: (unix seconds, unix milliseconds).
pub fn now() -> (u64, u64) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    (ms / 1000, ms)
}
