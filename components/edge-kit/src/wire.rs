//! The request head and the response, straight on `wasi:http` with few host calls.
//!
//! The SDK's `Request` reads every header and the whole body before a handler runs, and its
//! response path writes the body through an async sink polled by its executor; each step is a
//! call into the host. The components that take no request body (likes, feed, system) read
//! only the head they need and answer with [`send`]: a like costs ~20% less CPU in the edge
//! host this way (`docs/BENCHMARKS.md`), and every response carries its `content-length`.

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, Response};

/// The largest chunk one `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;

/// What a JSON API handler reads of a request: method, path, query and the credentials.
#[derive(Debug)]
pub struct Head {
    /// The request method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string without `?` (empty when there is none).
    pub query: String,
    /// The `Authorization` header's first value.
    pub authorization: Option<Vec<u8>>,
    /// Spin's `spin-client-addr` header (`ip:port` of the client).
    pub client_addr: Option<Vec<u8>>,
}

impl Head {
    /// Reads the head of `req` (its body is left unread).
    pub fn read(req: &IncomingRequest) -> Self {
        let path_with_query = req.path_with_query().unwrap_or_default();
        let (path, query) = match path_with_query.split_once('?') {
            Some((path, query)) => (path.to_owned(), query.to_owned()),
            None => (path_with_query, String::new()),
        };
        Self {
            method: req.method(),
            path,
            query,
            authorization: req.headers().get("authorization").into_iter().next(),
            client_addr: req.headers().get("spin-client-addr").into_iter().next(),
        }
    }

    /// The path segments, without empty ones (`/api/posts/p_1/like` → 4 segments).
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// Sends `response` through `out`: its headers plus `content-length`, then the body in
/// blocking writes. A client that is gone is not an error the handler can act on, so write
/// failures end the body silently, as the SDK's own sink does.
pub fn send(out: ResponseOutparam, response: &Response) {
    let body = response.body();
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()))
        .collect();
    headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    let fields = match Fields::from_list(&headers) {
        Ok(fields) => fields,
        Err(e) => {
            eprintln!("error: response headers refused: {e:?}");
            Fields::new()
        }
    };
    let outgoing = OutgoingResponse::new(fields);
    // A new response is a 200 already (wasi:http), so the common case skips a host call.
    if *response.status() != 200 && outgoing.set_status_code(*response.status()).is_err() {
        eprintln!("error: status {} refused", response.status());
    }
    let Ok(outgoing_body) = outgoing.body() else {
        eprintln!("error: a new response has no body");
        return;
    };
    out.set(outgoing);
    if let Ok(stream) = outgoing_body.write() {
        for chunk in body.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    if let Err(e) = OutgoingBody::finish(outgoing_body, None) {
        eprintln!("error: finishing the response body: {e:?}");
    }
}
