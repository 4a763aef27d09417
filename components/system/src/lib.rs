//! `GET /api/health` (200 when Redis answers, 503 otherwise) and `GET /api/config` (what the
//! app needs to know at start, such as where the realtime hub is).

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

use edge_kit::redis::Redis;
use edge_kit::wire::{self, Head};
use edge_kit::{EdgeError, respond};
use likes_core::api::ClientConfig;
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    wire::send(out, &respond::finish(route(&Head::read(&req))));
}

fn route(req: &Head) -> Result<Response, EdgeError> {
    match (&req.method, req.path.as_str()) {
        (Method::Get, "/api/health") => health(),
        (m, "/api/health") => Err(respond::method_not_allowed(m, "GET")),
        (Method::Get, "/api/config") => config(),
        (m, "/api/config") => Err(respond::method_not_allowed(m, "GET")),
        _ => Err(EdgeError::NotFound("no such route".into())),
    }
}

/// What the app needs at start. The lab key goes only with the lab's URL; the response has no
/// CORS headers and is `no-store`, so only the app's own pages read it and nothing caches it.
fn config() -> Result<Response, EdgeError> {
    let lab_url = Some(edge_kit::var("lab_url")?).filter(|u| !u.trim().is_empty());
    let lab_key = match lab_url {
        Some(_) => Some(edge_kit::var("lab_key")?).filter(|k| !k.trim().is_empty()),
        None => None,
    };
    Ok(respond::json(
        200,
        &ClientConfig {
            realtime_url: edge_kit::var("realtime_url")?,
            lab_url,
            lab_key,
        },
    ))
}

fn health() -> Result<Response, EdgeError> {
    Redis::open()?.cmd("PING", &[])?;
    Ok(respond::json(200, &serde_json::json!({ "status": "ok" })))
}
