//! The per-request store's resource limits.

use wasmtime::ResourceLimiter;

/// Caps a store's linear memory and remembers whether the cap was hit, so an out-of-memory
/// abort can be told apart from any other trap.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimiter {
    limit: usize,
    /// Set when a `memory.grow` was refused.
    pub hit: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory per store.
    pub fn new(limit: usize) -> Self {
        Self { limit, hit: false }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
