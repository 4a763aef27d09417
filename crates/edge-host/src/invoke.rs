//! Running one request through a component: instantiate, call `incoming-handler.handle`, and
//! turn every way a guest can fail into a [`GuestFailure`] the server answers with a 500.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
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

/// A guest's run: instantiate, call the handler, classify how it ended. It owns the store and
/// the instance-slot permit, so the instance lives exactly as long as this future.
type GuestRun = Pin<Box<dyn Future<Output = Result<(), GuestFailure>> + Send>>;

/// Runs `request` through `component` and returns the guest's response.
///
/// The guest runs on the caller's task, not a task of its own: until it sets its response the
/// caller polls it, and afterwards the response body does, so a request costs no task spawn and
/// no hand-off between worker threads. A response dropped before the guest is done (a HEAD, a
/// client gone) leaves the guest to finish on a task of its own, as Spin's guests do.
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
    let (sender, mut receiver) = tokio::sync::oneshot::channel();
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

    let compiled = component.clone();
    let mut guest: GuestRun = Box::pin(async move {
        let id = &compiled.ctx.id;
        let run = async {
            let started = Instant::now();
            let proxy = compiled.pre.instantiate_async(&mut store).await?;
            metrics::instantiation(id, started.elapsed());
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
            metrics::guest_failure(id, failure.kind());
            tracing::error!(component = %id, kind = failure.kind(), error = %failure, "guest failed");
        }
        // The instance goes back to the pool before its slot permit does: a request waiting on
        // another thread for the permit must find the pool slot free.
        drop(store);
        drop(permit);
        outcome
    });

    // The response channel's sender lives in the store: once the guest has ended, whatever it
    // set is already in the channel.
    let (set, running) = tokio::select! {
        biased;
        set = &mut receiver => (set, Some(guest)),
        outcome = &mut guest => match receiver.try_recv() {
            Ok(set) => (Ok(set), None),
            Err(_) => return Err(no_response(&component.ctx.id, outcome)),
        },
    };
    match set {
        Ok(Ok(response)) => Ok(match running {
            Some(guest) => response.map(|body| {
                GuestDriven {
                    guest: Some(guest),
                    body,
                }
                .boxed_unsync()
            }),
            None => response,
        }),
        Ok(Err(code)) => {
            if let Some(guest) = running {
                finish_detached(guest);
            }
            Err(GuestFailure::ErrorCode(format!("{code:?}")))
        }
        // The guest dropped its response-outparam without setting it: let it end, ask it why.
        Err(_) => {
            let outcome = match running {
                Some(guest) => guest.await,
                None => Ok(()),
            };
            Err(no_response(&component.ctx.id, outcome))
        }
    }
}

/// Why a guest that ended produced no response.
fn no_response(id: &str, outcome: Result<(), GuestFailure>) -> GuestFailure {
    match outcome {
        Ok(()) => {
            metrics::guest_failure(id, "no_response");
            GuestFailure::NoResponse
        }
        Err(failure) => failure,
    }
}

/// Lets a guest whose response nobody reads run to its end on a task of its own (its failures
/// are logged by the run itself).
fn finish_detached(guest: GuestRun) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = guest.await;
        });
    }
}

/// A guest's response body that also drives the guest, which is still writing it.
struct GuestDriven {
    guest: Option<GuestRun>,
    body: HyperOutgoingBody,
}

impl Body for GuestDriven {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(guest) = &mut this.guest
            && guest.as_mut().poll(cx).is_ready()
        {
            this.guest = None;
        }
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for GuestDriven {
    fn drop(&mut self) {
        if let Some(guest) = self.guest.take() {
            finish_detached(guest);
        }
    }
}
