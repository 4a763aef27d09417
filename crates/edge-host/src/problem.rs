//! Responses the host itself produces: RFC 9457 problem documents and small plain bodies.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use likes_core::problem::{CONTENT_TYPE, Problem};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A complete body in the type every response shares with guest responses.
pub fn full(bytes: impl Into<Bytes>) -> HyperOutgoingBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with `content-type: application/problem+json`, never cached (as the components'
/// own problems: `edge_kit`).
pub fn response(problem: &Problem) -> hyper::Response<HyperOutgoingBody> {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = hyper::Response::new(full(problem.to_json()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 404 for a path no route matches.
pub fn not_found(path: &str) -> hyper::Response<HyperOutgoingBody> {
    response(&Problem::not_found(format!("no route matches {path}")))
}

/// 413 for a body over the limit.
pub fn too_large(limit: u64) -> hyper::Response<HyperOutgoingBody> {
    response(&Problem::payload_too_large(limit))
}

/// 408 for a body that did not arrive in time.
pub fn request_timeout() -> hyper::Response<HyperOutgoingBody> {
    response(&Problem::new(
        408,
        "Request Timeout",
        "the request body did not arrive in time",
    ))
}

/// 500 with a generic detail; the real cause is logged, never sent.
pub fn internal() -> hyper::Response<HyperOutgoingBody> {
    response(&Problem::internal())
}

/// A small `text/plain` or JSON response.
pub fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> hyper::Response<HyperOutgoingBody> {
    let mut response = hyper::Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn problems_have_the_right_status_type_and_body() {
        let response = too_large(10);
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let problem: Problem = serde_json::from_slice(&body).expect("problem json");
        assert_eq!(problem.status, 413);
        assert_eq!(internal().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(not_found("/x").status(), StatusCode::NOT_FOUND);
    }
}
