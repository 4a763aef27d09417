//! Metric names and the few helpers that record them (`metrics` facade; Prometheus in `admin.rs`).
//!
//! Nothing is recorded unless a recorder is installed (main installs one; tests may not).

use std::time::Duration;

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

/// Records one answered request.
pub fn request(component: &str, status: u16, elapsed: Duration) {
    metrics::counter!(REQUESTS, "component" => component.to_owned(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(REQUEST_DURATION, "component" => component.to_owned())
        .record(elapsed.as_secs_f64());
}

/// Records one instantiation.
pub fn instantiation(component: &str, elapsed: Duration) {
    metrics::histogram!(INSTANTIATION, "component" => component.to_owned())
        .record(elapsed.as_secs_f64());
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
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}
