//! Metric names and the few helpers that record them (`metrics` facade; Prometheus in `admin.rs`).
//!
//! Nothing is recorded unless a recorder is installed (`main` installs one when there is an
//! admin listener to serve it; tests may install one).
//!
//! The per-request metrics go through handles each serving thread keeps per component and
//! status: looking a labelled metric up in the registry costs key hashing and label allocations
//! on every request, which is measurable on the like path (`docs/BENCHMARKS.md`, run 7). A
//! thread takes its handles from the recorder installed when it first records, so the recorder
//! must be installed before the server starts, as `main` does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

/// Counter: requests answered, labelled `component` and `status`.
pub const REQUESTS: &str = "edge_requests_total";
/// Histogram: seconds from request received to response headers, labelled `component`.
pub const REQUEST_DURATION: &str = "edge_request_duration_seconds";
/// Histogram: seconds to instantiate a component, labelled `component`.
pub const INSTANTIATION: &str = "edge_instantiation_seconds";
/// Counter: guest failures, labelled `component` and `kind` (trap, timeout, no_response).
pub const GUEST_FAILURES: &str = "edge_guest_failures_total";
/// Counter: Redis errors seen by guests, labelled `kind` (connect, command).
pub const REDIS_ERRORS: &str = "edge_redis_errors_total";
/// Gauge: requests being handled right now.
pub const IN_FLIGHT: &str = "edge_requests_in_flight";

/// Describes every metric once (idempotent, cheap).
pub fn describe() {
    metrics::describe_counter!(REQUESTS, "HTTP requests answered, by component and status");
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from request received to response headers"
    );
    metrics::describe_histogram!(
        INSTANTIATION,
        metrics::Unit::Seconds,
        "Component instantiation time"
    );
    metrics::describe_counter!(
        GUEST_FAILURES,
        "Guest traps, timeouts and missing responses"
    );
    metrics::describe_counter!(REDIS_ERRORS, "Redis connection and command errors");
    metrics::describe_gauge!(IN_FLIGHT, "Requests in flight");
}

/// One component's per-request handles on one thread.
struct ComponentHandles {
    duration: Histogram,
    instantiation: Histogram,
    /// `edge_requests_total` by status; a handful of statuses per component.
    requests: Vec<(u16, Counter)>,
}

impl ComponentHandles {
    fn new(component: &str) -> Self {
        Self {
            duration: metrics::histogram!(REQUEST_DURATION, "component" => component.to_owned()),
            instantiation: metrics::histogram!(INSTANTIATION, "component" => component.to_owned()),
            requests: Vec::new(),
        }
    }

    fn requests(&mut self, component: &str, status: u16) -> &Counter {
        let i = match self.requests.iter().position(|(s, _)| *s == status) {
            Some(i) => i,
            None => {
                let counter = metrics::counter!(
                    REQUESTS,
                    "component" => component.to_owned(),
                    "status" => status.to_string()
                );
                self.requests.push((status, counter));
                self.requests.len() - 1
            }
        };
        &self.requests[i].1
    }
}

thread_local! {
    /// This thread's handles, by component id (`-` for requests no component answered).
    static HANDLES: RefCell<HashMap<String, ComponentHandles>> = RefCell::new(HashMap::new());
    static IN_FLIGHT_GAUGE: Gauge = metrics::gauge!(IN_FLIGHT);
}

/// Runs `f` on this thread's handles for `component`.
fn with_handles(component: &str, f: impl FnOnce(&mut ComponentHandles)) {
    HANDLES.with_borrow_mut(|handles| match handles.get_mut(component) {
        Some(h) => f(h),
        // A component's first request on this thread: the only time its name is copied.
        None => f(handles
            .entry(component.to_owned())
            .or_insert_with(|| ComponentHandles::new(component))),
    });
}

/// Records one answered request.
pub fn request(component: &str, status: u16, elapsed: Duration) {
    with_handles(component, |h| {
        h.requests(component, status).increment(1);
        h.duration.record(elapsed.as_secs_f64());
    });
}

/// Records one instantiation.
pub fn instantiation(component: &str, elapsed: Duration) {
    with_handles(component, |h| {
        h.instantiation.record(elapsed.as_secs_f64());
    });
}

/// Records one guest failure.
pub fn guest_failure(component: &str, kind: &'static str) {
    metrics::counter!(GUEST_FAILURES, "component" => component.to_owned(), "kind" => kind)
        .increment(1);
}

/// Records one Redis error.
pub fn redis_error(kind: &'static str) {
    metrics::counter!(REDIS_ERRORS, "kind" => kind).increment(1);
}

/// Keeps the in-flight gauge right for as long as the guard lives.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    /// Counts a request in.
    pub fn enter() -> Self {
        IN_FLIGHT_GAUGE.with(|g| g.increment(1.0));
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT_GAUGE.with(|g| g.decrement(1.0));
    }
}
