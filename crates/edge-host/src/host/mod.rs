//! Per-instance host state and the imports every component is linked against.
//!
//! Each request gets a fresh [`HostState`] in a fresh `Store`: WASI (P2) and `wasi:http` from
//! wasmtime, plus our `fermyon:spin/redis@2.0.0` and `fermyon:spin/variables@2.0.0`.

pub mod http;
mod limiter;
pub mod redis;
pub mod variables;

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::AllowedHosts;

pub use limiter::MemoryLimiter;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "fermyon:spin/host",
    imports: {
        "fermyon:spin/variables.get": trappable,
        default: async | trappable,
    },
    with: {
        "fermyon:spin/redis.connection": crate::host::redis::Connection,
    },
});

/// What a component may see and reach, shared by all of its instances.
#[derive(Debug)]
pub struct ComponentContext {
    /// The component id.
    pub id: String,
    /// Resolved component variables.
    pub variables: HashMap<String, String>,
    /// Outbound allow-list.
    pub allowed_hosts: AllowedHosts,
}

/// The data of one request's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: http::OutboundHttp,
    /// Memory limit enforced by the store's limiter.
    pub(crate) limiter: MemoryLimiter,
    component: Arc<ComponentContext>,
    redis: Arc<redis::RedisPool>,
    redis_connections: u32,
}

impl HostState {
    /// State for one instance of `component`.
    pub fn new(
        wasi: WasiCtx,
        limiter: MemoryLimiter,
        component: Arc<ComponentContext>,
        redis: Arc<redis::RedisPool>,
    ) -> Self {
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: http::OutboundHttp,
            limiter,
            component,
            redis,
            redis_connections: 0,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Adds WASI P2, `wasi:http` and the Spin interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    fermyon::spin::redis::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    fermyon::spin::variables::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}
