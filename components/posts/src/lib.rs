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

use edge_kit::redis::Redis;
use edge_kit::{EdgeError, auth, rate, respond};
use likes_core::api::{Caption, User};
use likes_core::rate::{Scope, Subject};
use likes_core::time;
use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;

/// Defaults of the limits, each overridable by a Spin variable of the same name.
const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
const DEFAULT_UPLOADS_PER_MINUTE: u64 = 30;
/// Uploads from one client network per minute: a new session is a new user, so the per-user
/// limit alone would be one sign-in away from void.
const DEFAULT_ADDRESS_UPLOADS_PER_MINUTE: u64 = 60;
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

fn header(req: &IncomingRequest, name: &str) -> Option<Vec<u8>> {
    req.headers().get(name).into_iter().next()
}

async fn create(req: IncomingRequest) -> Result<Response, EdgeError> {
    // Everything that can refuse the upload without its body is checked before reading it.
    let secret = edge_kit::session_secret()?;
    let (now, now_ms) = edge_kit::now();
    let claims = auth::from_header(
        header(&req, "authorization").as_deref(),
        secret.as_bytes(),
        now,
    )?
    .ok_or_else(|| EdgeError::Unauthorized("this route needs a session token".into()))?;
    let boundary = form::boundary(header(&req, "content-type").as_deref())?;
    let max_body = edge_kit::var_or("max_body_bytes", DEFAULT_MAX_BODY_BYTES)?;
    let redis = Redis::open()?;
    let forwarded = req.headers().get("x-forwarded-for");
    let forwarded: Vec<&[u8]> = forwarded.iter().map(Vec::as_slice).collect();
    let client = rate::client(header(&req, "spin-client-addr").as_deref(), &forwarded)?;
    rate::check(
        &redis,
        Scope::Upload,
        Subject::User(claims.sub),
        edge_kit::var_or("uploads_per_minute", DEFAULT_UPLOADS_PER_MINUTE)?,
    )?;
    rate::check(
        &redis,
        Scope::UploadFromAddress,
        Subject::Client(client),
        edge_kit::var_or(
            "address_uploads_per_minute",
            DEFAULT_ADDRESS_UPLOADS_PER_MINUTE,
        )?,
    )?;

    let form = form::read(req.into_body_stream(), boundary, max_body).await?;
    let caption =
        Caption::parse(&form.caption).map_err(|e| EdgeError::Unprocessable(e.to_string()))?;
    let limits = likes_images::Limits {
        max_pixels: edge_kit::var_or("max_image_pixels", DEFAULT_MAX_PIXELS)?,
        max_side: edge_kit::var_or("max_image_side", DEFAULT_MAX_SIDE)?,
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
