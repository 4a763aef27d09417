//! Session authentication from `Authorization: Bearer <token>`.

use likes_core::session::{self, Claims};
use spin_sdk::http::Request;

use crate::EdgeError;

/// The caller's claims when the request carries a valid token, `None` when it carries none.
/// A present but invalid token is an error even on routes where auth is optional, so a client
/// with a stale token learns it instead of silently becoming anonymous.
pub fn optional(req: &Request, secret: &[u8], now: u64) -> Result<Option<Claims>, EdgeError> {
    from_header(
        req.header("authorization").map(|v| v.as_bytes()),
        secret,
        now,
    )
}

/// [`optional`] from the raw `Authorization` header value, for handlers that stream the body
/// and so never build a [`Request`].
pub fn from_header(
    value: Option<&[u8]>,
    secret: &[u8],
    now: u64,
) -> Result<Option<Claims>, EdgeError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value)
        .map_err(|_| EdgeError::Unauthorized("the Authorization header is not text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| EdgeError::Unauthorized("use `Authorization: Bearer <token>`".into()))?;
    session::verify(secret, token.trim(), now)
        .map(Some)
        .map_err(|e| EdgeError::Unauthorized(e.to_string()))
}

/// The caller's claims; a missing token is a 401.
pub fn required(req: &Request, secret: &[u8], now: u64) -> Result<Claims, EdgeError> {
    required_header(
        req.header("authorization").map(|v| v.as_bytes()),
        secret,
        now,
    )
}

/// [`required`] from the raw `Authorization` header value.
pub fn required_header(value: Option<&[u8]>, secret: &[u8], now: u64) -> Result<Claims, EdgeError> {
    from_header(value, secret, now)?
        .ok_or_else(|| EdgeError::Unauthorized("this route needs a session token".into()))
}
