//! Posting a photo: `POST /api/posts` (multipart `image` + optional `caption`).
//!
//! The body is parsed as it streams in, with the size limit enforced on the bytes actually
//! received; the image goes through `likes-images` (sniff, bounded decode, orientation, strip,
//! resize, re-encode); the variants, the post record, its feed entries, the stream entry and the
//! `post_event` are then written to Redis by [`store`].

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

mod form;
mod store;

use edge_kit::redis::{Arg, Redis, int_at};
use edge_kit::{EdgeError, auth, respond};
use likes_core::api::{Caption, User};
use likes_core::keys;
use likes_core::{scripts, time};
use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;

/// Defaults of the limits, each overridable by a Spin variable of the same name.
const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
const DEFAULT_UPLOADS_PER_MINUTE: u64 = 30;
const DEFAULT_MAX_PIXELS: u64 = 50_000_000;
const DEFAULT_MAX_SIDE: u32 = 16_384;

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    respond::finish(route(req).await)
}

async fn route(req: IncomingRequest) -> Result<Response, EdgeError> {
    let path = req.path_with_query().unwrap_or_default();
    let path = path.split('?').next().unwrap_or("");
    if path.trim_end_matches('/') != "/api/posts" {
        return Err(EdgeError::NotFound("no such route".into()));
    }
    if req.method() != Method::Post {
        return Err(EdgeError::MethodNotAllowed {
            method: respond::method_name(&req.method()),
            allow: "POST",
        });
    }
    create(req).await
}

/// A limit from its Spin variable, or its default when the variable is empty.
fn limit<T: std::str::FromStr>(name: &str, default: T) -> Result<T, EdgeError> {
    let raw = edge_kit::var(name)?;
    if raw.trim().is_empty() {
        return Ok(default);
    }
    raw.trim()
        .parse()
        .map_err(|_| EdgeError::Internal(anyhow::anyhow!("variable `{name}` is not a number")))
}

fn header(req: &IncomingRequest, name: &str) -> Option<Vec<u8>> {
    req.headers().get(name).into_iter().next()
}

async fn create(req: IncomingRequest) -> Result<Response, EdgeError> {
    // Everything that can refuse the upload without its body is checked before reading it.
    let secret = edge_kit::var("session_secret")?;
    let (now, now_ms) = edge_kit::now();
    let claims = auth::from_header(
        header(&req, "authorization").as_deref(),
        secret.as_bytes(),
        now,
    )?
    .ok_or_else(|| EdgeError::Unauthorized("this route needs a session token".into()))?;
    let boundary = form::boundary(header(&req, "content-type").as_deref())?;
    let max_body = limit("max_body_bytes", DEFAULT_MAX_BODY_BYTES)?;
    let redis = Redis::open()?;
    rate_limit(
        &redis,
        &claims.sub,
        limit("uploads_per_minute", DEFAULT_UPLOADS_PER_MINUTE)?,
    )?;

    let form = form::read(req.into_body_stream(), boundary, max_body).await?;
    let caption =
        Caption::parse(&form.caption).map_err(|e| EdgeError::Unprocessable(e.to_string()))?;
    let limits = likes_images::Limits {
        max_pixels: limit("max_image_pixels", DEFAULT_MAX_PIXELS)?,
        max_side: limit("max_image_side", DEFAULT_MAX_SIDE)?,
        ..likes_images::Limits::default()
    };
    let image = likes_images::process(&form.image, &limits).map_err(|e| match e.status() {
        415 => EdgeError::UnsupportedMediaType(e.to_string()),
        422 => EdgeError::Unprocessable(match e {
            // The decoder's own message may name internals; the client gets the category.
            likes_images::ImageError::Undecodable(_) => "the image is corrupt or truncated".into(),
            e => e.to_string(),
        }),
        _ => EdgeError::Internal(anyhow::anyhow!("image pipeline: {e}")),
    })?;
    drop(form);

    let author = User {
        id: claims.sub,
        name: claims.name,
    };
    let post = store::save(
        &redis,
        &author,
        caption.as_str(),
        &image,
        &time::rfc3339_ms(now_ms),
    )?;
    let location = format!("/api/posts/{}", post.id);
    let mut resp = respond::json(201, &post);
    resp.set_header("location", location);
    Ok(resp)
}

/// Counts the upload against the caller's per-minute budget; over it is a 429 with
/// `Retry-After`, before a byte of the body is read.
fn rate_limit(redis: &Redis, user: &likes_core::UserId, per_minute: u64) -> Result<(), EdgeError> {
    let key = keys::rate_key("upload", *user);
    let reply = redis.eval(
        &scripts::RATE,
        &[&key],
        &[
            Arg::Int(i64::try_from(per_minute).unwrap_or(i64::MAX)),
            Arg::Int(60),
        ],
    )?;
    if int_at(&reply, 0)? == 1 {
        return Ok(());
    }
    let retry_after_secs = u64::try_from(int_at(&reply, 1)?).unwrap_or(60).max(1);
    Err(EdgeError::TooManyRequests {
        detail: format!(
            "at most {per_minute} uploads per minute; try again in {retry_after_secs} s"
        ),
        retry_after_secs,
    })
}
