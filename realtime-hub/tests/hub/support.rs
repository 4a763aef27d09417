//! Starting hubs and publishing like/post events the way the edge's script does.

use std::net::SocketAddr;
use std::time::Duration;

use likes_core::PostId;
use likes_core::events::LikeMessage;
use likes_core::keys::{Channel, PostKeys, Shard};
use realtime_hub::Config;
use testkit::TestRedis;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A hub running in this test process; shut down on drop.
pub struct Hub {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`).
    pub admin_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Hub {
    /// A throw-away Redis, an operator connection to it, and a hub with the default
    /// configuration logged in as the hub's role: what most tests start from.
    pub async fn with_redis() -> (TestRedis, redis::aio::MultiplexedConnection, Self) {
        let redis = TestRedis::start();
        let conn = redis.async_conn().await;
        let hub = Self::start(&redis.url_as(testkit::Role::Hub), |_| {}).await;
        (redis, conn, hub)
    }

    /// Starts a hub on port 0 against `redis_url` and waits until it is subscribed to Redis
    /// (`/healthz` 200), so nothing published afterwards is missed.
    pub async fn start(redis_url: &str, tweak: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin");
        let admin_addr = admin.local_addr().expect("admin addr");
        let mut config = Config::new(redis_url);
        config.reconnect_max = Duration::from_millis(300);
        config.shutdown_grace = Duration::from_secs(2);
        tweak(&mut config);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(realtime_hub::run(
            listener,
            Some(admin),
            config,
            async move {
                let _ = rx.await;
            },
        ));
        let hub = Self {
            addr,
            admin_addr,
            shutdown: Some(tx),
            task: Some(task),
        };
        hub.wait_healthy(Duration::from_secs(10)).await;
        hub
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn wait_healthy(&self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(r) = reqwest::get(self.url("/healthz")).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hub never became healthy"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin_addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The value of one metric line.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }

    /// Triggers graceful shutdown and returns what `run` returned.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("run returned within 10 s")
            .expect("run did not panic")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub fn post(n: u64) -> PostId {
    PostId::new(n).expect("nonzero")
}

/// `HSET` the post's count, as the like script leaves it.
pub async fn set_count(conn: &mut redis::aio::MultiplexedConnection, p: PostId, likes: u64) {
    let _: () = redis::cmd("HSET")
        .arg(PostKeys::new(p).post)
        .arg("likes")
        .arg(likes)
        .query_async(conn)
        .await
        .expect("HSET");
}

pub fn like_message(p: PostId, likes: u64) -> String {
    serde_json::to_string(&LikeMessage {
        post_id: p,
        likes,
        ts: "2026-11-27T00:00:00Z".to_owned(),
    })
    .expect("json")
}

/// `SPUBLISH` on the post's shard channel, as the like script does.
pub async fn publish_like(conn: &mut redis::aio::MultiplexedConnection, p: PostId, likes: u64) {
    let _: i64 = redis::cmd("SPUBLISH")
        .arg(PostKeys::new(p).like_channel)
        .arg(like_message(p, likes))
        .query_async(conn)
        .await
        .expect("SPUBLISH");
}

pub async fn publish_post(conn: &mut redis::aio::MultiplexedConnection, body: &serde_json::Value) {
    let _: i64 = redis::cmd("SPUBLISH")
        .arg(Shard(0).channel(Channel::Post))
        .arg(body.to_string())
        .query_async(conn)
        .await
        .expect("SPUBLISH");
}

pub const SHORT: Duration = Duration::from_millis(300);
pub const LONG: Duration = Duration::from_secs(5);
