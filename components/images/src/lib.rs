//! Serving images: `GET /api/images/{image_id}?size=thumb|full`.
//!
//! Variants are content-addressed and never change, so each is served with its hash as a strong
//! `ETag` and cached for a year as `immutable`; a revalidation with a matching `If-None-Match`
//! is a 304 that never reads the bytes.

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

use edge_kit::redis::{Arg, Redis};
use edge_kit::{EdgeError, respond};
use likes_core::api::{ImageSize, is_image_id};
use likes_core::keys::{self, image_field};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::redis::RedisResult;

const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";
const CONTENT_TYPE: &str = "image/jpeg";

#[http_component]
fn handle(req: Request) -> Response {
    respond::finish(route(&req))
}

fn route(req: &Request) -> Result<Response, EdgeError> {
    match respond::segments(req).as_slice() {
        ["api", "images", id] => match req.method() {
            Method::Get | Method::Head => serve(req, id),
            _ => Err(respond::not_allowed(req, "GET, HEAD")),
        },
        _ => Err(EdgeError::NotFound("no such route".into())),
    }
}

fn not_found() -> EdgeError {
    EdgeError::NotFound("there is no such image".into())
}

fn serve(req: &Request, id: &str) -> Result<Response, EdgeError> {
    // Checked before the id goes into a key: only hashes this system produced can name an image.
    if !is_image_id(id) {
        return Err(not_found());
    }
    let size =
        ImageSize::parse_query(req.query()).map_err(|e| EdgeError::BadRequest(e.to_string()))?;
    let (bytes_field, etag_field) = match size {
        ImageSize::Full => (image_field::FULL, image_field::FULL_ETAG),
        ImageSize::Thumb => (image_field::THUMB, image_field::THUMB_ETAG),
    };
    let key = keys::image_key(id);
    let redis = Redis::open()?;
    let if_none_match = req.header("if-none-match").and_then(|v| v.as_str());
    if let Some(candidates) = if_none_match {
        let reply = redis.cmd("HGET", &[Arg::Str(&key), Arg::Str(etag_field)])?;
        let etag = binary(&reply, 0).ok_or_else(not_found)?;
        let etag = String::from_utf8_lossy(etag);
        if etag_matches(candidates, &etag) {
            return Ok(Response::builder()
                .status(304)
                .header("etag", quoted(&etag))
                .header("cache-control", CACHE_FOREVER)
                .build());
        }
    }
    let mut reply = redis.cmd(
        "HMGET",
        &[Arg::Str(&key), Arg::Str(bytes_field), Arg::Str(etag_field)],
    )?;
    let etag = binary(&reply, 1)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .ok_or_else(not_found)?;
    let body = match reply.swap_remove(0) {
        RedisResult::Binary(bytes) => bytes,
        _ => return Err(not_found()),
    };
    let length = body.len();
    let body = if matches!(req.method(), Method::Head) {
        Vec::new()
    } else {
        body
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", CONTENT_TYPE)
        .header("content-length", length.to_string())
        .header("etag", quoted(&etag))
        .header("cache-control", CACHE_FOREVER)
        .header("x-content-type-options", "nosniff")
        .body(body)
        .build())
}

fn binary(reply: &[RedisResult], i: usize) -> Option<&[u8]> {
    match reply.get(i) {
        Some(RedisResult::Binary(b)) => Some(b),
        _ => None,
    }
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Whether an `If-None-Match` list names `etag` (RFC 9110 weak comparison: `W/` is ignored),
/// or is `*`.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.trim_start_matches("W/").trim_matches('"') == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("\"x\", W/\"abc\"", "abc"));
        assert!(etag_matches("*", "abc"));
        assert!(!etag_matches("\"abcd\"", "abc"));
        assert!(!etag_matches("", "abc"));
    }
}
