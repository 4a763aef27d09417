//! Redis as the generator reads it, through `service_kit::redis`: the same code on one Redis and
//! on a Redis Cluster. Bulk reads go as one pipeline on a single Redis and as one pipeline per
//! slot on a cluster (a cluster pipeline may not cross slots), with replies in queueing order.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use redis::cluster_routing::Slot;
use redis::{Cmd, Pipeline, Value};
use service_kit::redis::{Conn, Options, Redis};

/// A connection of the generator's own; replies to its bulk reads may take a while on a busy
/// Redis.
pub async fn connect(redis: &Redis) -> anyhow::Result<Conn> {
    let options = Options {
        connect_timeout: Duration::from_secs(5),
        ..Options::default()
    }
    .with_response_timeout(Duration::from_secs(30));
    redis.connect(&options).await.context("connecting to Redis")
}

/// Commands queued one by one under the key that routes each; [`Reads::query`] returns every
/// reply in the order the commands were queued.
pub struct Reads {
    cluster: bool,
    /// Per slot (one entry, `None`, on a single Redis): the pipeline and each command's index.
    pipes: HashMap<Option<Slot>, (Pipeline, Vec<usize>)>,
    queued: usize,
}

impl Reads {
    /// An empty batch for `conn`'s kind of Redis.
    pub fn for_conn(conn: &Conn) -> Self {
        Self {
            cluster: matches!(conn, Conn::Cluster(_)),
            pipes: HashMap::new(),
            queued: 0,
        }
    }

    /// Queues `cmd`, routed by `key`.
    pub fn add(&mut self, key: &str, cmd: Cmd) -> &mut Self {
        let slot = self.cluster.then(|| Slot::for_key(key));
        let (pipe, order) = self
            .pipes
            .entry(slot)
            .or_insert_with(|| (redis::pipe(), Vec::new()));
        pipe.add_command(cmd);
        order.push(self.queued);
        self.queued += 1;
        self
    }

    /// How many commands are queued.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Sends every pipeline at once and returns the replies in queueing order.
    pub async fn query(self, conn: &Conn) -> redis::RedisResult<Vec<Value>> {
        let sends = self.pipes.into_values().map(|(pipe, order)| {
            let mut conn = conn.clone();
            async move {
                let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>(order.into_iter().zip(replies))
            }
        });
        let mut out = vec![Value::Nil; self.queued];
        for replies in futures::future::try_join_all(sends).await? {
            for (i, v) in replies {
                if let Some(slot) = out.get_mut(i) {
                    *slot = v;
                }
            }
        }
        Ok(out)
    }
}
