//! `fermyon:spin/redis@2.0.0`, backed by a process-wide pool of shared connections.
//!
//! Spin opens a new TCP connection for every `connection.open`; here `open` checks the
//! component's allow-list and then hands out a clone of one of K multiplexed connections per
//! address (round-robin). A connection that fails for good is dropped from its slot and the next
//! `open` on that slot reconnects. Results are converted exactly as Spin converts them.
//!
//! An address may be a Redis Cluster node: the first connection to an address asks it
//! (`CLUSTER INFO`), and a cluster's connections are cluster clients that route each command by
//! its keys' slot, follow `MOVED`/`ASK` and refresh the slot map after a failover. The address,
//! the allow-list and the components stay as they are; see docs/DEPLOY.md.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncCommands, AsyncConnectionConfig, RedisError, Value};
use wasmtime::component::Resource;

use super::HostState;
use super::fermyon::spin::redis::{
    Error, Host, HostConnection, Payload, RedisParameter, RedisResult,
};
use crate::metrics;

/// Spin's per-instance cap on open connections.
const MAX_CONNECTIONS_PER_INSTANCE: u32 = 1024;
/// Addresses beyond this many get unpooled connections, so a wildcard allow-list cannot grow
/// the pool map without bound.
const MAX_POOLED_ADDRESSES: usize = 256;
/// Time allowed to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one command's reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a cluster command whose node is unreachable or mid-failover, with waits of
/// 50–500 ms: about a second, after which the guest gets the error (a 503 to its client).
const CLUSTER_RETRIES: u32 = 4;

// A pooled connection: to one Redis (`Single`), or to a Redis Cluster (`Cluster`); the pool
// never makes the self-repairing `Managed` kind, it replaces broken connections itself.
use service_kit::redis::Conn as Link;

/// What an address turned out to be.
enum Kind {
    Single,
    Cluster(Box<ClusterClient>),
}

/// Where a connection came from: its slot and the slot generation it belongs to.
type Origin = Option<(Arc<Slot>, u64)>;

/// The host side of a guest's `connection` resource.
pub struct Connection {
    conn: Link,
    /// Where the connection came from, to retire it if it breaks.
    origin: Origin,
    /// On a cluster, the slot of the last script or keyed command: `WAIT` goes to its primary,
    /// the node that has that write to replicate.
    last_route: Option<Route>,
}

/// One pooled connection, replaced when it breaks.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<(u64, Link)>>,
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl Slot {
    fn get(&self) -> Option<(u64, Link)> {
        self.current.lock().ok().and_then(|g| g.clone())
    }

    /// Forgets the connection of `generation` (if it is still current) so the next use reconnects.
    fn retire(&self, generation: u64) {
        if let Ok(mut current) = self.current.lock()
            && current.as_ref().is_some_and(|(g, _)| *g == generation)
        {
            *current = None;
        }
    }
}

/// The connections of one address.
struct AddressPool {
    client: redis::Client,
    /// Learnt on the first connection (a failed probe is not remembered).
    kind: tokio::sync::OnceCell<Kind>,
    slots: Vec<Arc<Slot>>,
    next: AtomicUsize,
}

/// Shared Redis connections for every instance of every component: one set per serving worker
/// thread, so a guest's commands and their replies stay on the thread that runs it.
pub struct RedisPool {
    per_address: usize,
    workers: Vec<RwLock<HashMap<String, Arc<AddressPool>>>>,
}

thread_local! {
    /// The serving worker this thread is (0 for any other thread).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as serving worker `index`: guests it runs use that worker's Redis
/// connections, whose reader tasks live on the same thread.
pub fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("per_address", &self.per_address)
            .field("workers", &self.workers.len())
            .finish()
    }
}

fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
}

