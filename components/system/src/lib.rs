//! `GET /api/health` (200 when Redis answers, 503 otherwise) and `GET /api/config` (what the
//! app needs to know at start, such as where the realtime hub is).

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

use edge_kit::redis::Redis;
use edge_kit::{EdgeError, respond};
use likes_core::api::ClientConfig;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond::finish(route(&req))
}

fn route(req: &Request) -> Result<Response, EdgeError> {
    match (req.method(), req.path()) {
        (Method::Get, "/api/health") => health(),
        (_, "/api/health") => Err(respond::not_allowed(req, "GET")),
        (Method::Get, "/api/config") => Ok(respond::json(
            200,
            &ClientConfig {
                realtime_url: edge_kit::var("realtime_url")?,
                lab_url: Some(edge_kit::var("lab_url")?).filter(|u| !u.trim().is_empty()),
            },
        )),
        (_, "/api/config") => Err(respond::not_allowed(req, "GET")),
        _ => Err(EdgeError::NotFound("no such route".into())),
    }
}

fn health() -> Result<Response, EdgeError> {
    Redis::open()?.cmd("PING", &[])?;
    Ok(respond::json(200, &serde_json::json!({ "status": "ok" })))
}
