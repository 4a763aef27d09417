//! Real servers for integration tests: each test starts its own on a free port, with its data in
//! a temporary directory, and the server dies with the handle.

pub mod cluster;
pub mod edge;
pub mod socketio;
pub mod spin;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use cluster::TestCluster;
pub use likes_core::acl::Role;

/// The operator's password on every test Redis (Redis's `default` user). Test servers are
/// throw-away and bound to 127.0.0.1, so fixed passwords are fine here and nowhere else.
pub const OPERATOR_PASSWORD: &str = "test-operator-password";

/// A role's password on every test Redis.
pub fn role_password(role: Role) -> String {
    format!("test-{}-password", role.user())
}

pub use dev_servers::{Persistence, workspace_root};

/// The edge's Redis variables (`redis_host`, `redis_user`, `redis_password`) for a Redis at
/// `host`, connecting as the edge's role.
pub fn edge_variables_at(host: String) -> [(&'static str, String); 3] {
    [
        ("redis_host", host),
        ("redis_user", Role::Edge.user().to_owned()),
        ("redis_password", role_password(Role::Edge)),
    ]
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A `redis-server` of our own, killed on drop.
pub struct TestRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl TestRedis {
    /// Starts Redis on a free port without persistence. Panics with a one-line hint when
    /// `redis-server` is not installed.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts Redis with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
            let child = spawn_redis(port, dir.path(), &extra);
            let mut redis = Self {
                child,
                port,
                _dir: dir,
                extra,
            };
            if redis.wait_ready(Duration::from_secs(10)) {
                return redis;
            }
            // Lost the port race with another test; try another one.
            let _ = redis.child.kill();
        }
        panic!("redis-server did not come up on any of 5 free ports");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        wait_listening(&mut self.child, &[self.port], timeout)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, as the `redis_host` Spin variable takes it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The operator's URL (every right), for a test's own setup and inspection.
    pub fn url(&self) -> String {
        likes_core::acl::url("default", OPERATOR_PASSWORD, &self.host())
    }

    /// The URL a service of `role` connects with: it may do only what the role may.
    pub fn url_as(&self, role: Role) -> String {
        likes_core::acl::url(role.user(), &role_password(role), &self.host())
    }

    /// The edge's Redis variables (`redis_host`, `redis_user`, `redis_password`).
    pub fn edge_variables(&self) -> [(&'static str, String); 3] {
        edge_variables_at(self.host())
    }

    /// A blocking connection.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .unwrap_or_else(|e| panic!("connecting to the test redis: {e}"))
    }

    /// An async multiplexed connection.
    pub async fn async_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("redis url: {e}"))
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test redis: {e}"))
    }

    /// Stops the server (SIGKILL) while the handle stays, e.g. to test "Redis down".
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again (after [`TestRedis::kill`], or killing it first) on the same
    /// port, directory and arguments. Data survives only if it was persisted: start with
    /// `--appendonly yes --appendfsync always`, or `SAVE` before the kill.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_redis(self.port, self._dir.path(), &self.extra);
        assert!(
            self.wait_ready(Duration::from_secs(10)),
            "redis-server did not restart on port {}",
            self.port
        );
        wait_pong(&self.url());
    }
}

fn spawn_redis(port: u16, dir: &Path, extra: &[String]) -> Child {
    let acl = write_acl(dir);
    spawn_redis_server(
        dev_servers::redis_command(port, dir, Persistence::None, Some(&acl)).args(extra),
    )
}

/// Writes the roles' ACL file into `dir` and returns its path. Every test Redis enforces it, so
/// each service under test runs with exactly the rights a deployment gives it.
fn write_acl(dir: &Path) -> PathBuf {
    let acl = dir.join("users.acl");
    std::fs::write(
        &acl,
        likes_core::acl::acl_file(OPERATOR_PASSWORD, role_password),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", acl.display()));
    acl
}

/// Spawns a `redis-server` command line with its output discarded; panics with a one-line hint
/// when Redis is not installed.
fn spawn_redis_server(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("redis-server could not start ({e}): run `cargo xtask test`, which installs it")
        })
}

/// Whether `child` accepts connections on every one of `ports` within `timeout`; false as soon
/// as it exits, which is how a lost port race shows.
fn wait_listening(child: &mut Child, ports: &[u16], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if ports
            .iter()
            .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok())
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits for a real PONG at `url`: a restarted Redis accepts connections while still loading its
/// data (`LOADING` replies). Panics after 30 s.
fn wait_pong(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pong: redis::RedisResult<String> = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query(&mut c));
        if pong.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server still loading after 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of our own (initdb into a temporary directory), with a database `likes`
