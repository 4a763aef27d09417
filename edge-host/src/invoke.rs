//! Running one request through a component: instantiate, call `incoming-handler.handle`, and
//! turn every way a guest can fail into a [`GuestFailure`] the server answers with a 500.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use wasmtime::Trap;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::metrics;
use crate::runtime::{CompiledComponent, Runtime};

/// Why a request produced no usable response from its component.
#[derive(Debug, thiserror::Error)]
pub enum GuestFailure {
    /// No instance slot became free before the deadline.
    #[error("no instance slot became free before the request deadline")]
    Busy,
    /// The store or request could not be set up.
    #[error("cannot prepare the instance: {0:#}")]
    Setup(anyhow::Error),
    /// The guest trapped (panic, `unreachable`, bad memory access...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest hit the memory limit and aborted.
    #[error("guest exceeded its memory limit: {0}")]
    OutOfMemory(String),
    /// The guest ran past the wall-time limit.
    #[error("guest exceeded the request time limit")]
    Timeout,
    /// The guest returned without calling `response-outparam.set`.
    #[error("guest never set a response")]
    NoResponse,
    /// The guest set an error instead of a response.
    #[error("guest responded with an error: {0}")]
    ErrorCode(String),
}

impl GuestFailure {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Setup(_) => "setup",
            Self::Trap(_) => "trap",
            Self::OutOfMemory(_) => "oom",
            Self::Timeout => "timeout",
            Self::NoResponse => "no_response",
            Self::ErrorCode(_) => "error_code",
        }
    }
}

/// Classifies an error returned by instantiation or the handler call.
fn classify(error: wasmtime::Error, memory_limit_hit: bool) -> GuestFailure {
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return GuestFailure::Timeout;
    }
    let text = format!("{error:?}");
    if memory_limit_hit {
        GuestFailure::OutOfMemory(text)
    } else {
        GuestFailure::Trap(text)
    }
}

/// Runs `request` through `component` and returns the guest's response (its body keeps
/// streaming from the guest task). The instance is dropped when the guest task finishes.
pub async fn invoke(
    runtime: &Runtime,
    component: &Arc<CompiledComponent>,
    request: hyper::Request<Full<Bytes>>,
    deadline: Instant,
) -> Result<hyper::Response<HyperOutgoingBody>, GuestFailure> {
    let permit =
        tokio::time::timeout_at(deadline.into(), runtime.instances.clone().acquire_owned())
            .await
            .map_err(|_| GuestFailure::Busy)?
            .map_err(|_| GuestFailure::Busy)?;

    let mut store = runtime
        .new_store(component, deadline)
        .map_err(GuestFailure::Setup)?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let (request, outparam) = {
        let mut http = store.data_mut().http();
        let request = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| GuestFailure::Setup(e.into()))?;
        let outparam = http
            .new_response_outparam(sender)
            .map_err(|e| GuestFailure::Setup(e.into()))?;
        (request, outparam)
    };

    let pre = component.pre.clone();
    let id = component.ctx.id.clone();
    let task = tokio::spawn(async move {
        let _permit = permit;
        let run = async {
            let started = Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            metrics::instantiation(&id, started.elapsed());
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        };
        let outcome = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(e, store.data().limiter.hit)),
            Err(_) => Err(GuestFailure::Timeout),
        };
        if let Err(failure) = &outcome {
            metrics::guest_failure(&id, failure.kind());
            tracing::error!(component = %id, kind = failure.kind(), error = %failure, "guest failed");
        }
        outcome
    });

    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(GuestFailure::ErrorCode(format!("{code:?}"))),
        // The sender was dropped with the store: the task is over, ask it why.
        Err(_) => match task.await {
            Ok(Ok(())) => {
                metrics::guest_failure(&component.ctx.id, "no_response");
                Err(GuestFailure::NoResponse)
            }
            Ok(Err(failure)) => Err(failure),
            Err(join) => Err(GuestFailure::Trap(format!("guest task panicked: {join}"))),
        },
    }
}
