//! What a run does: targets, scenario and presets. The same struct is what a control endpoint
//! would accept as JSON, so every field has a serde form.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How likes are spread over the posts a run creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Popularity {
    /// Every post equally likely.
    Uniform,
    /// Zipf with exponent 1: post k gets a share proportional to 1/k.
    Zipf,
    /// One viral post takes `viral_share` of the likes; the rest follow Zipf.
    Viral,
}

/// Named scenarios from issue 7. Explicit flags override what a preset sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Preset {
    /// 10,000 users, 10,000 sockets, 60 s at a constant rate, Zipf, 10% unlikes.
    #[value(name = "10k")]
    #[serde(rename = "10k")]
    K10,
    /// 100,000 users, as many sockets as one hub process holds here (19,000), 60 s.
    #[value(name = "100k")]
    #[serde(rename = "100k")]
    K100,
    /// 1,000,000 distinct users each liking once: one viral post and a Zipf spread.
    #[value(name = "1m")]
    #[serde(rename = "1m")]
    M1,
}

/// A whole run: where the system is and what load to put on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Edge base URL, e.g. `http://127.0.0.1:3000`.
    pub edge: String,
    /// Realtime hub base URL; no sockets when absent.
    pub hub: Option<String>,
    /// Redis the edge writes to (counts for the verdict; user registration when minting).
    pub redis: String,
    /// PostgreSQL the sync daemon writes; the verdict is incomplete without it.
    pub database_url: Option<String>,
    /// The sync daemon's `/metrics` URL, sampled for sync lag.
    pub sync_metrics: Option<String>,
    /// Distinct virtual users.
    pub users: u64,
    /// Socket.IO connections to hold open during the run.
    pub sockets: u64,
    /// Target like/unlike requests per second (open loop).
    pub rate: f64,
    /// How long to send at the target rate (after the ramp).
    #[serde(with = "secs")]
    pub duration: Duration,
    /// Linear ramp from 0 to `rate` before the steady part.
    #[serde(with = "secs")]
    pub ramp: Duration,
    /// Stop after this many like/unlike requests even if time remains.
    pub max_requests: Option<u64>,
    /// Posts created in the setup phase and liked during the run.
    pub posts: u32,
    pub popularity: Popularity,
    /// Share of likes going to the viral post (`Popularity::Viral`).
    pub viral_share: f64,
    /// Share of requests that are unlikes of a post the user likes.
    pub unlike_ratio: f64,
    /// `POST /api/posts` uploads per second mixed into the run.
    pub uploads_per_sec: f64,
    /// Session secret: when set, users are registered straight into Redis with the same
    /// `session.lua` the edge runs and their tokens are minted here (see README).
    pub token_secret: Option<String>,
    /// Most requests in flight; beyond it arrivals queue (and their wait counts as latency).
    pub max_in_flight: usize,
    /// How long the verdict waits for PostgreSQL to catch up.
    #[serde(with = "secs")]
    pub drain_timeout: Duration,
    /// Posts each socket subscribes to.
    pub subs_per_socket: u32,
    /// Seed of every random choice, so a run can be repeated.
    pub seed: u64,
    /// Process ids to sample memory of, by name (e.g. `edge-host=1234`).
    pub watch: Vec<(String, u32)>,
    /// Append-only JSONL record of every request and answer; the run is then audited against
    /// it (see `audit.rs`).
    #[serde(default)]
    pub ledger: Option<std::path::PathBuf>,
    /// How long the end-of-run replay keeps retrying requests whose effect is unknown (a
    /// service may still be restarting).
    #[serde(default = "default_replay_timeout", with = "secs")]
    pub replay_timeout: Duration,
}

