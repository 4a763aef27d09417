//! Test-only component for the edge host's fault tests.
//!
//! Each path misbehaves in one specific way (trap, endless loop, memory exhaustion) or reports
//! exactly what the host handed it (headers, URI, body length, variables, mounted files), so the
//! host's isolation and Spin compatibility can be asserted from the outside.

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

use serde_json::{Map, Value, json};
use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::{IncomingRequest, OutgoingResponse, Request, Response, ResponseOutparam};
use spin_sdk::http_component;

/// Uses the out-param form so `/fault/noresponse` can return without ever setting a response;
/// every other path is dispatched on the request path.
#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    if request.path_with_query().as_deref() == Some("/fault/noresponse") {
        return;
    }
    let response = match Request::try_from_incoming_request(request).await {
        Ok(req) => route(&req),
        Err(e) => json_response(400, &json!({ "error": format!("{e:?}") })),
    };
    send(out, response).await;
}

/// Dispatches on the request path; unknown paths under the component's routes get a 404.
fn route(req: &Request) -> Response {
    match req.path() {
        "/fault/trap" => trap(),
        "/fault/spin" => spin_forever(),
        "/fault/oom" => exhaust_memory(),
        "/fault/redis" => redis_ping(req),
        "/fault/file" => read_file(req),
        p if p.starts_with("/fault/echo") || p.starts_with("/fault/item/") => echo(req),
        _ => json_response(404, &json!({ "error": "no such fault" })),
    }
}

/// Sets `response` (status, headers and the whole body) on the out-param.
async fn send(out: ResponseOutparam, mut response: Response) {
    let body = std::mem::take(response.body_mut());
    match OutgoingResponse::try_from(response) {
        Ok(outgoing) => {
            if let Err(e) = out.set_with_body(outgoing, body).await {
                eprintln!("fault: cannot send the response body: {e}");
            }
        }
        Err(e) => eprintln!("fault: cannot convert the response: {e}"),
    }
}

/// Panics; with `panic = "abort"` this becomes a wasm trap the host must contain.
fn trap() -> Response {
    panic!("deliberate trap requested by /fault/trap");
}

/// Loops forever without yielding, so only the host's wall-time limit can stop it.
fn spin_forever() -> Response {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB blocks until the host's memory limit stops the guest.
fn exhaust_memory() -> Response {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let block = vec![0xA5_u8; 1024 * 1024];
        blocks.push(std::hint::black_box(block));
        if blocks.len() > 1_000_000 {
            // Unreachable under any sane limit; keeps the loop formally finite.
            return json_response(200, &json!({ "blocks": blocks.len() }));
        }
    }
}

/// Opens `addr` (from the query) and sends PING: shows the host's allow-list and pool at work.
fn redis_ping(req: &Request) -> Response {
    let Some(addr) = query_param(req.query(), "addr") else {
        return json_response(400, &json!({ "error": "missing addr query parameter" }));
    };
    let result =
        spin_sdk::redis::Connection::open(&addr).and_then(|conn| conn.execute("PING", &[]));
    match result {
        Ok(_) => json_response(200, &json!({ "ok": true })),
        Err(e) => json_response(502, &json!({ "error": format!("{e:?}") })),
    }
}

/// Reads a file from the component's mounted filesystem (`?path=/...`).
fn read_file(req: &Request) -> Response {
    let Some(path) = query_param(req.query(), "path") else {
        return json_response(400, &json!({ "error": "missing path query parameter" }));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => json_response(200, &json!({ "path": path, "content": text })),
        Err(e) => json_response(404, &json!({ "path": path, "error": e.to_string() })),
    }
}

/// Reports the method, URI, every `spin-*` header, the body length and the `greeting` variable.
fn echo(req: &Request) -> Response {
    let mut spin_headers = Map::new();
    for (name, value) in req.headers() {
        if name.starts_with("spin-") {
            let value = value.as_str().map(str::to_owned).unwrap_or_default();
            spin_headers.insert(name.to_owned(), Value::String(value));
        }
    }
    let greeting = match spin_sdk::variables::get("greeting") {
        Ok(v) => Value::String(v),
        Err(e) => Value::String(format!("error: {e:?}")),
    };
    let undefined = match spin_sdk::variables::get("no_such_variable") {
        Ok(v) => v,
        Err(e) => format!("{e:?}"),
    };
    let invalid = match spin_sdk::variables::get("Bad-Name") {
        Ok(v) => v,
        Err(e) => format!("{e:?}"),
    };
    let body = json!({
        "method": req.method().to_string(),
        "uri": req.uri(),
        "path_and_query": req.path_and_query(),
        "host": req.header("host").and_then(|h| h.as_str()),
        "spin_headers": spin_headers,
        "body_len": req.body().len(),
        "greeting": greeting,
        "undefined_variable": undefined,
        "invalid_variable": invalid,
        "env_mode": std::env::var("FAULT_MODE").ok(),
    });
    json_response(200, &body)
}

/// A JSON response with the given status.
fn json_response(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

/// The percent-decoded value of `name` in a query string, if present.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+` (as space); malformed escapes are kept verbatim.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
