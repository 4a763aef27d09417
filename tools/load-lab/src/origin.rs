//! Which browser pages may reach the lab. A browser sends `Origin` on every WebSocket upgrade
//! and on every cross-origin request, but CORS only governs what a page may *read*, and never
//! applies to WebSockets; so every request is checked here, in front of the Socket.IO layer,
//! before any Engine.IO handshake happens.
//!
//! A request without `Origin` passes: browsers omit it only on same-origin `GET`s (and never
//! on a WebSocket upgrade or a `POST`, which carries a polling client's Socket.IO connect), so
//! the clients that send none are non-browser ones (tests, the CLI), which the lab key still
//! has to admit. `Origin: null` (sandboxed frames, `file:` pages) is an origin like any other,
//! and is refused unless listed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use likes_core::problem::{self, Problem};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Why the configured origins cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid allowed origin {origin:?}: {why}")]
pub struct OriginError {
    origin: String,
    why: &'static str,
}

/// The origins the lab answers, as browsers spell them (`http://localhost:3000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    list: Vec<String>,
}

impl AllowedOrigins {
    /// Parses the configured list: `*` (any origin), or `scheme://host[:port]` each; a trailing
    /// `/` is dropped and the scheme and host are lower-cased, as a browser would send them.
    pub fn parse(origins: &[String]) -> Result<Self, OriginError> {
        let mut any = false;
        let mut list = Vec::new();
        for raw in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            if raw == "*" {
                any = true;
                continue;
            }
            list.push(normalise(raw).map_err(|why| OriginError {
                origin: raw.to_owned(),
                why,
            })?);
        }
        if !any && list.is_empty() {
            return Err(OriginError {
                origin: String::new(),
                why: "no origin given; name the app's origin (or `*`)",
            });
        }
        Ok(Self { any, list })
    }

    /// Whether `*` was configured.
    pub fn any(&self) -> bool {
        self.any
    }

    /// Whether a request carrying this `Origin` value may go on.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        self.any
            || origin
                .to_str()
                .is_ok_and(|o| self.list.iter().any(|allowed| allowed == o))
    }

    /// The CORS policy for the same origins (Socket.IO long-polling reads its answers through
    /// it; WebSocket does not need it).
    pub fn cors_layer(&self) -> CorsLayer {
        let allow = if self.any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.list
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE])
    }
}

/// `scheme://host[:port]`, lower-cased, or why not.
fn normalise(raw: &str) -> Result<String, &'static str> {
    let uri: Uri = raw
        .parse()
        .map_err(|_| "not a URL of the form scheme://host[:port]")?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("not a URL of the form scheme://host[:port]");
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("an origin has no path or query");
    }
    if authority.as_str().contains('@') {
        return Err("an origin has no user name");
    }
    Ok(format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// The middleware: a request whose every `Origin` is allowed (or that has none) goes on;
/// otherwise 403 problem+json, and the Socket.IO layer never sees it.
pub async fn check(
    State(allowed): State<Arc<AllowedOrigins>>,
    req: Request,
    next: Next,
) -> Response {
    let mut origins = req.headers().get_all(header::ORIGIN).iter().peekable();
    if origins.peek().is_none() || origins.all(|o| allowed.allows(o)) {
        return next.run(req).await;
    }
    let shown = req
        .headers()
        .get(header::ORIGIN)
        .map(|o| {
            String::from_utf8_lossy(o.as_bytes())
                .chars()
                .take(200)
                .collect::<String>()
        })
        .unwrap_or_default();
    tracing::info!(origin = %shown, path = %req.uri().path(), "request from a foreign origin refused");
    forbidden(&shown)
}

fn forbidden(origin: &str) -> Response {
    let problem = Problem::new(
        403,
        "Forbidden",
        format!(
            "the load lab does not accept requests from pages on {origin:?}; only the app's own \
             origin may drive it (see the lab's --allowed-origin)"
        ),
    );
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, problem::CONTENT_TYPE)],
        Body::from(problem.to_json()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> AllowedOrigins {
        AllowedOrigins::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("valid origins")
    }

    fn allows(a: &AllowedOrigins, origin: &str) -> bool {
        a.allows(&HeaderValue::from_str(origin).expect("a header value"))
    }

    #[test]
    fn only_the_listed_origins_are_allowed_exactly() {
        let a = origins(&["http://127.0.0.1:3000", "HTTP://LocalHost:3000/"]);
        assert!(!a.any());
        assert!(allows(&a, "http://127.0.0.1:3000"));
        assert!(allows(&a, "http://localhost:3000"));
        for foreign in [
            "http://127.0.0.1:3001",
            "https://127.0.0.1:3000",
            "http://127.0.0.1",
            "http://evil.example",
            "http://localhost:3000.evil.example",
            "null",
            "",
        ] {
            assert!(!allows(&a, foreign), "{foreign:?}");
        }
        assert!(!a.allows(&HeaderValue::from_bytes(b"http://\xff").expect("opaque bytes")));
    }

    #[test]
    fn a_star_allows_any_origin() {
        let a = origins(&["*"]);
        assert!(a.any());
        assert!(allows(&a, "http://evil.example"));
        assert!(allows(&a, "null"));
    }

    #[test]
    fn malformed_or_empty_lists_are_refused_at_start() {
        for bad in [
            &[][..],
            &[" "],
            &["localhost:3000"],
            &["http://localhost:3000/lab"],
            &["http://localhost:3000?x=1"],
            &["http://user@localhost:3000"],
            &["not a url"],
        ] {
            let list: Vec<String> = bad.iter().map(|s| (*s).to_owned()).collect();
            assert!(AllowedOrigins::parse(&list).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_refusal_is_problem_json() {
        let r = forbidden("http://evil.example");
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(problem::CONTENT_TYPE)
        );
    }
}
