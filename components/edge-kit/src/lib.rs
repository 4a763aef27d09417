//! What every edge component shares: the error type and its problem+json response, JSON
//! request/response helpers, session authentication, variables, and calling the core crate's
//! Lua scripts through Spin's Redis interface.
//!
//! Components stay thin: parse at the boundary, call one script, shape the response.

pub mod auth;
pub mod error;
pub mod rate;
pub mod redis;
pub mod respond;
pub mod wire;

pub use error::EdgeError;

/// Reads a Spin variable declared for the component.
pub fn var(name: &str) -> Result<String, EdgeError> {
    spin_sdk::variables::get(name)
        .map_err(|e| EdgeError::Internal(anyhow::anyhow!("variable `{name}`: {e}")))
}

/// A variable a manifest may leave undeclared (then empty), for settings that are off by default.
pub fn optional_var(name: &str) -> Result<String, EdgeError> {
    match spin_sdk::variables::get(name) {
        Err(spin_sdk::variables::Error::Undefined(_)) => Ok(String::new()),
        other => other.map_err(|e| EdgeError::Internal(anyhow::anyhow!("variable `{name}`: {e}"))),
    }
}

/// A numeric variable, `default` when it is empty; a value that is no number is our
/// misconfiguration, a 500.
pub fn var_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, EdgeError> {
    let raw = var(name)?;
    if raw.trim().is_empty() {
        return Ok(default);
    }
    raw.trim()
        .parse()
        .map_err(|_| EdgeError::Internal(anyhow::anyhow!("variable `{name}` is not a number")))
}

/// The `session_secret` variable, checked: a secret under 32 bytes, or the published dev secret
/// without `dev_mode=true`, is a 500 whose log line says why, so no token is ever signed or
/// accepted with a guessable key. `dev_mode` is optional: undeclared is off.
pub fn session_secret() -> Result<likes_core::session::SessionSecret, EdgeError> {
    let raw = var("session_secret")?;
    // Only the published secret needs `dev_mode`: every other request (a like included) is
    // spared the second variable lookup.
    let dev_mode = raw == likes_core::session::DEV_SECRET
        && spin_sdk::variables::get("dev_mode").is_ok_and(|v| v.trim() == "true");
    likes_core::session::SessionSecret::parse(&raw, dev_mode)
        .map_err(|e| EdgeError::Internal(anyhow::anyhow!("{e}")))
}

/// Wall-clock time: (unix seconds, unix milliseconds).
pub fn now() -> (u64, u64) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    (ms / 1000, ms)
}
