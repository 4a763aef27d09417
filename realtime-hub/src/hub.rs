//! State shared by the socket handlers, the bridge and the HTTP routes of one hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use service_kit::redis::Lazy;

use crate::config::Config;
use crate::metrics::Metrics;

/// One hub's shared state (cheap to clone through `Arc`).
#[derive(Debug)]
pub struct Hub {
    pub config: Config,
    /// Command connection for count reads, made on first use; reconnects on its own.
    pub redis: Lazy,
    pub metrics: Metrics,
    /// True while the Pub/Sub bridge is subscribed.
    redis_up: AtomicBool,
}

/// The handle the handlers get through socketioxide's `State` extractor.
pub type SharedHub = Arc<Hub>;

impl Hub {
    pub fn new(config: Config, redis: Lazy) -> Self {
        Self {
            config,
            redis,
            metrics: Metrics::default(),
            redis_up: AtomicBool::new(false),
        }
    }

    /// Whether the bridge is currently subscribed to Redis.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub(crate) fn set_redis_up(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
    }
}
