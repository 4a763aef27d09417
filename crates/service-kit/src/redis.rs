//! Redis for the native services (hub, daemon, tools): the same code against one Redis or a
//! Redis Cluster. An address is a cluster when the node says so (`CLUSTER INFO`, asked once, on
//! the first connection, as the edge host does), so a service is pointed at any node of either
//! with one URL and no flag. Cluster connections route each command by its keys' slot; every
//! key and channel of ours carries its shard's hash tag, so each command and script is one slot.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ConnectionInfo, Pipeline, ProtocolVersion, PushInfo, PushKind, RedisError};
use redis::{RedisFuture, RedisResult, Value};
use tokio::sync::{OnceCell, mpsc};

/// How long a connection may take and how long a reply may take; on a cluster, how often a
/// command is retried (following `MOVED`, or waiting out a failover) before its error is the
/// caller's.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// 0 for a connection whose commands must not silently move to another node between two
    /// of them (`WATCH`…`EXEC`).
    pub cluster_retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            cluster_retries: 4,
        }
    }
}

impl Options {
    /// These options with replies allowed to take `timeout`.
    pub fn with_response_timeout(self, timeout: Duration) -> Self {
        Self {
            response_timeout: timeout,
            ..self
        }
    }
}

/// A connection to one Redis or to a whole cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub enum Conn {
    /// One connection to one Redis; once broken it stays broken: connect again.
    Single(MultiplexedConnection),
    /// One Redis, reconnecting by itself in the background.
    Managed(ConnectionManager),
    /// A cluster: a connection per node, reconnecting and following the slot map by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Managed(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Managed(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A Redis address, single or cluster; cheap to clone. Nothing is dialled until a connection
/// is asked for, so a service starts while Redis is down and connects once it is up.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    info: ConnectionInfo,
    cluster: OnceCell<bool>,
}

impl Redis {
    /// Parses `url` (`redis://user:password@host:port`); no I/O.
    pub fn open(url: &str) -> RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                info: client.get_connection_info().clone(),
                cluster: OnceCell::new(),
            }),
        })
    }

    /// Whether the address is a Redis Cluster node, asked once: any error reply (cluster
    /// support off, the command refused or renamed) means a single Redis.
    pub async fn is_cluster(&self) -> RedisResult<bool> {
        self.inner
            .cluster
            .get_or_try_init(|| async {
                let mut conn = self.single(&Options::default()).await?;
                let info: RedisResult<String> = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await;
                let cluster = info.is_ok_and(|i| i.contains("cluster_state:"));
                if cluster {
                    tracing::info!("redis address is a cluster node: routing by slot");
                }
                Ok(cluster)
            })
            .await
            .copied()
    }

    /// A new connection of its own: on a single Redis one TCP connection, on a cluster one
    /// per node. For blocking reads and `WATCH`, which must not share a connection.
    pub async fn connect(&self, options: &Options) -> RedisResult<Conn> {
        if self.is_cluster().await? {
            Ok(Conn::Cluster(
                self.cluster_client(options, None)?
                    .get_async_connection()
                    .await?,
            ))
        } else {
            Ok(Conn::Single(self.single(options).await?))
        }
    }

    /// A connection for many callers at once that repairs itself: on a single Redis a
    /// [`ConnectionManager`], on a cluster a cluster connection.
    pub async fn shared(&self, options: &Options) -> RedisResult<Conn> {
        if self.is_cluster().await? {
            return self.connect(options).await;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(1);
        let client = redis::Client::open(self.inner.info.clone())?;
        Ok(Conn::Managed(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }

    /// Subscribes to the sharded `channels` (`SSUBSCRIBE`), each on the node that owns its
    /// slot, and returns once every subscription is confirmed.
    pub async fn subscribe_shards(
        &self,
        channels: &[String],
        options: &Options,
    ) -> RedisResult<ShardSubscription> {
        let (tx, mut pushes) = mpsc::unbounded_channel();
        let conn = if self.is_cluster().await? {
            let mut conn = self
                .cluster_client(options, Some(tx))?
                .get_async_connection()
                .await?;
            // One command per channel: a multi-channel SSUBSCRIBE must be one slot.
            for channel in channels {
                conn.ssubscribe(channel).await?;
            }
            Conn::Cluster(conn)
        } else {
            // redis-rs subscribes to sharded channels only on its cluster connection; on a RESP3
            // connection a command sent without awaiting a reply delivers the confirmations and
            // the messages as pushes, which is public API.
            let info = self.resp3();
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(options.connect_timeout))
                .set_response_timeout(Some(options.response_timeout))
                .set_push_sender(tx);
            let mut conn = redis::Client::open(info)?
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("SSUBSCRIBE")
                .arg(channels)
                .set_no_response(true)
                .exec_async(&mut conn)
                .await?;
            let mut confirmed = 0;
            while confirmed < channels.len() {
                match pushes.recv().await {
                    Some(p) if p.kind == PushKind::SSubscribe => confirmed += 1,
                    Some(p) if p.kind == PushKind::Disconnection => return Err(closed()),
                    Some(_) => {}
                    None => return Err(closed()),
                }
            }
            Conn::Single(conn)
        };
        let topology = topology(&conn).await?;
        Ok(ShardSubscription {
            conn,
            pushes,
            topology,
        })
    }

    async fn single(&self, options: &Options) -> RedisResult<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout));
        redis::Client::open(self.inner.info.clone())?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    fn resp3(&self) -> ConnectionInfo {
        let info = self.inner.info.clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        info.set_redis_settings(settings)
    }

    fn cluster_client(
        &self,
        options: &Options,
        pushes: Option<mpsc::UnboundedSender<PushInfo>>,
    ) -> RedisResult<ClusterClient> {
        let mut builder = ClusterClientBuilder::new([self.resp3_if(pushes.is_some())])
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.response_timeout)
            .retries(options.cluster_retries)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(tx) = pushes {
            builder = builder.use_protocol(ProtocolVersion::RESP3).push_sender(tx);
        }
        builder.build()
    }

    fn resp3_if(&self, resp3: bool) -> ConnectionInfo {
        if resp3 {
            self.resp3()
        } else {
            self.inner.info.clone()
        }
    }
}

