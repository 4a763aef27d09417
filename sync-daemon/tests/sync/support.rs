//! The test harness: real Redis, real PostgreSQL, events written by the production like script,
//! and the daemon run in-process or as the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use likes_core::keys::{self, PostKeys};
use likes_core::scripts::{self, LikeCall, SessionCall};
use likes_core::{PostId, UserId};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use sync_daemon::Config;
use testkit::{TestCluster, TestPostgres, TestRedis};

/// The servers of one test: a Redis (a [`TestRedis`], or a [`TestCluster`]) and PostgreSQL.
pub struct Env<R = TestRedis> {
    pub redis: R,
    pub pg: TestPostgres,
}

/// A Redis the daemon can be pointed at.
pub trait Store {
    /// The URL the daemon connects with, as its role.
    fn daemon_url(&self) -> String;
}

impl Store for TestRedis {
    fn daemon_url(&self) -> String {
        self.url_as(testkit::Role::Daemon)
    }
}

impl Store for TestCluster {
    fn daemon_url(&self) -> String {
        self.url_as(testkit::Role::Daemon)
    }
}

impl Env<TestCluster> {
    /// A Redis Cluster of 3 primaries with a replica each, and PostgreSQL.
    pub fn cluster() -> Self {
        init_tracing();
        Self {
            redis: TestCluster::start(3, 1),
            pg: TestPostgres::start(),
        }
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Env {
    pub fn start() -> Self {
        Self::start_with_redis(&[])
    }

    /// A fresh environment and an operator connection to its Redis: how most tests begin.
    pub async fn with_conn() -> (Self, MultiplexedConnection) {
        let env = Self::start();
        let conn = env.redis.async_conn().await;
        (env, conn)
    }

    /// Like [`Env::start`], with extra `redis-server` arguments (e.g. persistence).
    pub fn start_with_redis(redis_args: &[&str]) -> Self {
        init_tracing();
        Self {
            redis: TestRedis::start_with(redis_args),
            pg: TestPostgres::start(),
        }
    }
}

impl<R: Store> Env<R> {
    /// A config for tests: small batches, fast retries.
    pub fn config(&self) -> Config {
        test_config(self.redis.daemon_url(), &self.pg)
    }

    /// An in-process daemon with the default test configuration, and its consumer group.
    pub fn spawn_daemon(&self) -> (InProcess, String) {
        let config = self.config();
        let group = config.group.clone();
        (InProcess::spawn(config), group)
    }

    /// Runs one in-process daemon with the default test configuration until every stream is
    /// drained, then stops it.
    pub async fn drain_once(&self, conn: &mut (impl ConnectionLike + Send)) {
        let (daemon, group) = self.spawn_daemon();
        self.wait_drained(conn, &group).await;
        daemon.stop().await;
    }

    /// Loses every checkpoint and rewinds `group` to the start of every stream: the next
    /// daemon replays everything, which must add nothing.
    pub async fn forget_progress(&self, conn: &mut (impl ConnectionLike + Send), group: &str) {
        self.pg.psql("DELETE FROM stream_checkpoints");
        for stream in keys::all_streams() {
            let _: () = redis::cmd("XGROUP")
                .arg("SETID")
                .arg(&stream)
                .arg(group)
                .arg("0")
                .query_async(conn)
                .await
                .expect("XGROUP SETID");
        }
    }

    /// Waits until every stream's group has delivered and acknowledged everything (which implies
    /// committed).
    pub async fn wait_drained(&self, conn: &mut (impl ConnectionLike + Send), group: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut done = true;
            for stream in keys::all_streams() {
                let info: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
                    redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(&stream)
                        .query_async(conn)
                        .await;
                let Ok(groups) = info else {
                    // No stream yet: nothing was ever written or the daemon has not started.
                    done = false;
                    break;
                };
                let Some(g) = groups.iter().find(|g| {
                    matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes())
                }) else {
                    done = false;
                    break;
                };
                let stream_info: std::collections::HashMap<String, redis::Value> =
                    redis::cmd("XINFO")
                        .arg("STREAM")
                        .arg(&stream)
                        .query_async(conn)
                        .await
                        .expect("XINFO STREAM");
                let delivered = g.get("last-delivered-id");
                let generated = stream_info.get("last-generated-id");
                let pending_zero = matches!(g.get("pending"), Some(redis::Value::Int(0)));
                if !(pending_zero && delivered.is_some() && delivered == generated) {
                    done = false;
                    break;
                }
            }
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "streams not drained within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `post → likes` from `post_like_counts` (zero rows omitted).
    pub fn sql_counts(&self) -> BTreeMap<u64, u64> {
        self.pg
            .psql("SELECT post_id, likes FROM post_like_counts WHERE likes <> 0 ORDER BY 1")
            .lines()
            .filter_map(|l| {
                let (a, b) = l.split_once('|')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect()
    }

    /// Every like row.
    pub fn sql_likes(&self) -> BTreeSet<(u64, u64)> {
        self.pg
            .psql("SELECT post_id, user_id FROM likes ORDER BY 1, 2")
            .lines()
            .filter_map(|l| {
                let (a, b) = l.split_once('|')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect()
    }

    /// Asserts PostgreSQL holds exactly `model` (rows, counts) and that Redis agrees.
    pub async fn assert_matches(&self, conn: &mut (impl ConnectionLike + Send), model: &Model) {
        assert_eq!(
            self.sql_likes(),
            model.likes,
            "like rows differ from the truth"
        );
        let expected: BTreeMap<u64, u64> = model.counts();
        assert_eq!(self.sql_counts(), expected, "counts differ from the truth");
        for (&post, &n) in &expected {
            let k = PostKeys::new(PostId::new(post).expect("nonzero"));
            let redis_n: u64 = redis::cmd("HGET")
                .arg(&k.post)
                .arg("likes")
                .query_async(conn)
                .await
                .expect("HGET");
            assert_eq!(redis_n, n, "redis count of post {post}");
        }
    }
}

/// The daemon's test configuration (small batches, fast retries) against `redis_url`.
pub fn test_config(redis_url: String, pg: &TestPostgres) -> Config {
    let mut c = Config::new(redis_url, pg.url());
    c.batch_max = 64;
    c.batch_wait = Duration::from_millis(5);
    c.idle_block = Duration::from_millis(200);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(400);
    c.pg_pool_size = 4;
    c.claim_idle = Duration::from_millis(300);
    c
}

/// What should be true: the set of (post, user) likes, as Redis decided it.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub likes: BTreeSet<(u64, u64)>,
    /// State-changing events written (what the streams hold).
    pub events: u64,
}

impl Model {
    pub fn counts(&self) -> BTreeMap<u64, u64> {
        let mut m = BTreeMap::new();
        for (p, _) in &self.likes {
            *m.entry(*p).or_insert(0) += 1;
        }
        m
    }
}

/// A like or unlike through the production script and its typed call (no post-exists check:
/// posts do not exist yet). Returns `(count, changed)`.
pub async fn like(
    conn: &mut (impl ConnectionLike + Send),
    post: u64,
    user: u64,
    on: bool,
) -> (i64, bool) {
    let call = LikeCall {
        post: PostId::new(post).expect("nonzero"),
        user: UserId::new(user).expect("nonzero"),
        on,
        ts: likes_core::time::rfc3339_ms(now_ms()),
        require_post: false,
    };
    let reply: (i64, i64) = testkit::invocation(
        &redis::Script::new(scripts::LIKE.source),
        call.keys(),
        call.args(),
    )
    .invoke_async(conn)
    .await
    .expect("like script");
    (reply.0, reply.1 == 1)
}

/// Applies a like/unlike and records it in the model.
pub async fn like_into(
    conn: &mut (impl ConnectionLike + Send),
    model: &mut Model,
    post: u64,
    user: u64,
    on: bool,
) {
    let (_, changed) = like(conn, post, user, on).await;
    if changed {
        model.events += 1;
        if on {
            model.likes.insert((post, user));
        } else {
            model.likes.remove(&(post, user));
        }
    }
}

/// Creates a user through the production session script; returns its id.
pub async fn create_user(conn: &mut (impl ConnectionLike + Send), name: &str) -> u64 {
    let ts = likes_core::time::rfc3339_ms(now_ms());
    let call = SessionCall { name, ts: &ts };
    testkit::invocation(
        &redis::Script::new(scripts::SESSION.source),
        call.keys(),
        call.args(),
    )
    .invoke_async(conn)
    .await
    .expect("session script")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A small deterministic generator, so failures reproduce.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// `n` random likes/unlikes over `posts` posts and `users` users (70 % likes).
pub async fn random_ops(
    conn: &mut (impl ConnectionLike + Send),
    model: &mut Model,
    rng: &mut Lcg,
    n: usize,
    posts: u64,
    users: u64,
) {
    for _ in 0..n {
        let post = 1 + rng.next(posts);
        let user = 1 + rng.next(users);
        let on = rng.next(10) < 7;
        like_into(conn, model, post, user, on).await;
    }
}

/// The daemon running in this process.
pub struct InProcess {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), sync_daemon::Error>>,
}

impl InProcess {
    pub fn spawn(config: Config) -> Self {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(sync_daemon::run(config, async move {
            let _ = rx.await;
        }));
        Self { stop, handle }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.handle
            .await
            .expect("daemon task")
            .expect("daemon result");
    }
}

/// The real binary as a child process.
pub fn spawn_binary(env: &Env<impl Store>, extra: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sync-daemon"));
    cmd.args([
        "--redis-url",
        &env.redis.daemon_url(),
        "--database-url",
        &env.pg.url(),
        "--batch-wait-ms",
        "5",
    ]);
    if !extra.contains(&"--batch-max") {
        cmd.args(["--batch-max", "50"]);
    }
    cmd.args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawning target/release/sync-daemon")
}

/// An image run through the real upload pipeline: `w`×`h` pixels of a pattern seeded by `seed`.
pub fn make_image(w: u32, h: u32, seed: u8) -> likes_images::Processed {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x as u8).wrapping_mul(seed),
            (y as u8).wrapping_add(seed),
            seed,
        ])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encoding a PNG");
    likes_images::process(&png, &likes_images::Limits::default()).expect("pipeline")
}

/// Stores an image's variants under `img:<id>` the way the upload path does: bytes, ETags and
/// sizes.
pub async fn store_image(conn: &mut (impl ConnectionLike + Send), img: &likes_images::Processed) {
    use likes_core::keys::image_field as f;
    store_legacy_image(conn, img).await;
    let _: () = redis::cmd("HSET")
        .arg(keys::image_key(img.image_id()))
        .arg(f::FULL_WIDTH)
        .arg(img.full.width)
        .arg(f::FULL_HEIGHT)
        .arg(img.full.height)
        .arg(f::THUMB_WIDTH)
        .arg(img.thumb.width)
        .arg(f::THUMB_HEIGHT)
        .arg(img.thumb.height)
        .query_async(conn)
        .await
        .expect("HSET image sizes");
}

/// Stores an image's variants the way components did before sizes were stored with them:
/// bytes and ETags only.
pub async fn store_legacy_image(
    conn: &mut (impl ConnectionLike + Send),
    img: &likes_images::Processed,
) {
    use likes_core::keys::image_field as f;
    let _: () = redis::cmd("HSET")
        .arg(keys::image_key(img.image_id()))
        .arg(f::FULL)
        .arg(&img.full.bytes)
        .arg(f::FULL_ETAG)
        .arg(&img.full.hash)
        .arg(f::THUMB)
        .arg(&img.thumb.bytes)
        .arg(f::THUMB_ETAG)
        .arg(&img.thumb.hash)
        .query_async(conn)
        .await
        .expect("HSET image");
}

/// Creates a post through the production post script (ids from `{posts}:seq`, as the edge
/// allocates them). Returns the new post id.
pub async fn create_post(
    conn: &mut (impl ConnectionLike + Send),
    author: &likes_core::api::User,
    caption: &str,
    image: &str,
    width: u32,
    height: u32,
) -> u64 {
    let id: u64 = redis::cmd("INCR")
        .arg(keys::POST_SEQ)
        .query_async(conn)
        .await
        .expect("INCR");
    let created_at = likes_core::time::rfc3339_ms(now_ms());
    let call = scripts::PostCall {
        post: PostId::new(id).expect("nonzero"),
        author,
        caption,
        image,
        width,
        height,
        created_at: &created_at,
    };
    let script = redis::Script::new(scripts::POST.source);
    let created: i64 = testkit::invocation(&script, call.keys(), call.args())
        .invoke_async(conn)
        .await
        .expect("post script");
    assert_eq!(created, 1, "post {id} created");
    id
}

/// A user created through the session script, as the API names it.
pub async fn api_user(
    conn: &mut (impl ConnectionLike + Send),
    name: &str,
) -> likes_core::api::User {
    let id = create_user(conn, name).await;
    likes_core::api::User {
        id: UserId::new(id).expect("nonzero"),
        name: name.to_owned(),
    }
}
