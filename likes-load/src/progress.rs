//! Live progress of a run, as events a sink receives: the binary draws a progress bar from
//! them, a control endpoint can serialise and stream them (every event is JSON).

use serde::Serialize;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Users,
    Posts,
    Sockets,
    Load,
    Repair,
    Drain,
    Report,
}

/// One thing that happened during a run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// A phase started.
    Phase { phase: Phase },
    /// Setup progress (users, posts, sockets).
    Setup { phase: Phase, done: u64, total: u64 },
    /// Once a second during the load phase.
    Tick(Tick),
    /// The drain wait: PostgreSQL posts that already match.
    Drain { matching: u64, total: u64 },
    /// A warning worth showing (e.g. fewer sockets than asked).
    Note { message: String },
}

/// The load phase's last second; the type lives in the core crate because the load lab's page
/// reads it too.
pub use likes_core::api::lab::Tick;

/// Receives progress; must be cheap (called from the run's tasks).
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: ProgressEvent);
}

/// Discards progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _: ProgressEvent) {}
}

/// Forwards progress into a channel, e.g. to a Socket.IO emitter.
impl ProgressSink for tokio::sync::mpsc::UnboundedSender<ProgressEvent> {
    fn event(&self, event: ProgressEvent) {
        let _ = self.send(event);
    }
}
