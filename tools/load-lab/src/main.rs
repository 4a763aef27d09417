//! `load-lab` command line: parse flags/env, set up logging, serve until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use likes_load::cli::TargetArgs;
use load_lab::Config;
use load_lab::config::{self as defaults, LabKey, Limits};

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
    #[arg(long, env = "LAB_MAX_USERS", default_value_t = defaults::DEFAULT_MAX_USERS)]
    max_users: u64,
    /// Most posts one run may create.
    #[arg(long, env = "LAB_MAX_POSTS", default_value_t = defaults::DEFAULT_MAX_POSTS)]
    max_posts: u32,
    /// Highest target rate (like/unlike requests per second) one run may ask for.
    #[arg(long, env = "LAB_MAX_RATE", default_value_t = defaults::DEFAULT_MAX_RATE)]
    max_rate: f64,
    /// Most realtime-hub sockets one run may hold.
    #[arg(long, env = "LAB_MAX_SOCKETS", default_value_t = defaults::DEFAULT_MAX_SOCKETS)]
    max_sockets: u64,
    /// Longest load phase (ramp plus steady part) one run may ask for, in seconds.
    #[arg(
        long,
        env = "LAB_MAX_DURATION_SECS",
        default_value_t = defaults::DEFAULT_MAX_DURATION_SECS
    )]
    max_duration_secs: u64,
    /// Browser origins allowed to reach the lab (repeatable or comma-separated; `*` for any):
    /// a request with another `Origin`, WebSocket upgrades included, gets 403, and CORS allows
    /// only these. Requests without `Origin` (non-browser clients) pass; the key still applies.
    #[arg(
        long = "allowed-origin",
        visible_alias = "cors-origin",
        env = "LAB_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:3000,http://localhost:3000"
    )]
    allowed_origins: Vec<String>,
    /// The key every Socket.IO connection must present (`auth: { key }`), 32 to 256 visible
    /// characters. Without it a random one is generated and logged at start; `cargo xtask up`
    /// passes one and gives it to the edge (`lab_key`) for the app's Load lab page. Prefer the
    /// environment variable: a flag shows in the process list.
    #[arg(long, env = "LAB_KEY", hide_env_values = true, value_parser = LabKey::parse)]
    lab_key: Option<LabKey>,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<Config> {
        let key = match self.lab_key {
            Some(key) => key,
            None => {
                let key = LabKey::generate()?;
                // A command-line client needs the key; `cargo xtask up` passes its own, so
                // this is only logged when the operator asked for nothing.
                tracing::info!(
                    key = key.expose(),
                    "no --lab-key given: generated one; clients must send it as auth {{ key }}"
                );
                key
            }
        };
        let mut target = likes_load::Config::default();
        self.target.apply(&mut target);
        let mut config = Config::new(target, key);
        config.enabled = self.enable_lab;
        config.limits = Limits {
            max_users: self.max_users,
            max_posts: self.max_posts,
            max_rate: self.max_rate,
            max_sockets: self.max_sockets,
            max_duration: Duration::from_secs(self.max_duration_secs),
        };
        config.allowed_origins = self.allowed_origins;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::init_tracing("info");
    let cli = Cli::parse();
    let listen = cli.listen;
    let config = cli.into_config()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    load_lab::run(listener, config, service_kit::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("load-lab").chain(args.iter().copied()))
    }

    #[test]
    fn the_defaults_are_the_library_defaults() {
        let config = cli(&[]).expect("no flags").into_config().expect("config");
        assert_eq!(config.allowed_origins, defaults::DEFAULT_ALLOWED_ORIGINS);
        assert_eq!(config.limits, Limits::default());
        assert!(!config.enabled);
        // No fixed default key: each start makes a new one.
        let again = cli(&[]).expect("no flags").into_config().expect("config");
        assert_ne!(config.key, again.key);
    }

    #[test]
    fn flags_set_the_key_the_origins_and_the_caps() {
        let key = "0123456789abcdef0123456789abcdef";
        let config = cli(&[
            "--lab-key",
            key,
            "--cors-origin",
            "http://a.example,http://b.example",
            "--max-posts",
            "7",
            "--max-rate",
            "12.5",
            "--max-duration-secs",
            "30",
        ])
        .expect("flags")
        .into_config()
        .expect("config");
        assert!(config.key.matches(key));
        assert_eq!(
            config.allowed_origins,
            ["http://a.example", "http://b.example"]
        );
        assert_eq!((config.limits.max_posts, config.limits.max_rate), (7, 12.5));
        assert_eq!(config.limits.max_duration, Duration::from_secs(30));
        assert!(cli(&["--lab-key", "short"]).is_err());
    }
}
