//! The wasmtime side: one engine, each component compiled once, a fresh store per request.
//!
//! The engine uses the pooling allocator (per-request instances are cheap to create and drop),
//! epoch interruption (a ticker thread; each store traps once its request's deadline passes and
//! yields to tokio on every tick so a spinning guest cannot starve other requests; a single
//! bulk-memory instruction, such as a guest's `memset` of a fresh 150 MB buffer, cannot be
//! interrupted), and
//! wasmtime's on-disk compilation cache so restarts skip Cranelift.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::app::ComponentSpec;
use crate::config::Config;
use crate::files::Mounts;
use crate::host::redis::RedisPool;
use crate::host::{self, ComponentContext, HostState, MemoryLimiter};

/// How often the epoch advances: the granularity of the wall-time limit and the longest a
/// CPU-bound guest runs before it yields its worker. 1 ms, not 10: a light request on that
/// worker waits about one slice per runnable guest at each of its I/O waits, and with two
/// heavy uploads per worker 10 ms slices made `/api/health` ~60 ms (docs/BENCHMARKS.md, "Heavy
/// uploads and a light request's latency").
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

const MB: usize = 1 << 20;

/// A component ready to instantiate.
pub struct CompiledComponent {
    /// Identity, variables and allow-list, shared with every instance.
    pub ctx: Arc<ComponentContext>,
    pub(crate) pre: ProxyPre<HostState>,
    environment: Vec<(String, String)>,
    mounts: Mounts,
}

impl CompiledComponent {
    /// The pre-instantiated component, for callers that drive an instance themselves.
    pub fn pre(&self) -> &ProxyPre<HostState> {
        &self.pre
    }
}

impl std::fmt::Debug for CompiledComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledComponent")
            .field("id", &self.ctx.id)
            .finish_non_exhaustive()
    }
}

/// The engine, the compiled components and the shared host resources.
pub struct Runtime {
    engine: Engine,
    components: HashMap<String, Arc<CompiledComponent>>,
    redis: Arc<RedisPool>,
    memory_limit: usize,
    /// Wall-time limit per request.
    pub request_timeout: Duration,
    /// One permit per pool slot: a request waits here rather than fail instantiation.
    pub instances: Arc<Semaphore>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("components", &self.components.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The engine configuration: pooling tuned for one short-lived instance per request.
///
/// Sizes follow Spin's defaults scaled by `max_instances`; `pagemap_scan` (Linux ≥ 6.7) lets
/// the pool reset only the pages a guest dirtied, which more than halves create+drop time.
fn engine_config(config: &Config, pooling: bool) -> anyhow::Result<wasmtime::Config> {
    let mut cfg = wasmtime::Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    if config.perfmap {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if config.compilation_cache {
        match wasmtime::Cache::new(wasmtime::CacheConfig::new()) {
            Ok(cache) => {
                cfg.cache(Some(cache));
            }
            Err(e) => {
                tracing::warn!(error = %e, "wasmtime compilation cache unavailable; compiling without it")
            }
        }
    }
    if pooling {
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_memories(n)
            .total_tables(2 * n)
            .total_stacks(n)
            .total_core_instances(4 * n)
            .table_elements(100_000)
            .max_component_instance_size(10 * MB)
            .max_core_instance_size(10 * MB)
            .max_core_instances_per_component(200)
            .max_tables_per_component(64)
            .max_memories_per_component(32)
            .max_tables_per_module(2)
            .max_memories_per_module(2)
            .max_memory_size(config.memory_limit_bytes.max(64 * 1024))
            .linear_memory_keep_resident(2 * MB)
            .table_keep_resident(MB / 2)
            .pagemap_scan(Enabled::Auto);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Ok(cfg)
}

/// Spawns the thread that advances the engine's epoch; it stops when the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) -> anyhow::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("edge-epoch".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .context("cannot spawn the epoch ticker thread")?;
    Ok(())
}

impl Runtime {
    /// Builds the engine and compiles every component (blocking: call from `spawn_blocking`).
    pub fn new(
        components: BTreeMap<String, ComponentSpec>,
        config: &Config,
    ) -> anyhow::Result<Self> {
        let engine = match Engine::new(&engine_config(config, true)?) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; falling back to on-demand allocation");
                Engine::new(&engine_config(config, false)?).map_err(anyhow::Error::from)?
            }
        };
        let mut linker: Linker<HostState> = Linker::new(&engine);
        host::add_to_linker(&mut linker).context("cannot link the host interfaces")?;

        let mut compiled = HashMap::new();
        for (id, spec) in components {
            let started = Instant::now();
            let component = compile(&engine, &spec)?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .and_then(|pre| ProxyPre::new(pre).map_err(anyhow::Error::from))
                .with_context(|| {
                    format!(
                        "component {id:?} cannot run here: it must export wasi:http/incoming-handler \
                         and import only WASI P2, wasi:http and fermyon:spin/{{redis,variables}}@2.0.0"
                    )
                })?;
            tracing::info!(component = %id, elapsed_ms = started.elapsed().as_millis() as u64, "component ready");
            let ctx = Arc::new(ComponentContext {
                id: id.clone(),
                variables: spec.variables,
                allowed_hosts: spec.allowed_hosts,
            });
            compiled.insert(
                id,
                Arc::new(CompiledComponent {
                    ctx,
                    pre,
                    environment: spec.environment,
                    mounts: spec.mounts,
                }),
            );
        }
        spawn_epoch_ticker(&engine)?;
        Ok(Self {
            engine,
            components: compiled,
            redis: Arc::new(RedisPool::new(
                config.redis_connections_per_address,
                config.worker_threads(),
            )),
            memory_limit: config.memory_limit_bytes,
            request_timeout: config.request_timeout,
            instances: Arc::new(Semaphore::new(config.max_instances.max(1) as usize)),
        })
    }

    /// The compiled component `id`.
    pub fn component(&self, id: &str) -> Option<&Arc<CompiledComponent>> {
        self.components.get(id)
    }

    /// A fresh store for one request to `component`, trapping once `deadline` has passed.
    pub fn new_store(
        &self,
        component: &CompiledComponent,
        deadline: Instant,
    ) -> anyhow::Result<Store<HostState>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&component.environment);
        // Guest stdout goes to our stderr too, keeping the host's stdout clean.
        wasi.stdout(std::io::stderr()).stderr(std::io::stderr());
        for preopen in &component.mounts.preopens {
            wasi.preopened_dir(&preopen.host, &preopen.guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot preopen {}", preopen.host.display()))?;
        }
        let limiter = MemoryLimiter::new(self.memory_limit);
        let state = HostState::new(
            wasi.build(),
            limiter,
            component.ctx.clone(),
            self.redis.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // tokio's yield, not wasmtime's `Yield`: that one wakes the task at once, so a
                // worker running a CPU-bound guest always has a task ready and polls its sockets
                // only every 61 task polls (tokio's `event_interval`), i.e. 61 guest slices per
                // I/O wait of every other request on the worker: 0.6 s each at 10 ms (issue 19).
                // tokio's yield wakes the guest only after the worker has polled its sockets.
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        Ok(store)
    }
}

/// Compiles one component (through the cache when enabled).
fn compile(engine: &Engine, spec: &ComponentSpec) -> anyhow::Result<Component> {
    if !spec.source.is_file() {
        bail!(
            "component {:?}: source {} does not exist (build the components first)",
            spec.id,
            spec.source.display()
        );
    }
    Component::from_file(engine, &spec.source)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component {:?}: cannot compile {}",
                spec.id,
                spec.source.display()
            )
        })
}
