//! `load-lab` command line: parse flags/env, set up logging, serve until SIGINT/SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use likes_load::cli::TargetArgs;
use load_lab::Config;

/// The load lab: runs the likes load generator on request from the app's Load lab page and
/// streams its progress and verdict over Socket.IO.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on (Socket.IO and /healthz).
    #[arg(long, env = "LAB_LISTEN", default_value = "127.0.0.1:3004")]
    listen: SocketAddr,
    /// Accept runs. Off by default: without it every `lab:start` is refused.
    #[arg(long, env = "LAB_ENABLED")]
    enable_lab: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// Most users one run may have, to protect the machine.
    #[arg(long, default_value_t = load_lab::config::DEFAULT_MAX_USERS)]
    max_users: u64,
    /// Allowed CORS origin (repeatable or comma-separated; `*` for any).
    #[arg(
        long = "cors-origin",
        env = "LAB_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:3000,http://localhost:3000"
    )]
    cors_origins: Vec<String>,
}

impl Cli {
    fn into_config(self) -> Config {
        let mut target = likes_load::Config::default();
        self.target.apply(&mut target);
        let mut config = Config::new(target);
        config.enabled = self.enable_lab;
        config.max_users = self.max_users;
        config.cors_origins = self.cors_origins;
        config
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::init_tracing("info");
    let cli = Cli::parse();
    let listen = cli.listen;
    let config = cli.into_config();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    load_lab::run(listener, config, service_kit::shutdown_signal()).await
}