/// What a [`ShardSubscription`] delivers.
#[derive(Debug)]
pub enum Event {
    /// A message on one of the channels.
    Message(redis::Msg),
    /// Messages may have been missed (a node's connection dropped, or a channel's slot moved
    /// away from the node it was subscribed on): subscribe again and re-read what matters.
    Lost(&'static str),
}

/// Sharded subscriptions and the connection that holds them; dropping it unsubscribes.
pub struct ShardSubscription {
    conn: Conn,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// Which node served which slots when the subscriptions were made.
    topology: Vec<(u16, u16, String)>,
}

impl ShardSubscription {
    /// The next message, or [`Event::Lost`]: the subscription is then not to be trusted, and
    /// the caller subscribes anew.
    pub async fn next(&mut self) -> Event {
        loop {
            let Some(push) = self.pushes.recv().await else {
                return Event::Lost("the connection closed");
            };
            match push.kind {
                PushKind::Disconnection => return Event::Lost("a connection dropped"),
                PushKind::SUnsubscribe => return Event::Lost("a channel's slot moved"),
                _ => {}
            }
            if let Some(msg) = redis::Msg::from_push_info(push) {
                return Event::Message(msg);
            }
        }
    }

    /// A round trip on the subscription's connection. On a cluster it also compares the slot
    /// map with the one the subscriptions were made on, and fails if a slot changed hands (a
    /// failover the pushes did not tell about).
    pub async fn check(&mut self) -> RedisResult<()> {
        if matches!(self.conn, Conn::Cluster(_)) {
            if topology(&self.conn).await? != self.topology {
                return Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "the cluster's slot map changed",
                )));
            }
            return Ok(());
        }
        redis::cmd("PING").query_async(&mut self.conn).await
    }
}

/// Which node serves which slots (`CLUSTER SLOTS`, primaries only), sorted; empty on a single
/// Redis.
async fn topology(conn: &Conn) -> RedisResult<Vec<(u16, u16, String)>> {
    if !matches!(conn, Conn::Cluster(_)) {
        return Ok(Vec::new());
    }
    let mut conn = conn.clone();
    let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let mut out: Vec<(u16, u16, String)> = slots
        .iter()
        .filter_map(|range| {
            let from: u16 = redis::from_redis_value_ref(range.first()?).ok()?;
            let to: u16 = redis::from_redis_value_ref(range.get(1)?).ok()?;
            let primary: Vec<Value> = redis::from_redis_value_ref(range.get(2)?).ok()?;
            let host: String = redis::from_redis_value_ref(primary.first()?).ok()?;
            let port: u16 = redis::from_redis_value_ref(primary.get(1)?).ok()?;
            Some((from, to, format!("{host}:{port}")))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn closed() -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "the subscription's connection closed"))
}

/// A [`Redis::shared`] connection made on first use (and retried on the next use if that
/// failed), so a service can hold one from the start while Redis is still down.
pub struct Lazy {
    redis: Redis,
    options: Options,
    conn: OnceCell<Conn>,
}

impl Lazy {
    pub fn new(redis: Redis, options: Options) -> Self {
        Self {
            redis,
            options,
            conn: OnceCell::new(),
        }
    }

    /// The shared connection (a clone: it is used by many callers at once).
    pub async fn get(&self) -> RedisResult<Conn> {
        self.conn
            .get_or_try_init(|| self.redis.shared(&self.options))
            .await
            .cloned()
    }
}

impl std::fmt::Debug for Lazy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy")
            .field("connected", &self.conn.initialized())
            .finish_non_exhaustive()
    }
}

/// Commands sent in bulk, each queued under the key that routes it: on a single Redis one
/// pipeline, on a cluster one pipeline per slot (a pipeline may not cross slots there), all
/// sent at once. Within a slot the order of queueing is kept.
pub struct Bulk {
    cluster: bool,
    atomic: bool,
    pipes: std::collections::HashMap<Option<redis::cluster_routing::Slot>, Pipeline>,
}

impl Bulk {
    /// An empty batch for `conn`'s kind of Redis.
    pub fn for_conn(conn: &Conn) -> Self {
        Self {
            cluster: matches!(conn, Conn::Cluster(_)),
            atomic: false,
            pipes: std::collections::HashMap::new(),
        }
    }

    /// Each pipeline runs as one `MULTI`/`EXEC` (on a cluster: atomic per slot only).
    pub fn atomic(mut self) -> Self {
        self.atomic = true;
        self
    }

    /// The pipeline for commands on `key`'s slot.
    pub fn on(&mut self, key: &str) -> &mut Pipeline {
        let slot = self
            .cluster
            .then(|| redis::cluster_routing::Slot::for_key(key));
        let atomic = self.atomic;
        self.pipes.entry(slot).or_insert_with(|| {
            let mut pipe = redis::pipe();
            if atomic {
                pipe.atomic();
            }
            pipe
        })
    }

    /// Sends every pipeline and waits for all; replies are dropped (queue commands with
    /// `.ignore()`), errors are returned.
    pub async fn run(self, conn: &Conn) -> RedisResult<()> {
        let sends = self.pipes.into_values().map(|pipe| {
            let mut conn = conn.clone();
            async move { pipe.exec_async(&mut conn).await }
        });
        futures::future::try_join_all(sends).await.map(drop)
    }
}
