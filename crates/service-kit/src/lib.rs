//! The few lines every native service's `main` needs (edge host, realtime hub, sync daemon), so
//! they behave alike: logs on stderr filtered by `RUST_LOG`, colours only on a terminal, and a
//! graceful stop on SIGINT or SIGTERM. Also what the benchmarks and the load generator read of
//! a process's CPU and memory ([`procfs`]). [`redis`] connects to one Redis or a Redis Cluster
//! alike.

pub mod procfs;
#[cfg(feature = "runtime")]
pub mod redis;
#[cfg(feature = "runtime")]
mod runtime;

#[cfg(feature = "runtime")]
pub use runtime::{bind_listeners, init_tracing, shutdown_signal};
