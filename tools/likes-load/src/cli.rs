//! Command-line flags shared by the binaries that start runs (`likes-load` and `load-lab`), so
//! both name, document and default the system under load the same way.

use crate::Config;

/// Where the system under load is. The defaults are the ports `cargo xtask up` uses; `none`
/// turns an optional part off.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Edge base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub edge: String,
    /// Realtime hub base URL (`none` for no sockets).
    #[arg(long, default_value = "http://127.0.0.1:3001")]
    pub hub: String,
    /// Redis the edge uses (verdict counts; user registration with --token-secret).
    #[arg(long, default_value = "redis://127.0.0.1:6380")]
    pub redis: String,
    /// PostgreSQL the sync daemon writes (`none` to skip, which fails the verdict).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5433/likes")]
    pub database_url: String,
    /// The sync daemon's metrics page, sampled for sync lag (`none` to skip).
    #[arg(long, default_value = "http://127.0.0.1:3003/metrics")]
    pub sync_metrics: String,
    /// The edge's session secret: users are registered straight into Redis with the edge's own
    /// `session.lua` and their tokens minted here, instead of one `POST /api/session` each
    /// (much faster for large runs).
    #[arg(long, env = "LIKES_SESSION_SECRET")]
    pub token_secret: Option<String>,
}

impl TargetArgs {
    /// Writes the target into `config`, leaving the scenario as it is.
    pub fn apply(self, config: &mut Config) {
        config.edge = self.edge;
        config.hub = none(self.hub);
        config.redis = self.redis;
        config.database_url = none(self.database_url);
        config.sync_metrics = none(self.sync_metrics);
        config.token_secret = self.token_secret;
    }
}

fn none(s: String) -> Option<String> {
    (s != "none").then_some(s)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        target: TargetArgs,
    }

    fn config(args: &[&str]) -> Config {
        let cli = Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .expect("flags parse");
        let mut config = Config::default();
        cli.target.apply(&mut config);
        config
    }

    #[test]
    fn defaults_are_the_ports_xtask_up_uses() {
        let c = config(&[]);
        assert_eq!(c.edge, "http://127.0.0.1:3000");
        assert_eq!(c.hub.as_deref(), Some("http://127.0.0.1:3001"));
        assert_eq!(c.redis, "redis://127.0.0.1:6380");
        assert_eq!(
            c.database_url.as_deref(),
            Some("postgres://postgres@127.0.0.1:5433/likes")
        );
        assert_eq!(
            c.sync_metrics.as_deref(),
            Some("http://127.0.0.1:3003/metrics")
        );
    }

    #[test]
    fn none_turns_the_optional_parts_off() {
        let c = config(&[
            "--hub",
            "none",
            "--database-url",
            "none",
            "--sync-metrics",
            "none",
        ]);
        assert_eq!((c.hub, c.database_url, c.sync_metrics), (None, None, None));
    }

    #[test]
    fn given_flags_replace_the_defaults() {
        let c = config(&["--edge", "http://edge:80", "--token-secret", "s3cret"]);
        assert_eq!(c.edge, "http://edge:80");
        assert_eq!(c.token_secret.as_deref(), Some("s3cret"));
    }
}
