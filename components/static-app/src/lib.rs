//! Serves the web app from the component's `files` mount (mounted at `/`): the right MIME types
//! (including `application/wasm`), `index.html` for app routes (single-page app), a year of
//! immutable caching for content-hashed assets and revalidation for `index.html`.
//!
//! Spin's own fileserver component cannot be downloaded here, hence this one; it is small
//! enough to audit: a request path is decoded once, every segment is checked, and nothing
//! outside the mount can be named.

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

mod policy;

use edge_kit::{EdgeError, respond};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// Where the app's files are mounted in the guest.
const ROOT: &str = "/";

#[http_component]
fn handle(req: Request) -> Response {
    respond::finish(serve(&req))
}

fn serve(req: &Request) -> Result<Response, EdgeError> {
    let head = match req.method() {
        Method::Get => false,
        Method::Head => true,
        _ => return Err(respond::not_allowed(req, "GET, HEAD")),
    };
    let not_found = || EdgeError::NotFound("no such file".into());
    let relative = policy::safe_relative_path(req.path()).ok_or_else(not_found)?;
    let (path, bytes) = match read(&relative) {
        Some(found) => found,
        // Unknown app routes (`/p/42`, `/upload`) get the app shell; unknown assets are 404s.
        None if policy::is_app_route(&relative) => read("index.html").ok_or_else(not_found)?,
        None => return Err(not_found()),
    };
    let mut builder = Response::builder();
    builder
        .status(200)
        .header("content-type", policy::mime_type(&path))
        .header("cache-control", policy::cache_control(&path))
        .header("x-content-type-options", "nosniff")
        .header("content-length", bytes.len().to_string());
    Ok(builder.body(if head { Vec::new() } else { bytes }).build())
}

/// Reads a regular file under the mount; directories resolve to their `index.html`.
fn read(relative: &str) -> Option<(String, Vec<u8>)> {
    let mut path = format!("{ROOT}{relative}");
    let meta = std::fs::metadata(&path).ok()?;
    if meta.is_dir() {
        path = format!("{}/index.html", path.trim_end_matches('/'));
    }
    let bytes = std::fs::read(&path).ok()?;
    Some((path, bytes))
}
