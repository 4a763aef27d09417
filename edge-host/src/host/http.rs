//! Outbound `wasi:http`: refused. The components this host runs talk to Redis, not to HTTP
//! services; an outgoing request gets `HTTP-request-denied` instead of a network connection.

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

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
