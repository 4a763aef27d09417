//! A throw-away copy of the whole system on free ports — Redis (AOF on, as in `up`),
//! PostgreSQL, the sync daemon, the realtime hub and the edge host — with its data under one
//! directory, so a load, chaos or soak run never collides with a running `cargo xtask up`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use likes_core::acl::Role;

use crate::acl::RedisUsers;
use crate::proc::{self, Service};
use crate::tools::{self, root};

/// The running system. Services stop in reverse start order when it is dropped.
pub struct Stack {
    /// Redis, PostgreSQL, the sync daemon, the hub and the edge host, in start order.
    pub services: Vec<Service>,
    pub edge: String,
    pub hub: String,
    pub sync_admin: String,
    /// Redis as the load generator's ACL user.
    pub redis_url: String,
    pub database_url: String,
    /// The edge's session secret (fresh per stack); the generator mints tokens with it.
    pub secret: String,
    pub dir: PathBuf,
}

/// `n` distinct free ports: all listeners are held until every port is picked.
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let held = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&held) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// Services log warnings only (unless `RUST_LOG` says otherwise): the edge host logs every
/// request at `info`, which at thousands of requests per second costs CPU the run measures.
fn quiet(c: &mut Command) {
    if std::env::var_os("RUST_LOG").is_none() {
        c.env("RUST_LOG", "warn");
    }
}

/// Raises this process's open-file limit (children inherit it): tens of thousands of sockets
/// need as many fds in the hub and the generator. Raising the hard limit needs root; otherwise
/// up to the hard limit.
pub fn raise_fd_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.max(soft), hard);
    }
}

/// Whether `pid` is still running (a child that failed to start, e.g. on a port taken
/// meanwhile, is a zombie until reaped).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl Stack {
    /// Starts every service with its data under `dir` and waits until each one serves.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let pg_bin = tools::ensure_postgres()?;
        let [redis_port, pg_port, sync_port, hub_port, edge_port] = free_ports()?;
        let (sync_admin, hub, edge) = (
            format!("127.0.0.1:{sync_port}"),
            format!("127.0.0.1:{hub_port}"),
            format!("127.0.0.1:{edge_port}"),
        );
        let redis_host = format!("127.0.0.1:{redis_port}");
        let users = RedisUsers::load_or_create(&dir.join("redis"))?;
        let database_url = format!("postgres://postgres@127.0.0.1:{pg_port}/likes");

        raise_fd_limit(1 << 20);
        let redis = proc::redis_with_users(redis_port, &dir.join("redis"), &users)?;
        let postgres = postgres(&pg_bin, pg_port, dir)?;
        let sync = sync_daemon(
            "sync-daemon",
            None,
            &users.url(Role::Daemon, &redis_host),
            &database_url,
            &sync_admin,
        )?;
        let hub_svc = realtime_hub("realtime-hub", &hub, &users.url(Role::Hub, &redis_host))?;
        // A fresh system gets a fresh secret; the generator mints its users' tokens with it.
        let secret = tools::random_hex(32)?;
        let edge_svc = edge_host("edge-host", &edge, &redis_host, &users, &secret)?;
        for addr in [&edge, &hub, &sync_admin] {
            proc::wait_for_port(addr, Duration::from_secs(120))?;
        }
        std::thread::sleep(Duration::from_millis(500));
        let services = vec![redis, postgres, sync, hub_svc, edge_svc];
        ensure_running(&services)?;
        Ok(Self {
            services,
            edge,
            hub,
            sync_admin,
            redis_url: users.url(Role::LoadGen, &redis_host),
            database_url,
            secret,
            dir: dir.to_path_buf(),
        })
    }

    /// `likes-load` aimed at this stack: targets, the token secret and every service's pid to
    /// watch are filled in; the scenario flags are the caller's.
    pub fn likes_load(&self) -> Command {
        let mut cmd = Command::new(tools::release_bin("likes-load"));
        cmd.args(["--edge", &format!("http://{}", self.edge)])
            .args(["--hub", &format!("http://{}", self.hub)])
            .args([
                "--redis",
                &self.redis_url,
                "--database-url",
                &self.database_url,
            ])
            .args([
                "--sync-metrics",
                &format!("http://{}/metrics", self.sync_admin),
            ])
            .args(["--token-secret", &self.secret]);
        for svc in &self.services {
            cmd.args(["--watch", &format!("{}={}", svc.name, svc.pid())]);
        }
        cmd
    }

    /// The service called `name`.
    pub fn service(&mut self, name: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.name == name)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Reverse start order: the edge drains its requests before Redis goes away.
        while let Some(mut s) = self.services.pop() {
            s.stop(Duration::from_secs(15));
        }
    }
}

