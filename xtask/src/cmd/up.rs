//! `cargo xtask up`: Redis on 127.0.0.1:6380 (AOF on, data under target/dev/) and the edge on
//! 127.0.0.1:3000, supervised until Ctrl-C.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::proc::{self, Service};
use crate::tools::{self, root};

/// Ports of the local system (shared/api.md).
pub const EDGE_ADDR: &str = "127.0.0.1:3000";
pub const EDGE_ADMIN_ADDR: &str = "127.0.0.1:9100";
pub const REDIS_PORT: u16 = 6380;
/// Session secret for local development only; `LIKES_SESSION_SECRET` overrides it.
pub const DEV_SECRET: &str = "dev-only-session-secret-change-me";

#[derive(clap::Args)]
pub struct Args {
    /// Serve the components with the real `spin` (on PATH) instead of our edge host.
    #[arg(long)]
    spin: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tools::ensure_redis()?;
    tools::build_components(false)?;
    if args.spin {
        if !tools::on_path("spin") {
            bail!(
                "`spin` is not on PATH: install Spin 4 (https://spinframework.dev/install) or run without --spin"
            );
        }
    } else {
        tools::build_native(&["edge-host"])?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    let redis = proc::redis(REDIS_PORT, &root().join("target/dev/redis"), true)?;
    let secret = std::env::var("LIKES_SESSION_SECRET").unwrap_or_else(|_| DEV_SECRET.to_owned());
    let manifest = root().join("spin.toml");
    let edge = if args.spin {
        Service::start("spin", move || {
            let mut c = Command::new("spin");
            c.arg("up")
                .arg("--from")
                .arg(&manifest)
                .args(["--listen", EDGE_ADDR]);
            c.env("SPIN_VARIABLE_SESSION_SECRET", &secret).env(
                "SPIN_VARIABLE_REDIS_HOST",
                format!("127.0.0.1:{REDIS_PORT}"),
            );
            c
        })?
    } else {
        Service::start("edge-host", move || {
            let mut c = Command::new(tools::release_bin("edge-host"));
            c.arg("--manifest").arg(&manifest).args([
                "--listen",
                EDGE_ADDR,
                "--admin-listen",
                EDGE_ADMIN_ADDR,
            ]);
            c.env("SPIN_VARIABLE_SESSION_SECRET", &secret).env(
                "SPIN_VARIABLE_REDIS_HOST",
                format!("127.0.0.1:{REDIS_PORT}"),
            );
            c
        })?
    };
    proc::wait_for_port(EDGE_ADDR, Duration::from_secs(120))?;

    println!();
    println!("  edge API     http://{EDGE_ADDR}/api/health");
    if !args.spin {
        println!("  edge metrics http://{EDGE_ADMIN_ADDR}/metrics");
    }
    println!("  redis        redis://127.0.0.1:{REDIS_PORT}  (data in target/dev/redis)");
    println!("  Ctrl-C stops everything.");
    println!();

    let mut services = vec![redis, edge];
    while !stop.load(Ordering::SeqCst) {
        for s in &mut services {
            s.supervise()?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("[xtask] stopping");
    // Stop in reverse start order: the edge drains its requests before Redis goes away.
    while let Some(mut s) = services.pop() {
        s.stop(Duration::from_secs(15));
    }
    Ok(())
}
