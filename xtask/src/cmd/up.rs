//! `cargo xtask up`: Redis on 127.0.0.1:6380 (AOF on), PostgreSQL on 5433 (data under
//! target/dev/), the sync daemon, the realtime hub on 3001, the load lab on 3004 (enabled), and the edge on 127.0.0.1:3000; every process is supervised
//! (restarted with backoff when it dies) until Ctrl-C, then stopped in reverse order.
//! `cargo xtask up --cluster` runs the same system as a cluster on the same ports (`up_cluster`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use likes_core::acl::Role;

use crate::acl::RedisUsers;
use crate::proc::{self, Service};
use crate::tools::{self, root};

/// Ports of the local system (shared/api.md).
pub const EDGE_ADDR: &str = "127.0.0.1:3000";
pub const EDGE_ADMIN_ADDR: &str = "127.0.0.1:9100";
pub const REDIS_PORT: u16 = 6380;
pub const POSTGRES_PORT: u16 = 5433;
pub const SYNC_ADMIN_ADDR: &str = "127.0.0.1:3003";
pub const HUB_ADDR: &str = "127.0.0.1:3001";
pub const HUB_ADMIN_ADDR: &str = "127.0.0.1:9101";
/// The load lab's control endpoint (the app's Load lab page), enabled in development only.
pub const LAB_ADDR: &str = "127.0.0.1:3004";
/// Where `up` keeps the session secret it generated for this data directory.
const SECRET_FILE: &str = "target/dev/session-secret";

#[derive(clap::Args)]
pub struct Args {
    /// Serve the components with the real Spin instead of our edge host (`SPIN=/path`, `spin` on
    /// PATH, or the copy in ../shared/tools).
    #[arg(long)]
    spin: bool,
    /// Run the system as a cluster on this machine: a Redis Cluster (3 primaries, 3 replicas on
    /// 7001-7006), two edge hosts, two realtime hubs and two sync daemons, HAProxy in front on
    /// 3000 and 3001 (installs HAProxy when missing).
    #[arg(long, conflicts_with = "spin")]
    cluster: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    let haproxy = if args.cluster {
        Some(tools::ensure_haproxy()?)
    } else {
        None
    };
    let pg_bin = tools::ensure_postgres()?;
    tools::build_components(false)?;
    crate::cmd::app::build()?;
    let spin = if args.spin {
        Some(tools::require_spin()?)
    } else {
        None
    };
    tools::build_native()?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    // Each service logs in to Redis as its own ACL user (likes_core::acl), with passwords
    // made once per data directory.
    let users = RedisUsers::load_or_create(&root().join("target/dev/redis"))?;
    if let Some(haproxy) = haproxy {
        return crate::cmd::up_cluster::run(&haproxy, &pg_bin, &users, &stop);
    }
    let redis_host = format!("127.0.0.1:{REDIS_PORT}");
    let redis = proc::redis_with_users(REDIS_PORT, &root().join("target/dev/redis"), &users)?;
    let (postgres, database_url) = start_postgres(&pg_bin)?;
    let sync = sync_daemon(
        "sync-daemon",
        "sync-daemon-1",
        users.url(Role::Daemon, &redis_host),
        &database_url,
        SYNC_ADMIN_ADDR,
    )?;
    let hub = realtime_hub(
        "realtime-hub",
        HUB_ADDR,
        HUB_ADMIN_ADDR,
        users.url(Role::Hub, &redis_host),
    )?;
    let secret = dev_session_secret()?;
    // A new lab key every `up`, handed to the lab and to the edge (`lab_key`), whose same-origin
    // `/api/config` gives it to the app's Load lab page: a page on another site can neither
    // read it nor guess it.
    let lab_key = dev_lab_key()?;
    let lab = load_lab(
        users.url(Role::LoadGen, &redis_host),
        &database_url,
        &secret,
        &lab_key,
    )?;
    let variables = edge_variables(secret, &redis_host, Some(lab_key), &users);
    let edge = if let Some(spin) = spin {
        let manifest = root().join("spin.toml");
        Service::start("spin", move || {
            let mut c = Command::new(&spin);
            c.arg("up")
                .arg("--from")
                .arg(&manifest)
                .args(["--listen", EDGE_ADDR])
                // Its component logs beside the other services' data, not in `.spin/`.
                .arg("--state-dir")
                .arg(root().join("target/dev/spin"));
            c.envs(variables.clone());
            c
        })?
    } else {
        edge_host("edge-host", EDGE_ADDR, EDGE_ADMIN_ADDR, variables)?
    };
    // The list is printed once the app can be used: the edge answers its health check (it
    // compiles the components before that) and the hub answers its own.
    proc::wait_for_http(EDGE_ADDR, "/api/health", Duration::from_secs(120))?;
    proc::wait_for_http(HUB_ADDR, "/healthz", Duration::from_secs(30))?;