/// How many HAProxy processes `load --cluster` runs on the same ports: the generator holds at
/// most as many sockets as its own open-file limit, each costs HAProxy two fds, so three
/// processes with the same limit hold them with room to spare.
const HAPROXY_PROCESSES: usize = 3;

impl Stack {
    /// The cluster topology of `up --cluster` on free ports, data under `dir`: a Redis Cluster of
    /// 3 primaries and 3 replicas (AOF on), PostgreSQL, 2 sync daemons, 2 hubs and 2 edge hosts,
    /// with HAProxy in front of the edges and the hubs; `edge` and `hub` are HAProxy's.
    pub fn start_cluster(dir: &Path, haproxy: &Path) -> anyhow::Result<Self> {
        let pg_bin = tools::ensure_postgres()?;
        let users = RedisUsers::load_or_create(&dir.join("redis"))?;
        raise_fd_limit(1 << 20);
        let node_ports = crate::cluster::free_ports(6)?;
        let mut cluster = crate::cluster::RedisCluster::start(
            &node_ports,
            1,
            &dir.join("cluster"),
            &users.acl_file(),
            users.operator_password(),
            dev_servers::Persistence::AofEverySec,
            &|| false,
        )?;
        let seed = cluster.seed();
        // The stack owns the nodes from here: they stop last, after everything using them.
        let mut services = std::mem::take(&mut cluster.services);
        drop(cluster);
        let [
            pg_port,
            sync1,
            sync2,
            hub1,
            hub2,
            edge1,
            edge2,
            hub_front,
            edge_front,
            stats,
        ] = free_ports()?;
        let addr = |port: u16| format!("127.0.0.1:{port}");
        services.push(postgres(&pg_bin, pg_port, dir)?);
        let database_url = format!("postgres://postgres@127.0.0.1:{pg_port}/likes");
        for (i, port) in [sync1, sync2].into_iter().enumerate() {
            let name = format!("sync-daemon-{}", i + 1);
            let url = users.url(Role::Daemon, &seed);
            services.push(sync_daemon(
                &name,
                Some(&name),
                &url,
                &database_url,
                &addr(port),
            )?);
        }
        for (i, port) in [hub1, hub2].into_iter().enumerate() {
            let name = format!("realtime-hub-{}", i + 1);
            services.push(realtime_hub(
                &name,
                &addr(port),
                &users.url(Role::Hub, &seed),
            )?);
        }
        let secret = tools::random_hex(32)?;
        for (i, port) in [edge1, edge2].into_iter().enumerate() {
            let name = format!("edge-host-{}", i + 1);
            services.push(edge_host(&name, &addr(port), &seed, &users, &secret)?);
        }
        // Both edges compile the components before they answer, on the same cores.
        for port in [edge1, edge2] {
            proc::wait_for_http(&addr(port), "/api/health", Duration::from_secs(300))?;
        }
        for port in [hub1, hub2] {
            proc::wait_for_http(&addr(port), "/healthz", Duration::from_secs(60))?;
        }
        for port in [sync1, sync2] {
            proc::wait_for_port(&addr(port), Duration::from_secs(60))?;
        }
        let (edge, hub) = (addr(edge_front), addr(hub_front));
        let front = crate::cmd::up_cluster::Haproxy {
            writer: "cargo xtask load --cluster",
            edge: &edge,
            hub: &hub,
            stats: &addr(stats),
            edges: vec![addr(edge1), addr(edge2)],
            hubs: vec![addr(hub1), addr(hub2)],
        };
        services.extend(crate::cmd::up_cluster::start_haproxy(
            haproxy,
            &dir.join("haproxy.cfg"),
            &front,
            HAPROXY_PROCESSES,
        )?);
        proc::wait_for_http(&edge, "/api/health", Duration::from_secs(30))
            .and_then(|()| proc::wait_for_http(&hub, "/healthz", Duration::from_secs(30)))
            .context("through HAProxy")?;
        std::thread::sleep(Duration::from_millis(500));
        ensure_running(&services)?;
        Ok(Self {
            services,
            edge,
            hub,
            sync_admin: addr(sync1),
            redis_url: users.url(Role::LoadGen, &seed),
            database_url,
            secret,
            dir: dir.to_path_buf(),
        })
    }
}

