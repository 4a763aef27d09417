//! Outbound `wasi:http`: refused. The components this host runs talk to Redis, not to HTTP
//! services; an outgoing request gets `HTTP-request-denied` instead of a network connection.

use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, RequestOptions, WasiBody, WasiHttpHooks,
};

/// The `wasi:http` hooks of every instance.
#[derive(Debug, Default, Clone, Copy)]
pub struct OutboundHttp;

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    /// The default rule, checked directly: the provided method builds an `Arc` closure for
    /// every header it checks, and every request's headers are checked on the way in.
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        tracing::warn!(uri = %request.uri(), "outbound HTTP is not supported by edge-host; denied");
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
