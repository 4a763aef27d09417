//! Building responses and parsing request bodies.

use likes_core::api::MAX_JSON_BODY_BYTES;
use serde::Serialize;
use serde::de::DeserializeOwned;
use spin_sdk::http::{Method, Request, Response};

use crate::EdgeError;

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(bytes)
            .build(),
        Err(e) => error(&EdgeError::Internal(e.into())),
    }
}

/// The problem+json response for `err`; internal causes go to the log (stderr), not the client.
pub fn error(err: &EdgeError) -> Response {
    if let EdgeError::Internal(cause) | EdgeError::Unavailable(cause) = err {
        eprintln!("error: {cause:#}");
    }
    let problem = err.problem();
    let mut builder = Response::builder();
    builder
        .status(problem.status)
        .header("content-type", likes_core::problem::CONTENT_TYPE)
        .header("cache-control", "no-store");
    if let Some(allow) = err.allow() {
        builder.header("allow", allow);
    }
    if let Some(secs) = err.retry_after() {
        builder.header("retry-after", secs.to_string());
    }
    builder.body(problem.to_json()).build()
}

/// Turns a handler result into a response.
pub fn finish(result: Result<Response, EdgeError>) -> Response {
    result.unwrap_or_else(|e| error(&e))
}

/// Parses a JSON body into `T`: over [`MAX_JSON_BODY_BYTES`] is a 413, another content type a
/// 415, malformed JSON a 400.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, EdgeError> {
    if req.body().len() > MAX_JSON_BODY_BYTES {
        return Err(EdgeError::PayloadTooLarge(MAX_JSON_BODY_BYTES as u64));
    }
    let content_type = req
        .header("content-type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(EdgeError::UnsupportedMediaType(
            "the body must be JSON (content-type: application/json)".into(),
        ));
    }
    serde_json::from_slice(req.body())
        .map_err(|e| EdgeError::BadRequest(format!("malformed JSON body: {e}")))
}

/// A method name for messages.
pub fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(m) => m.chars().take(16).collect(),
    }
}

/// The 405 for `req` on a route that allows `allow`.
pub fn not_allowed(req: &Request, allow: &'static str) -> EdgeError {
    method_not_allowed(req.method(), allow)
}

/// The 405 for `method` on a route that allows `allow`.
pub fn method_not_allowed(method: &Method, allow: &'static str) -> EdgeError {
    EdgeError::MethodNotAllowed {
        method: method_name(method),
        allow,
    }
}

/// The path segments of the request, without empty ones (`/api/posts/p_1/like` → 4 segments).
pub fn segments(req: &Request) -> Vec<&str> {
    req.path().split('/').filter(|s| !s.is_empty()).collect()
}