impl RedisPool {
    /// A pool keeping `connections` connections for each address, split evenly over `workers`
    /// serving threads (at least one each).
    pub fn new(connections: usize, workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            per_address: (connections / workers).max(1),
            workers: (0..workers).map(|_| RwLock::default()).collect(),
        }
    }

    fn pool_for(&self, address: &str) -> Result<Option<Arc<AddressPool>>, Error> {
        let pools = &self.workers[WORKER.with(Cell::get) % self.workers.len()];
        if let Some(pool) = pools.read().ok().and_then(|p| p.get(address).cloned()) {
            return Ok(Some(pool));
        }
        let client = redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
        let Ok(mut pools) = pools.write() else {
            return Ok(None);
        };
        if let Some(pool) = pools.get(address) {
            return Ok(Some(pool.clone()));
        }
        if pools.len() >= MAX_POOLED_ADDRESSES {
            return Ok(None);
        }
        let pool = Arc::new(AddressPool {
            client,
            kind: tokio::sync::OnceCell::new(),
            slots: (0..self.per_address)
                .map(|_| Arc::new(Slot::default()))
                .collect(),
            next: AtomicUsize::new(0),
        });
        pools.insert(address.to_owned(), pool.clone());
        Ok(Some(pool))
    }

    /// A connection to `address`: a shared one when pooled, else a fresh one.
    async fn connect(&self, address: &str) -> Result<Connection, Error> {
        let Some(pool) = self.pool_for(address)? else {
            let client = redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
            let conn = client
                .get_multiplexed_async_connection_with_config(&connection_config())
                .await
                .map_err(connect_error)?;
            return Ok(Connection {
                conn: Link::Single(conn),
                origin: None,
                last_route: None,
            });
        };
        let index = pool.next.fetch_add(1, Ordering::Relaxed) % pool.slots.len();
        let slot = pool.slots[index].clone();
        if let Some((generation, conn)) = slot.get() {
            return Ok(Connection {
                conn,
                origin: Some((slot, generation)),
                last_route: None,
            });
        }
        let _connecting = slot.connecting.lock().await;
        if let Some((generation, conn)) = slot.get() {
            return Ok(Connection {
                conn,
                origin: Some((slot.clone(), generation)),
                last_route: None,
            });
        }
        let kind = pool.kind.get_or_try_init(|| probe(&pool.client)).await?;
        let conn = match kind {
            Kind::Single => Link::Single(
                pool.client
                    .get_multiplexed_async_connection_with_config(&connection_config())
                    .await
                    .map_err(connect_error)?,
            ),
            Kind::Cluster(cluster) => Link::Cluster(
                cluster
                    .get_async_connection()
                    .await
                    .map_err(connect_error)?,
            ),
        };
        let generation = slot.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut current) = slot.current.lock() {
            *current = Some((generation, conn.clone()));
        }
        Ok(Connection {
            conn,
            origin: Some((slot.clone(), generation)),
            last_route: None,
        })
    }
}

/// Asks the server at `client`'s address whether it is a Redis Cluster node. Any error reply
/// (cluster support disabled, the command refused or renamed) means a single Redis.
async fn probe(client: &redis::Client) -> Result<Kind, Error> {
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&connection_config())
        .await
        .map_err(connect_error)?;
    let info: redis::RedisResult<String> = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await;
    if !info.is_ok_and(|i| i.contains("cluster_state:")) {
        return Ok(Kind::Single);
    }
    let cluster = redis::cluster::ClusterClientBuilder::new([client.get_connection_info().clone()])
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(50)
        .max_retry_wait(500)
        .build()
        .map_err(connect_error)?;
    tracing::info!(
        address = %crate::outbound::without_userinfo(&client.get_connection_info().addr().to_string()),
        "redis address is a cluster node: routing by slot"
    );
    Ok(Kind::Cluster(Box::new(cluster)))
}

fn connect_error(e: RedisError) -> Error {
    metrics::redis_error("connect");
    tracing::warn!(error = %e, "redis connect failed");
    Error::Other(e.to_string())
}

impl HostState {
    /// The resource's connection (cloned: commands run without borrowing the store).
    fn redis_conn(&self, resource: &Resource<Connection>) -> wasmtime::Result<(Link, Origin)> {
        let c = self.table.get(resource)?;
        Ok((c.conn.clone(), c.origin.clone()))
    }
}

/// Converts a command error as Spin does (`other(e.to_string())`), retiring a broken connection.
fn command_error(e: &RedisError, origin: Option<&(Arc<Slot>, u64)>) -> Error {
    metrics::redis_error("command");
    // A cluster connection reconnects to its nodes by itself; a single one is replaced.
    if (e.is_unrecoverable_error() || e.is_connection_dropped() || e.is_io_error())
        && let Some((slot, generation)) = origin
        && slot
            .get()
            .is_some_and(|(_, link)| matches!(link, Link::Single(_)))
    {
        tracing::warn!(error = %e, "redis connection broken; it will be replaced");
        slot.retire(*generation);
    }
    Error::Other(e.to_string())
}

/// Runs one command on the resource's connection and converts its error.
macro_rules! run {
    ($self:ident, $resource:expr, |$conn:ident| $call:expr) => {{
        let (mut $conn, origin) = $self.redis_conn(&$resource)?;
        Ok($call.await.map_err(|e| command_error(&e, origin.as_ref())))
    }};
}

impl Host for HostState {}

