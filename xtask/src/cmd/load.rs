//! `cargo xtask load [likes-load flags…]`: a load-lab run against a fresh copy of the whole
//! system — Redis (AOF on, as in `up`), PostgreSQL, the sync daemon, the realtime hub and the
//! edge host — started on free ports with data under `target/load/<stamp>/`, so it never
//! collides with a running `cargo xtask up`. Every flag after `load` goes to `likes-load`; the
//! targets, a fresh session secret and the processes to watch are filled in. Everything is
//! stopped at the end; the report lands in `target/load/<stamp>/report/` unless `--report` is given.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::proc::{self, Service};
use crate::tools::{self, root};

#[derive(clap::Args)]
pub struct Args {
    /// Use the release binaries and components already built.
    #[arg(long)]
    no_build: bool,
    /// Flags for `likes-load` (see `target/release/likes-load --help`), e.g. `--preset 10k`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    load: Vec<String>,
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

fn raise_fd_limit(want: u64) {
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
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    let pg_bin = tools::ensure_postgres()?;
    if !args.no_build {
        tools::build_components(false)?;
        tools::build_native()?;
    }

    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = root().join("target/load").join(stamp.to_string());
    let [redis_port, pg_port, sync_port, hub_port, edge_port] = free_ports()?;
    let (sync_admin, hub, edge) = (
        format!("127.0.0.1:{sync_port}"),
        format!("127.0.0.1:{hub_port}"),
        format!("127.0.0.1:{edge_port}"),
    );
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let database_url = format!("postgres://postgres@127.0.0.1:{pg_port}/likes");

    // Tens of thousands of sockets need as many fds in the hub and the generator, which
    // inherit this limit (raising the hard limit needs root; otherwise up to the hard limit).
    raise_fd_limit(1 << 20);
    let redis = proc::redis(redis_port, &dir.join("redis"), true)?;
    let postgres = proc::postgres(&pg_bin, pg_port, &dir.join("postgres"))?;
    let sync = Service::start("sync-daemon", {
        let (redis_url, database_url, sync_admin) =
            (redis_url.clone(), database_url.clone(), sync_admin.clone());
        move || {
            let mut c = Command::new(tools::release_bin("sync-daemon"));
            quiet(&mut c);
            c.args(["--redis-url", &redis_url, "--database-url", &database_url])
                .args(["--admin-listen", &sync_admin, "run"]);
            c
        }
    })?;
    let hub_svc = Service::start("realtime-hub", {
        let (hub, redis_url) = (hub.clone(), redis_url.clone());
        move || {
            let mut c = Command::new(tools::release_bin("realtime-hub"));
            quiet(&mut c);
            c.args(["--listen", &hub, "--redis-url", &redis_url]);
            c
        }
    })?;
    // A fresh system gets a fresh secret; the generator mints its users' tokens with it.
    let secret = tools::random_hex(32)?;
    let edge_svc = Service::start("edge-host", {
        let (edge, secret) = (edge.clone(), secret.clone());
        move || {
            let mut c = Command::new(tools::release_bin("edge-host"));
            quiet(&mut c);
            c.arg("--manifest")
                .arg(root().join("spin.toml"))
                .args(["--listen", &edge])
                .args(["--variable", &format!("redis_host=127.0.0.1:{redis_port}")])
                .args(["--variable", &format!("session_secret={secret}")])
                // Thousands of users from one address, as fast as they go: the load itself.
                .args(["--variable", "likes_per_minute=0"])
                .args(["--variable", "sessions_per_minute=0"])
                .current_dir(root());
            c
        }
    })?;
    for addr in [&edge, &hub, &sync_admin] {
        proc::wait_for_port(addr, Duration::from_secs(120))?;
    }
    std::thread::sleep(Duration::from_millis(500));
    for svc in [&redis, &postgres, &sync, &hub_svc, &edge_svc] {
        anyhow::ensure!(
            running(svc.pid()),
            "{} exited at start (a port taken meanwhile?); run again",
            svc.name
        );
    }

    // Ctrl-C reaches likes-load too (same process group), which ends the load early and still
    // judges; xtask waits for it and then stops the services.
    ctrlc::set_handler(|| {}).context("installing the Ctrl-C handler")?;
    let mut cmd = Command::new(tools::release_bin("likes-load"));
    cmd.args(["--edge", &format!("http://{edge}")])
        .args(["--hub", &format!("http://{hub}")])
        .args(["--redis", &redis_url, "--database-url", &database_url])
        .args(["--sync-metrics", &format!("http://{sync_admin}/metrics")])
        .args(["--token-secret", &secret]);
    for svc in [&redis, &postgres, &sync, &hub_svc, &edge_svc] {
        cmd.args(["--watch", &format!("{}={}", svc.name, svc.pid())]);
    }
    if !args.load.iter().any(|a| a == "--report") {
        cmd.arg("--report").arg(dir.join("report"));
    }
    cmd.args(&args.load);
    let status = cmd.status().context("running likes-load")?;
    // Services stop in reverse order when dropped.
    drop((edge_svc, hub_svc, sync, postgres, redis));
    anyhow::ensure!(status.success(), "likes-load: {status}");
    Ok(())
}