fn default_replay_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            edge: "http://127.0.0.1:3000".into(),
            hub: Some("http://127.0.0.1:3001".into()),
            redis: "redis://127.0.0.1:6380".into(),
            database_url: Some("postgres://postgres@127.0.0.1:5433/likes".into()),
            sync_metrics: Some("http://127.0.0.1:3003/metrics".into()),
            users: 1_000,
            sockets: 100,
            rate: 500.0,
            duration: Duration::from_secs(10),
            ramp: Duration::from_secs(2),
            max_requests: None,
            posts: 100,
            popularity: Popularity::Zipf,
            viral_share: 0.5,
            unlike_ratio: 0.1,
            uploads_per_sec: 0.0,
            token_secret: None,
            max_in_flight: 512,
            drain_timeout: Duration::from_secs(120),
            subs_per_socket: 1,
            seed: 7,
            watch: Vec::new(),
            ledger: None,
            replay_timeout: default_replay_timeout(),
        }
    }
}

impl Config {
    /// Applies a preset's scenario on top of the current values.
    pub fn apply_preset(&mut self, preset: Preset) {
        match preset {
            Preset::K10 | Preset::K100 => {
                (self.users, self.sockets) = match preset {
                    Preset::K10 => (10_000, 10_000),
                    // One hub process holds as many sockets as its open-file limit allows; on
                    // the development box that is a hard limit of 20,000 fds per process.
                    _ => (100_000, 19_000),
                };
                self.rate = 3_000.0;
                self.duration = Duration::from_secs(60);
                self.ramp = Duration::from_secs(5);
                self.posts = 1_000;
                self.popularity = Popularity::Zipf;
                self.unlike_ratio = 0.1;
                self.uploads_per_sec = 1.0;
            }
            Preset::M1 => {
                self.users = 1_000_000;
                self.sockets = 10_000;
                self.rate = 4_000.0;
                // Long enough for every user to like once at the rate; `max_requests` ends it.
                self.duration = Duration::from_secs(3_600);
                self.ramp = Duration::from_secs(5);
                self.max_requests = Some(1_000_000);
                self.posts = 1_000;
                self.popularity = Popularity::Viral;
                self.unlike_ratio = 0.0;
                self.uploads_per_sec = 0.0;
            }
        }
    }

    /// Refuses settings that cannot run, with the reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 || self.posts == 0 {
            return Err("--users and --posts must be at least 1".into());
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err("--rate must be a positive number".into());
        }
        if !(0.0..=1.0).contains(&self.unlike_ratio) || !(0.0..=1.0).contains(&self.viral_share) {
            return Err("--unlike-ratio and --viral-share are fractions in 0..=1".into());
        }
        if self.uploads_per_sec < 0.0 || !self.uploads_per_sec.is_finite() {
            return Err("--uploads-per-sec must be zero or positive".into());
        }
        if self.max_in_flight == 0 {
            return Err("--max-in-flight must be at least 1".into());
        }
        if self.subs_per_socket == 0
            || self.subs_per_socket as usize > likes_core::api::realtime::MAX_POSTS_PER_SOCKET
        {
            return Err("--subs-per-socket must be 1..=500".into());
        }
        Ok(())
    }

    /// The target rate at `t` into the load phase (the ramp is linear from zero).
    pub fn rate_at(&self, t: Duration) -> f64 {
        if t < self.ramp {
            self.rate * t.as_secs_f64() / self.ramp.as_secs_f64()
        } else {
            self.rate
        }
    }

    /// The load phase's length: ramp plus steady part.
    pub fn load_time(&self) -> Duration {
        self.ramp + self.duration
    }
}

/// Durations as (fractional) seconds in JSON.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_the_ramp_is_linear() {
        for p in [Preset::K10, Preset::K100, Preset::M1] {
            let mut c = Config::default();
            c.apply_preset(p);
            assert_eq!(c.validate(), Ok(()), "{p:?}");
        }
        let c = Config {
            rate: 1_000.0,
            ramp: Duration::from_secs(10),
            ..Config::default()
        };
        assert_eq!(c.rate_at(Duration::from_secs(5)), 500.0);
        assert_eq!(c.rate_at(Duration::from_secs(11)), 1_000.0);
        let json = serde_json::to_string(&c).expect("serialises");
        let back: Config = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.ramp, c.ramp);
    }
}