impl HostConnection for HostState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        if !self.component.allowed_hosts.allows(&address, "redis") {
            let address = crate::outbound::without_userinfo(&address);
            tracing::info!(component = %self.component.id, %address, "redis address not allowed");
            return Ok(Err(Error::InvalidAddress));
        }
        if self.redis_connections >= MAX_CONNECTIONS_PER_INSTANCE {
            return Ok(Err(Error::TooManyConnections));
        }
        let conn = match self.redis.connect(&address).await {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        match self.table.push(conn) {
            Ok(resource) => {
                self.redis_connections += 1;
                Ok(Ok(resource))
            }
            Err(_) => Ok(Err(Error::TooManyConnections)),
        }
    }

    async fn publish(
        &mut self,
        this: Resource<Connection>,
        channel: String,
        payload: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        run!(self, this, |conn| conn
            .publish::<_, _, ()>(&channel, &payload))
    }

    async fn get(
        &mut self,
        this: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Payload>, Error>> {
        run!(self, this, |conn| conn.get::<_, Option<Vec<u8>>>(&key))
    }

    async fn set(
        &mut self,
        this: Resource<Connection>,
        key: String,
        value: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        run!(self, this, |conn| conn.set::<_, _, ()>(&key, &value))
    }

    async fn incr(
        &mut self,
        this: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        run!(self, this, |conn| conn.incr::<_, _, i64>(&key, 1))
    }

    async fn del(
        &mut self,
        this: Resource<Connection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        run!(self, this, |conn| conn.del::<_, u32>(&keys))
    }

    async fn sadd(
        &mut self,
        this: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let (mut conn, origin) = self.redis_conn(&this)?;
        Ok(conn.sadd::<_, _, u32>(&key, &values).await.map_err(|e| {
            if matches!(
                e.kind(),
                redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse
            ) {
                Error::TypeError
            } else {
                command_error(&e, origin.as_ref())
            }
        }))
    }

    async fn smembers(
        &mut self,
        this: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        run!(self, this, |conn| conn.smembers::<_, Vec<String>>(&key))
    }

    async fn srem(
        &mut self,
        this: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        run!(self, this, |conn| conn.srem::<_, _, u32>(&key, &values))
    }

    async fn execute(
        &mut self,
        this: Resource<Connection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let wait = command.eq_ignore_ascii_case("WAIT");
        // Only a cluster connection routes `WAIT`, so only it tracks its last keyed slot.
        let last_route = {
            let c = self.table.get_mut(&this)?;
            if matches!(c.conn, Link::Cluster(_))
                && let Some(key) = first_key(&command, &arguments)
            {
                c.last_route = Some(Route::with_key(key, SlotAddr::Master));
            }
            c.last_route
        };
        let (mut conn, origin) = self.redis_conn(&this)?;
        // Sized up front: a like's EVALSHA carries a dozen arguments, and growing the command's
        // buffers one argument at a time reallocates them several times per call.
        let data: usize = arguments
            .iter()
            .map(|a| match a {
                RedisParameter::Int64(_) => 20,
                RedisParameter::Binary(v) => v.len(),
            })
            .sum();
        let mut cmd = redis::Cmd::with_capacity(arguments.len() + 1, command.len() + data);
        cmd.arg(&command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(v) => cmd.arg(v),
                RedisParameter::Binary(v) => cmd.arg(v),
            };
        }
        let reply = match (&mut conn, wait, last_route) {
            // A cluster client sends `WAIT` to every primary; the write to wait for is on one.
            (Link::Cluster(cluster), true, Some(route)) => {
                cluster
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
            }
            _ => cmd.query_async::<Value>(&mut conn).await,
        };
        let value = match reply {
            Ok(value) => value,
            Err(e) => return Ok(Err(command_error(&e, origin.as_ref()))),
        };
        let mut results = Vec::new();
        Ok(flatten(value, &mut results)
            .map(|()| results)
            .map_err(|message| {
                metrics::redis_error("command");
                Error::Other(message)
            }))
    }

    async fn drop(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.redis_connections = self.redis_connections.saturating_sub(1);
        Ok(())
    }
}