/// and trust auth for `postgres`; stopped on drop. As root, the server runs as the `postgres`
/// user (created when missing), since PostgreSQL refuses to run as root.
pub struct TestPostgres {
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    uid: Option<(u32, u32)>,
    dir: tempfile::TempDir,
}

impl TestPostgres {
    /// initdb, start, create database `likes`. Panics with a hint when PostgreSQL is missing.
    pub fn start() -> Self {
        let bin = pg_bin_dir();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let uid = pg_user();
        let data = dir.path().join("data");
        if let Some((u, g)) = uid {
            run_ok(
                Command::new("chown")
                    .arg(format!("{u}:{g}"))
                    .arg(dir.path()),
                "chown",
            );
        }
        let mut initdb = dev_servers::initdb_command(&bin, &data, uid, true);
        run_ok(
            &mut initdb,
            "initdb (is PostgreSQL installed? apt-get install postgresql)",
        );
        let mut pg = Self {
            child: None,
            port: 0,
            bin,
            data,
            uid,
            dir,
        };
        for _ in 0..5 {
            pg.port = free_port();
            if pg.spawn() {
                let mut createdb = dev_servers::createdb_command(&pg.bin, pg.port);
                run_ok(&mut createdb, "createdb likes");
                return pg;
            }
        }
        panic!("postgres did not come up on any of 5 free ports");
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = dev_servers::postgres_command(
            &self.bin,
            &self.data,
            self.dir.path(),
            self.port,
            &["fsync=off", "full_page_writes=off", "max_connections=200"],
            self.uid,
        );
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("postgres could not start: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/likes`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/likes", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected) while the data stays, e.g. to
    /// test "PostgreSQL down". [`TestPostgres::restart`] brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "postgres did not restart on port {}",
            self.port
        );
    }

    /// Runs SQL with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                &self.url(),
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pg_bin_dir() -> PathBuf {
    dev_servers::postgres_bin_dir().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found: apt-get install postgresql")
    })
}

fn pg_user() -> Option<(u32, u32)> {
    dev_servers::postgres_owner().unwrap_or_else(|e| panic!("{e}"))
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A script call with its keys and arguments in order, as the core crate's typed calls
/// (`LikeCall`, `LikersCall`, `PostCall`, …) give them, ready to invoke.
pub fn invocation<'a>(
    script: &'a redis::Script,
    keys: impl IntoIterator<Item = String>,
    args: impl IntoIterator<Item = String>,
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    for arg in args {
        invocation.arg(arg);
    }
    invocation
}

/// Every entry of an `XRANGE` reply decoded with the core's one decoder; panics on an entry it
/// refuses, since a test's stream holds only what the production scripts wrote.
pub fn stream_events(
    reply: &redis::streams::StreamRangeReply,
) -> Vec<likes_core::events::StreamEvent> {
    reply
        .ids
        .iter()
        .map(|entry| {
            let fields: Vec<(String, Vec<u8>)> = entry
                .map
                .iter()
                .map(|(k, v)| {
                    let bytes = redis::from_redis_value_ref::<Vec<u8>>(v)
                        .unwrap_or_else(|e| panic!("field {k} is not bytes: {e}"));
                    (k.clone(), bytes)
                })
                .collect();
            likes_core::events::StreamEvent::decode(&fields)
                .unwrap_or_else(|e| panic!("stream entry {}: {e}", entry.id))
        })
        .collect()
}

/// A test's `SSUBSCRIBE` to shard channels, through the services' own subscriber
/// ([`service_kit::redis::Redis::subscribe_shards`]), so a test sees what the scripts
/// `SPUBLISH` exactly as the hub does.
pub struct ShardSubscription(service_kit::redis::ShardSubscription);

impl ShardSubscription {
    /// Subscribes to `channels` on the Redis (or cluster) at `url` and waits for every
    /// confirmation.
    pub async fn start(url: &str, channels: &[String]) -> Self {
        let redis = service_kit::redis::Redis::open(url).expect("redis url");
        let subscription = redis
            .subscribe_shards(channels, &service_kit::redis::Options::default())
            .await
            .expect("SSUBSCRIBE confirmed");
        Self(subscription)
    }

    /// The next message within `timeout`, `None` when none came. Panics if the subscription
    /// was lost: a test's Redis does not go away under it unless the test did that.
    pub async fn next(&mut self, timeout: Duration) -> Option<redis::Msg> {
        match tokio::time::timeout(timeout, self.0.next()).await.ok()? {
            service_kit::redis::Event::Message(msg) => Some(msg),
            service_kit::redis::Event::Lost(why) => {
                panic!("the test's subscription was lost: {why}")
            }
        }
    }
}
