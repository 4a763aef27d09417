//! Live progress of a run, as events a sink receives: the binary draws a progress bar from
//! them, the load lab broadcasts them to its pages as they are.

/// The event, its phases and its per-second tick are the load lab's wire types
/// (`lab-protocol`): one set of types from the generator to the page, with no copy between.
pub use lab_protocol::{Phase, Progress as ProgressEvent, Tick};

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