/// Fails when a service exited at start.
fn ensure_running(services: &[Service]) -> anyhow::Result<()> {
    for svc in services {
        anyhow::ensure!(
            running(svc.pid()),
            "{} exited at start (a port taken meanwhile?); run again",
            svc.name
        );
    }
    Ok(())
}

/// PostgreSQL on `port` for the stack in `dir`. As root, PostgreSQL runs as `postgres`, which
/// must reach its data directory: a checkout under a private directory (e.g. a `mktemp -d`) is
/// not reachable, the system's temporary directory always is.
fn postgres(pg_bin: &Path, port: u16, dir: &Path) -> anyhow::Result<Service> {
    let pg_dir = std::env::temp_dir().join(format!(
        "likes-stack-{}-{}",
        std::process::id(),
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("run")
    ));
    proc::postgres(pg_bin, port, &pg_dir.join("postgres"))
}

/// A sync daemon called `name`, `consumer` in the group (the daemon's default when `None`),
/// `/metrics` on `admin`.
fn sync_daemon(
    name: &str,
    consumer: Option<&str>,
    redis_url: &str,
    database_url: &str,
    admin: &str,
) -> anyhow::Result<Service> {
    let (redis_url, database_url, admin, consumer) = (
        redis_url.to_owned(),
        database_url.to_owned(),
        admin.to_owned(),
        consumer.map(str::to_owned),
    );
    Service::start(name, move || {
        let mut c = Command::new(tools::release_bin("sync-daemon"));
        quiet(&mut c);
        c.args(["--redis-url", &redis_url, "--database-url", &database_url])
            .args(["--admin-listen", &admin]);
        if let Some(consumer) = &consumer {
            c.args(["--consumer", consumer]);
        }
        c.arg("run");
        c
    })
}

/// A realtime hub called `name` serving Socket.IO on `listen`.
fn realtime_hub(name: &str, listen: &str, redis_url: &str) -> anyhow::Result<Service> {
    let (listen, redis_url) = (listen.to_owned(), redis_url.to_owned());
    Service::start(name, move || {
        let mut c = Command::new(tools::release_bin("realtime-hub"));
        quiet(&mut c);
        c.args(["--listen", &listen, "--redis-url", &redis_url]);
        c
    })
}

/// An edge host called `name` on `listen`, Redis at `redis_host`, with the abuse limits off.
fn edge_host(
    name: &str,
    listen: &str,
    redis_host: &str,
    users: &RedisUsers,
    secret: &str,
) -> anyhow::Result<Service> {
    let (listen, redis_host, secret, redis_env) = (
        listen.to_owned(),
        redis_host.to_owned(),
        secret.to_owned(),
        users.edge_env(),
    );
    Service::start(name, move || {
        let mut c = Command::new(tools::release_bin("edge-host"));
        quiet(&mut c);
        c.arg("--manifest")
            .arg(root().join("spin.toml"))
            .args(["--listen", &listen])
            .args(["--variable", &format!("redis_host={redis_host}")])
            .envs(redis_env.clone())
            .args(["--variable", &format!("session_secret={secret}")])
            // Thousands of users from one address, as fast as they go: the load itself, which
            // the abuse limits exist to stop.
            .args(["--variable", "likes_per_minute=0"])
            .args(["--variable", "sessions_per_minute=0"])
            .args(["--variable", "uploads_per_minute=0"])
            .args(["--variable", "address_uploads_per_minute=0"])
            .current_dir(root());
        c
    })
}
