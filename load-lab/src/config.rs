//! What the lab serves with: whether runs are allowed, the system every run targets, and the
//! caps that keep a request from the page from taking the machine down.

use std::time::Duration;

/// Default cap on the users of one run: the `1m` preset fits, nothing larger does.
pub const DEFAULT_MAX_USERS: u64 = 1_000_000;
/// Ticks kept for pages that connect during a run (one a second: ten minutes of plot).
pub const TICKS_KEPT: usize = 600;

/// Everything `run` needs besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Whether `lab:start` runs anything; off by default, so a deployment does not expose a
    /// load generator by accident.
    pub enabled: bool,
    /// The system under test and the defaults of every run (edge, hub, Redis, PostgreSQL,
    /// sync metrics, token secret). Each `lab:start` applies its preset and settings on top.
    pub target: likes_load::Config,
    /// Most users one run may have.
    pub max_users: u64,
    /// Browser origins allowed by CORS (`*` for any).
    pub cors_origins: Vec<String>,
    /// How long a run gets to stop and answer its verdict when the lab shuts down.
    pub shutdown_grace: Duration,
}

impl Config {
    /// Defaults aimed at the local system of `cargo xtask up`, lab disabled.
    pub fn new(target: likes_load::Config) -> Self {
        Self {
            enabled: false,
            target,
            max_users: DEFAULT_MAX_USERS,
            cors_origins: vec![
                "http://127.0.0.1:3000".to_owned(),
                "http://localhost:3000".to_owned(),
            ],
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
