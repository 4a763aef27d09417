//! `cargo xtask load [likes-load flags…]`: a load-lab run against a fresh copy of the whole
//! system — Redis (AOF on, as in `up`), PostgreSQL, the sync daemon, the realtime hub and the
//! edge host — started on free ports with data under `target/load/<stamp>/`, so it never
//! collides with a running `cargo xtask up`. Every flag after `load` goes to `likes-load`; the
//! targets, a fresh session secret and the processes to watch are filled in. Everything is
//! stopped at the end; the report lands in `target/load/<stamp>/report/` unless `--report` is given.
//! With `--cluster` the system is the topology of `up --cluster` (on free ports too) and
//! `likes-load` goes through HAProxy, reading its verdict's counts from the cluster.

use std::process::Command;

use anyhow::Context;

use crate::stack::Stack;
use crate::tools::{self, root};

#[derive(clap::Args)]
pub struct Args {
    /// Use the release binaries and components already built.
    #[arg(long)]
    no_build: bool,
    /// The cluster topology of `up --cluster` instead (a 3+3 Redis Cluster, 2 sync daemons,
    /// 2 hubs and 2 edge hosts behind HAProxy), on free ports.
    #[arg(long)]
    cluster: bool,
    /// Flags for `likes-load` (see `target/release/likes-load --help`), e.g. `--preset 10k`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    load: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    let haproxy = args.cluster.then(tools::ensure_haproxy).transpose()?;
    if !args.no_build {
        tools::build_components(false)?;
        tools::build_native()?;
    }

    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = root().join("target/load").join(stamp.to_string());
    let stack = match &haproxy {
        Some(haproxy) => Stack::start_cluster(&dir, haproxy)?,
        None => Stack::start(&dir)?,
    };

    // Ctrl-C reaches likes-load too (same process group), which ends the load early and still
    // judges; xtask waits for it and then stops the services.
    ctrlc::set_handler(|| {}).context("installing the Ctrl-C handler")?;
    let mut cmd: Command = stack.likes_load();
    if !args.load.iter().any(|a| a == "--report") {
        cmd.arg("--report").arg(dir.join("report"));
    }
    cmd.args(&args.load);
    let status = cmd.status().context("running likes-load")?;
    drop(stack);
    anyhow::ensure!(status.success(), "likes-load: {status}");
    Ok(())
}
