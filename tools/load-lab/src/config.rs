//! What the lab serves with: whether runs are allowed, the system every run targets, the
//! caps that keep a request from the page from taking the machine down, and who may talk to
//! it (the browser origins and the per-process key).

use std::fmt;
use std::time::Duration;

/// Default cap on the users of one run: the `1m` preset fits, nothing larger does.
pub const DEFAULT_MAX_USERS: u64 = 1_000_000;
/// Default cap on the posts of one run: ten times what every preset creates (each post is an
/// image upload during setup).
pub const DEFAULT_MAX_POSTS: u32 = 10_000;
/// Default cap on the target rate, in requests per second: 2.5× the fastest preset.
pub const DEFAULT_MAX_RATE: f64 = 10_000.0;
/// Default cap on the hub sockets of one run: the `100k` preset's 19,000 fit, which is about
/// what one hub process holds under the development box's open-file limit.
pub const DEFAULT_MAX_SOCKETS: u64 = 20_000;
/// Default cap on a run's load phase (ramp plus steady part): two hours; the `1m` preset asks
/// for 3,605 s and ends by its request count.
pub const DEFAULT_MAX_DURATION_SECS: u64 = 7_200;
/// Ticks kept for pages that connect during a run (one a second: ten minutes of plot).
pub const TICKS_KEPT: usize = 600;
/// The origins `cargo xtask up` serves the app from (its edge listens on 127.0.0.1:3000).
pub const DEFAULT_ALLOWED_ORIGINS: [&str; 2] = ["http://127.0.0.1:3000", "http://localhost:3000"];

/// The largest run one `lab:start` may ask for; anything beyond is refused before it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_users: u64,
    pub max_posts: u32,
    /// Target like/unlike requests per second.
    pub max_rate: f64,
    pub max_sockets: u64,
    /// The load phase: ramp plus steady part.
    pub max_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_users: DEFAULT_MAX_USERS,
            max_posts: DEFAULT_MAX_POSTS,
            max_rate: DEFAULT_MAX_RATE,
            max_sockets: DEFAULT_MAX_SOCKETS,
            max_duration: Duration::from_secs(DEFAULT_MAX_DURATION_SECS),
        }
    }
}

impl Limits {
    /// Refuses caps that would let nothing run or cannot be compared (a NaN rate).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_users == 0 || self.max_posts == 0 {
            return Err("--max-users and --max-posts must be at least 1".into());
        }
        if !(self.max_rate > 0.0 && self.max_rate.is_finite()) {
            return Err("--max-rate must be a positive number".into());
        }
        if self.max_duration.is_zero() {
            return Err("--max-duration-secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Shortest key the lab accepts from `--lab-key`: 128 bits of hex, so it cannot be guessed.
pub const MIN_KEY_CHARS: usize = 32;
/// Longest key accepted; a Socket.IO auth payload has no business being larger.
pub const MAX_KEY_CHARS: usize = 256;

/// Why a configured lab key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the lab key must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters long")]
    Length,
    #[error("the lab key may hold only visible ASCII characters (no spaces)")]
    Characters,
    #[error("no randomness for the lab key: {0}")]
    Random(getrandom::Error),
}

/// The secret a Socket.IO connection must present (`auth: { key }`) to control the lab. It is
/// per process and never a fixed default, so a page that cannot read the app's own
/// `/api/config` cannot guess it. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct LabKey(String);

impl LabKey {
    /// A fresh key: 32 bytes from the operating system's generator, as 64 hex digits.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A key given by the operator (`--lab-key`, `LAB_KEY`), refused when short enough to
    /// guess or not safe to pass around in JSON and environment variables.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let key = raw.trim();
        if !(MIN_KEY_CHARS..=MAX_KEY_CHARS).contains(&key.len()) {
            return Err(KeyError::Length);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::Characters);
        }
        Ok(Self(key.to_owned()))
    }

    /// The key itself, to hand to the app (or print for a command-line client).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this key, in time independent of where they differ, so the
    /// answer's timing does not leak the key byte by byte. (Only the length may show, and
    /// generated keys all have the same one.)
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for LabKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LabKey(..)")
    }
}

/// Everything `run` needs besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Whether `lab:start` runs anything; off by default, so a deployment does not expose a
    /// load generator by accident.
    pub enabled: bool,
    /// The system under test and the defaults of every run (edge, hub, Redis, PostgreSQL,
    /// sync metrics, token secret). Each `lab:start` applies its preset and settings on top.
    pub target: likes_load::Config,
    /// The largest run a request may ask for.
    pub limits: Limits,
    /// Browser origins allowed to reach the lab at all (CORS and the `Origin` check of every
    /// request, WebSocket upgrades included); `*` allows any.
    pub allowed_origins: Vec<String>,
    /// What a Socket.IO connection must present to connect.
    pub key: LabKey,
    /// How long a run gets to stop and answer its verdict when the lab shuts down.
    pub shutdown_grace: Duration,
}

impl Config {
    /// Defaults aimed at the local system of `cargo xtask up`, lab disabled.
    pub fn new(target: likes_load::Config, key: LabKey) -> Self {
        Self {
            enabled: false,
            target,
            limits: Limits::default(),
            allowed_origins: DEFAULT_ALLOWED_ORIGINS.map(str::to_owned).to_vec(),
            key,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_never_printed() {
        let (a, b) = (
            LabKey::generate().expect("a key"),
            LabKey::generate().expect("a key"),
        );
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(LabKey::parse(a.expose()).expect("its own key parses"), a);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn a_key_matches_only_itself() {
        let key = LabKey::parse("0123456789abcdef0123456789abcdef").expect("a key");
        assert!(key.matches("0123456789abcdef0123456789abcdef"));
        for wrong in [
            "",
            "0123456789abcdef0123456789abcdeF",
            "1123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
        ] {
            assert!(!key.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn short_or_odd_keys_are_refused() {
        assert!(matches!(LabKey::parse("secret"), Err(KeyError::Length)));
        assert!(matches!(
            LabKey::parse(&"k".repeat(MAX_KEY_CHARS + 1)),
            Err(KeyError::Length)
        ));
        assert!(matches!(
            LabKey::parse("0123456789abcdef 0123456789abcdef"),
            Err(KeyError::Characters)
        ));
        // Surrounding whitespace (a key read from a file) is not part of it.
        let key = LabKey::parse(" 0123456789abcdef0123456789abcdef\n").expect("trimmed");
        assert_eq!(key.expose(), "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn the_default_limits_fit_every_preset_and_are_valid() {
        let limits = Limits::default();
        limits.validate().expect("valid");
        for preset in [
            likes_load::Preset::K10,
            likes_load::Preset::K100,
            likes_load::Preset::M1,
        ] {
            let mut c = likes_load::Config::default();
            c.apply_preset(preset);
            assert!(c.users <= limits.max_users, "{preset:?}");
            assert!(c.posts <= limits.max_posts, "{preset:?}");
            assert!(c.rate <= limits.max_rate, "{preset:?}");
            assert!(c.sockets <= limits.max_sockets, "{preset:?}");
            assert!(c.load_time() <= limits.max_duration, "{preset:?}");
        }
        let bad = [
            Limits {
                max_rate: f64::NAN,
                ..limits
            },
            Limits {
                max_rate: 0.0,
                ..limits
            },
            Limits {
                max_users: 0,
                ..limits
            },
            Limits {
                max_duration: Duration::ZERO,
                ..limits
            },
        ];
        for l in bad {
            assert!(l.validate().is_err(), "{l:?}");
        }
    }
}