    println!();
    println!("  the app      http://{EDGE_ADDR}/");
    println!("  edge API     http://{EDGE_ADDR}/api/health");
    if !args.spin {
        println!("  edge metrics http://{EDGE_ADMIN_ADDR}/metrics");
    }
    println!(
        "  redis        redis://127.0.0.1:{REDIS_PORT}  (data in target/dev/redis; operator: \
         redis-cli -p {REDIS_PORT} --user default --pass \"$(awk '/^default /{{print $2}}' {})\")",
        users.passwords_file().display()
    );
    println!("  postgresql   {database_url}  (data in target/dev/postgres)");
    println!(
        "  realtime hub http://{HUB_ADDR}  (Socket.IO, /healthz; metrics on http://{HUB_ADMIN_ADDR}/metrics)"
    );
    println!("  sync daemon  http://{SYNC_ADMIN_ADDR}/metrics");
    println!("  load lab     http://{LAB_ADDR}  (the app's /lab page; Socket.IO, /healthz)");
    println!("  Ctrl-C stops everything.");
    println!();

    supervise_until_stopped(vec![redis, postgres, sync, hub, lab, edge], &stop)
}

/// PostgreSQL on [`POSTGRES_PORT`] with its data in target/dev/postgres, and its URL.
pub(super) fn start_postgres(pg_bin: &Path) -> anyhow::Result<(Service, String)> {
    let postgres = proc::postgres(pg_bin, POSTGRES_PORT, &root().join("target/dev/postgres"))?;
    Ok((
        postgres,
        format!("postgres://postgres@127.0.0.1:{POSTGRES_PORT}/likes"),
    ))
}

/// A sync daemon called `consumer` in the daemons' group, its `/metrics` on `admin`.
pub(super) fn sync_daemon(
    name: &str,
    consumer: &str,
    redis_url: String,
    database_url: &str,
    admin: &'static str,
) -> anyhow::Result<Service> {
    let (consumer, database_url) = (consumer.to_owned(), database_url.to_owned());
    Service::start(name, move || {
        let mut c = Command::new(tools::release_bin("sync-daemon"));
        // Options are the daemon's top-level flags; `run` is its default command.
        c.args(["--redis-url", &redis_url])
            .args(["--database-url", &database_url, "--admin-listen", admin])
            .args(["--consumer", &consumer])
            .arg("run");
        c
    })
}

/// A realtime hub serving Socket.IO on `listen`, its `/metrics` on `admin`.
pub(super) fn realtime_hub(
    name: &str,
    listen: &'static str,
    admin: &'static str,
    redis_url: String,
) -> anyhow::Result<Service> {
    Service::start(name, move || {
        let mut c = Command::new(tools::release_bin("realtime-hub"));
        c.args(["--listen", listen, "--admin-listen", admin])
            .args(["--redis-url", &redis_url]);
        c
    })
}