/// Converts a reply to `redis-result`s exactly as Spin does: arrays and sets are flattened
/// recursively, `OK` becomes `status("OK")`, doubles and big numbers become their text as
/// `binary`, booleans become `int64` 0/1; maps, attributes, verbatim strings and pushes are errors.
pub fn flatten(value: Value, out: &mut Vec<RedisResult>) -> Result<(), String> {
    match value {
        Value::Nil => out.push(RedisResult::Nil),
        Value::Int(v) => out.push(RedisResult::Int64(v)),
        Value::BulkString(bytes) => out.push(RedisResult::Binary(bytes)),
        Value::SimpleString(s) => out.push(RedisResult::Status(s)),
        Value::Okay => out.push(RedisResult::Status("OK".to_owned())),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        Value::Double(v) => out.push(RedisResult::Binary(v.to_string().into_bytes())),
        Value::Boolean(v) => out.push(RedisResult::Int64(i64::from(v))),
        Value::BigNumber(v) => {
            out.push(RedisResult::Binary(
                String::from_utf8_lossy(&v).into_owned().into_bytes(),
            ));
        }
        Value::Map(_) => return Err(unsupported("Redis Map type is not supported")),
        Value::Attribute { .. } => {
            return Err(unsupported("Redis Attribute type is not supported"));
        }
        Value::VerbatimString { .. } => {
            return Err(unsupported(
                "Redis string with format attribute is not supported",
            ));
        }
        Value::Push { .. } => return Err(unsupported("Redis Pub/Sub types are not supported")),
        Value::ServerError(e) => return Err(format!("Server error: {e:?}")),
        #[allow(
            unreachable_patterns,
            reason = "redis::Value is non-exhaustive across versions"
        )]
        _ => return Err(unsupported("unknown Redis value type")),
    }
    Ok(())
}

/// The first key of a command sent through `execute`: a script's first declared key, else the
/// first argument of a command that takes a key there. Keyless commands give `None`.
fn first_key<'a>(command: &str, arguments: &'a [RedisParameter]) -> Option<&'a [u8]> {
    let binary = |i: usize| match arguments.get(i) {
        Some(RedisParameter::Binary(b)) => Some(b.as_slice()),
        _ => None,
    };
    let is = |names: &[&str]| names.iter().any(|n| command.eq_ignore_ascii_case(n));
    if is(&["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"]) {
        let count = match arguments.get(1) {
            Some(RedisParameter::Int64(n)) => *n,
            Some(RedisParameter::Binary(b)) => std::str::from_utf8(b).ok()?.parse().ok()?,
            None => return None,
        };
        (count > 0).then(|| binary(2)).flatten()
    } else if is(&[
        "WAIT", "PING", "PUBLISH", "SPUBLISH", "INFO", "CLUSTER", "SCRIPT", "TIME", "ECHO",
        "DBSIZE",
    ]) {
        None
    } else {
        binary(0)
    }
}

fn unsupported(detail: &str) -> String {
    format!("Could not convert Redis response - TypeError: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(value: Value) -> Result<Vec<RedisResult>, String> {
        let mut out = Vec::new();
        flatten(value, &mut out).map(|()| out)
    }

    fn debug(results: &[RedisResult]) -> String {
        format!("{results:?}")
    }

    #[test]
    fn scalars_convert_like_spin() {
        assert_eq!(
            debug(&convert(Value::Nil).expect("nil")),
            debug(&[RedisResult::Nil])
        );
        assert_eq!(
            debug(&convert(Value::Okay).expect("ok")),
            debug(&[RedisResult::Status("OK".into())])
        );
        assert_eq!(
            debug(&convert(Value::SimpleString("PONG".into())).expect("status")),
            debug(&[RedisResult::Status("PONG".into())])
        );
        assert_eq!(
            debug(&convert(Value::Int(-3)).expect("int")),
            debug(&[RedisResult::Int64(-3)])
        );
        assert_eq!(
            debug(&convert(Value::BulkString(b"v".to_vec())).expect("bulk")),
            debug(&[RedisResult::Binary(b"v".to_vec())])
        );
        assert_eq!(
            debug(&convert(Value::Double(1.5)).expect("double")),
            debug(&[RedisResult::Binary(b"1.5".to_vec())])
        );
        assert_eq!(
            debug(&convert(Value::Boolean(true)).expect("bool")),
            debug(&[RedisResult::Int64(1)])
        );
    }

    #[test]
    fn nested_arrays_are_flattened() {
        let value = Value::Array(vec![
            Value::Int(1),
            Value::Array(vec![
                Value::Nil,
                Value::Array(vec![Value::BulkString(b"x".to_vec())]),
            ]),
            Value::Set(vec![Value::Okay]),
        ]);
        assert_eq!(
            debug(&convert(value).expect("flattened")),
            debug(&[
                RedisResult::Int64(1),
                RedisResult::Nil,
                RedisResult::Binary(b"x".to_vec()),
                RedisResult::Status("OK".into()),
            ])
        );
        assert!(convert(Value::Array(vec![])).expect("empty").is_empty());
    }

    #[test]
    fn maps_are_errors() {
        assert!(convert(Value::Map(vec![(Value::Int(1), Value::Int(2))])).is_err());
    }
}
