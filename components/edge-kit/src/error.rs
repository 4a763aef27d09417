//! The components' boundary error: every failure maps to one HTTP status and a problem+json body,
//! and internal errors are logged, never shown.

use likes_core::problem::Problem;

/// A request failure, by the status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("the body is over the limit of {0} bytes")]
    PayloadTooLarge(u64),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("Redis is unreachable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl EdgeError {
    /// The problem document clients see.
    pub fn problem(&self) -> Problem {
        match self {
            Self::BadRequest(d) => Problem::bad_request(d.clone()),
            Self::Unauthorized(d) => Problem::unauthorized(d.clone()),
            Self::NotFound(d) => Problem::not_found(d.clone()),
            Self::MethodNotAllowed { .. } => Problem::method_not_allowed(self.to_string()),
            Self::PayloadTooLarge(limit) => Problem::payload_too_large(*limit),
            Self::UnsupportedMediaType(d) => Problem::unsupported_media_type(d.clone()),
            Self::Unprocessable(d) => Problem::unprocessable(d.clone()),
            Self::TooManyRequests { detail, .. } => Problem::too_many_requests(detail.clone()),
            Self::Unavailable(_) => {
                Problem::unavailable("the data store is unreachable; try again shortly")
            }
            Self::Internal(_) => Problem::internal(),
        }
    }

    /// The `Retry-After` header value (seconds) for a 429, and for a 503 (Redis restarting or
    /// unreachable: worth another try in a second).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    /// The `Allow` header value for a 405.
    pub fn allow(&self) -> Option<&'static str> {
        match self {
            Self::MethodNotAllowed { allow, .. } => Some(allow),
            _ => None,
        }
    }
}