/// The load lab on [`LAB_ADDR`], aimed at the app's addresses ([`EDGE_ADDR`], [`HUB_ADDR`]).
fn load_lab(
    redis_url: String,
    database_url: &str,
    secret: &str,
    lab_key: &str,
) -> anyhow::Result<Service> {
    let (database_url, secret, lab_key) = (
        database_url.to_owned(),
        secret.to_owned(),
        lab_key.to_owned(),
    );
    Service::start("load-lab", move || {
        let mut c = Command::new(tools::release_bin("load-lab"));
        c.args(["--listen", LAB_ADDR, "--enable-lab"])
            .args(["--allowed-origin", &app_origins()])
            // In the environment, not the arguments, which any local user can list.
            .env("LAB_KEY", &lab_key)
            .args(["--edge", &format!("http://{EDGE_ADDR}")])
            .args(["--hub", &format!("http://{HUB_ADDR}")])
            .args(["--redis", &redis_url])
            .args(["--database-url", &database_url])
            .args([
                "--sync-metrics",
                &format!("http://{SYNC_ADMIN_ADDR}/metrics"),
            ])
            .args(["--token-secret", &secret]);
        c
    })
}

/// The application variables, the same whichever runtime serves the components, with Redis at
/// `redis_host`, and the load lab on [`LAB_ADDR`] with `lab_key` (without one the lab is off).
pub(super) fn edge_variables(
    secret: String,
    redis_host: &str,
    lab_key: Option<String>,
    users: &RedisUsers,
) -> Vec<(String, String)> {
    let mut variables: Vec<(String, String)> = vec![
        ("SPIN_VARIABLE_SESSION_SECRET".into(), secret),
        ("SPIN_VARIABLE_REDIS_HOST".into(), redis_host.to_owned()),
    ];
    if let Some(lab_key) = lab_key {
        variables.push(("SPIN_VARIABLE_LAB_URL".into(), format!("http://{LAB_ADDR}")));
        variables.push(("SPIN_VARIABLE_LAB_KEY".into(), lab_key));
    }
    variables.extend(users.edge_env().map(|(k, v)| (k.to_owned(), v)));
    variables
}

/// Our edge host serving spin.toml on `listen`, its `/metrics` on `admin`.
pub(super) fn edge_host(
    name: &str,
    listen: &'static str,
    admin: &'static str,
    variables: Vec<(String, String)>,
) -> anyhow::Result<Service> {
    let manifest = root().join("spin.toml");
    Service::start(name, move || {
        let mut c = Command::new(tools::release_bin("edge-host"));
        c.arg("--manifest")
            .arg(&manifest)
            .args(["--listen", listen, "--admin-listen", admin]);
        c.envs(variables.clone());
        c
    })
}

/// Supervises `services` (restarting whichever dies) until Ctrl-C, then stops them in reverse
/// start order: what takes traffic drains its requests before what it depends on goes away.
pub(super) fn supervise_until_stopped(
    mut services: Vec<Service>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        for s in &mut services {
            s.supervise()?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("[xtask] stopping");
    while let Some(mut s) = services.pop() {
        s.stop(Duration::from_secs(15));
    }
    Ok(())
}

/// The origins the app is served from by this `up` (the edge's address, and `localhost` on its
/// port), the only pages the lab accepts.
fn app_origins() -> String {
    let port = EDGE_ADDR.rsplit(':').next().unwrap_or("3000");
    format!("http://{EDGE_ADDR},http://localhost:{port}")
}

/// `LIKES_SESSION_SECRET` when set; otherwise a random secret made by the first `up` and kept in
/// [`SECRET_FILE`] (owner-only), so sessions survive a restart while no two machines share a
/// secret, and no published one exists that a deployment could keep by mistake.
pub(super) fn dev_session_secret() -> anyhow::Result<String> {
    if let Ok(secret) = std::env::var("LIKES_SESSION_SECRET") {
        return Ok(secret);
    }
    let path = root().join(SECRET_FILE);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().to_owned());
    }
    let secret = tools::random_hex(32)?;
    std::fs::create_dir_all(path.parent().unwrap_or(&root()))?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(f, "{secret}")?;
    }
    Ok(secret)
}

/// The lab key of one `up`: 32 random bytes as hex, never written anywhere but the two
/// processes' environments.
fn dev_lab_key() -> anyhow::Result<String> {
    tools::random_hex(32).context("making the lab key")
}
