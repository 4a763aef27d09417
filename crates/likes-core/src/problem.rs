//! RFC 9457 problem details: the one error body every HTTP surface of the system returns.

use serde::{Deserialize, Serialize};

/// Media type of every error response.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document (`{"type","title","status","detail"}`).
///
/// `type` is a stable URI-reference naming the kind of problem, so clients can branch on it
/// without parsing `detail`, which is for humans and never carries internals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    /// A problem whose `type` is derived from the title ("Too Many Requests" →
    /// `/problems/too-many-requests`).
    pub fn new(status: u16, title: &str, detail: impl Into<String>) -> Self {
        let slug: String = title
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        Self {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
        }
    }

    /// 400: the request could not be parsed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "Bad Request", detail)
    }

    /// 401: missing, malformed, forged or expired credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "Unauthorized", detail)
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not Found", detail)
    }

    /// 405: the route exists but not for this method.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(405, "Method Not Allowed", detail)
    }

    /// 413: the body is larger than the configured limit.
    pub fn payload_too_large(limit_bytes: u64) -> Self {
        Self::new(
            413,
            "Payload Too Large",
            format!("the request body exceeds the limit of {limit_bytes} bytes"),
        )
    }

    /// 415: a media type we recognise but do not accept.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(415, "Unsupported Media Type", detail)
    }

    /// 422: well-formed but semantically invalid input.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(422, "Unprocessable Content", detail)
    }

    /// 429: rate limited; pair with a `Retry-After` header.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(429, "Too Many Requests", detail)
    }

    /// 500: our fault; the detail stays generic so nothing internal leaks.
    pub fn internal() -> Self {
        Self::new(
            500,
            "Internal Server Error",
            "the request could not be completed; it has been logged",
        )
    }

    /// 503: a dependency (Redis) is unreachable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, "Service Unavailable", detail)
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings and an integer cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_is_a_slug_of_the_title() {
        let p = Problem::too_many_requests("slow down");
        assert_eq!(p.kind, "/problems/too-many-requests");
        assert_eq!(p.status, 429);
        let json: serde_json::Value = serde_json::from_slice(&p.to_json()).expect("json");
        assert_eq!(json["type"], "/problems/too-many-requests");
        assert_eq!(json["detail"], "slow down");
    }
}
