//! Rate limits: what is counted (likes, sign-ins, uploads), whose budget it is (a user, or a
//! client network), and the typed call of `lua/rate.lua`, a fixed one-minute window per key.

use std::fmt;
use std::net::IpAddr;

use crate::ids::UserId;
use crate::keys;

/// The window every limit counts in.
pub const WINDOW_SECS: u64 = 60;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Likes and unlikes by one user.
    Like,
    /// `POST /api/session` from one client network.
    Session,
    /// Uploads by one user.
    Upload,
    /// Uploads from one client network (new sessions are new users).
    UploadFromAddress,
}

impl Scope {
    /// The name in the counter's key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::Session => "session",
            Self::Upload => "upload",
            Self::UploadFromAddress => "upload-addr",
        }
    }

    /// What a client is told it did too often.
    fn what(self) -> &'static str {
        match self {
            Self::Like => "likes and unlikes",
            Self::Session => "sign-ins from one address",
            Self::Upload => "uploads",
            Self::UploadFromAddress => "uploads from one address",
        }
    }
}

/// A client's network as rate limits see it: an IPv4 address, or an IPv6 /64 (one subscriber
/// line usually holds a whole /64, so per-address IPv6 limits would be free to dodge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNet(IpAddr);

impl ClientNet {
    /// From Spin's `spin-client-addr` header (`ip:port`, IPv6 in brackets) or a bare address.
    pub fn parse(value: &str) -> Option<Self> {
        address(value).map(Self::of)
    }

    /// The network of the client behind `peer` (`spin-client-addr`): when `peer` is a trusted
    /// proxy, `X-Forwarded-For` (every value, in order) is read from the right, and the first
    /// address that is not a trusted proxy is the client. Entries left of it are whatever the
    /// client sent, so they are never believed.
    pub fn resolve<'a>(
        peer: &str,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
        trusted: &TrustedProxies,
    ) -> Option<Self> {
        let mut client = address(peer)?;
        if trusted.contains(client) {
            for hop in forwarded_for.rev().flat_map(|v| v.rsplit(',')) {
                // A malformed hop was written by nobody we trust: the last good one stands.
                let Some(ip) = address(hop.trim()) else { break };
                client = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
        }
        Some(Self::of(client))
    }

    fn of(ip: IpAddr) -> Self {
        Self(match ip {
            IpAddr::V6(v6) => {
                let masked = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(masked.into())
            }
            v4 => v4,
        })
    }
}

/// An address as `ip:port`, `[ipv6]:port` or a bare address; an IPv4-mapped IPv6 address is
/// its IPv4 address.
fn address(value: &str) -> Option<IpAddr> {
    let ip = match value.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip(),
        Err(_) => value.parse::<IpAddr>().ok()?,
    };
    Some(ip.to_canonical())
}

/// The proxies whose `X-Forwarded-For` the edge believes (the `trusted_proxies` variable): a
/// comma-separated list of networks (`10.0.0.0/8`) or addresses. Empty, the default, trusts
/// nobody, so a client cannot pick its own rate-limit budget by sending the header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses the variable; an entry that is neither a network nor an address is an error
    /// naming it, so a typo never silently trusts nobody (or everybody).
    pub fn parse(value: &str) -> Result<Self, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .map(|n| n.trunc())
                    .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{s}` is not a network (10.0.0.0/8) or an address"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "ip_{v4}"),
            IpAddr::V6(v6) => write!(f, "ip_{v6}/64"),
        }
    }
}

/// Whose budget a hit counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    User(UserId),
    Client(ClientNet),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(u) => write!(f, "{u}"),
            Self::Client(c) => write!(f, "{c}"),
        }
    }
}

/// One hit against a budget of `per_minute`: `lua/rate.lua`'s keys and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCall {
    pub scope: Scope,
    pub subject: Subject,
    /// Hits allowed per window; never 0 (a limit of 0 is "off" and makes no call).
    pub per_minute: u64,
}

impl RateCall {
    /// The call, or `None` when the limit is off (`per_minute` = 0).
    pub fn new(scope: Scope, subject: Subject, per_minute: u64) -> Option<Self> {
        (per_minute > 0).then_some(Self {
            scope,
            subject,
            per_minute,
        })
    }

    /// `KEYS`: the counter of this subject and scope.
    pub fn keys(&self) -> [String; 1] {
        [keys::rate_key(self.scope.as_str(), &self.subject)]
    }

    /// `ARGV`: the limit and the window in seconds.
    pub fn args(&self) -> [String; 2] {
        [self.per_minute.to_string(), WINDOW_SECS.to_string()]
    }

    /// The script's reply `{allowed, seconds until the window resets}` as a verdict.
    pub fn verdict(&self, allowed: i64, reset_secs: i64) -> Verdict {
        if allowed == 1 {
            return Verdict::Allowed;
        }
        let retry_after_secs = u64::try_from(reset_secs)
            .unwrap_or(WINDOW_SECS)
            .clamp(1, WINDOW_SECS);
        Verdict::Limited {
            retry_after_secs,
            detail: format!(
                "at most {} {} per minute; try again in {retry_after_secs} s",
                self.per_minute,
                self.scope.what()
            ),
        }
    }
}

/// What the limiter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// A 429 with `Retry-After: retry_after_secs`, and `detail` for the problem body.
    Limited {
        retry_after_secs: u64,
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_networks_are_ipv4_addresses_and_ipv6_slash_64s() {
        let net = |s| ClientNet::parse(s).map(|n| n.to_string());
        assert_eq!(net("203.0.113.7:51234").as_deref(), Some("ip_203.0.113.7"));
        assert_eq!(net("203.0.113.7").as_deref(), Some("ip_203.0.113.7"));
        assert_eq!(
            net("[2001:db8:1:2:aaaa::1]:443").as_deref(),
            Some("ip_2001:db8:1:2::/64")
        );
        assert_eq!(
            net("[2001:db8:1:2:aaaa::1]:443"),
            net("[2001:db8:1:2:ffff::9]:80")
        );
        // An IPv4 client on a dual-stack socket counts as its IPv4 address.
        assert_eq!(
            net("[::ffff:203.0.113.7]:1").as_deref(),
            Some("ip_203.0.113.7")
        );
        assert_eq!(net("not an address"), None);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() -> Result<(), String> {
        let trusted = TrustedProxies::parse(" 10.0.0.0/8, 127.0.0.1 ,::1")?;
        let net = |peer, xff: &[&str], t: &TrustedProxies| {
            ClientNet::resolve(peer, xff.iter().copied(), t).map(|n| n.to_string())
        };
        let ip = |s: &str| Some(format!("ip_{s}"));
        // Nobody trusted (the default): the header changes nothing.
        let nobody = TrustedProxies::default();
        assert_eq!(
            net("127.0.0.1:9", &["203.0.113.7"], &nobody),
            ip("127.0.0.1")
        );
        // From a trusted proxy, the rightmost untrusted hop is the client, and what the client
        // wrote to the left of it is ignored.
        assert_eq!(
            net("127.0.0.1:9", &["203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            net(
                "127.0.0.1:9",
                &["198.51.100.1, 203.0.113.7, 10.1.2.3"],
                &trusted
            ),
            ip("203.0.113.7")
        );
        // Several headers read as one list, in order.
        assert_eq!(
            net(
                "[::1]:9",
                &["198.51.100.1", "203.0.113.7:5000", "10.9.9.9"],
                &trusted
            ),
            ip("203.0.113.7")
        );
        // From an untrusted peer the header is the client's own claim.
        assert_eq!(
            net("192.0.2.1:9", &["203.0.113.7"], &trusted),
            ip("192.0.2.1")
        );
        // Garbage stops the walk at the last good hop; no header leaves the proxy itself.
        assert_eq!(
            net("127.0.0.1:9", &["unknown, 10.0.0.5"], &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(net("127.0.0.1:9", &[], &trusted), ip("127.0.0.1"));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
        assert_eq!(TrustedProxies::parse(" , ")?, TrustedProxies::default());
        Ok(())
    }

    #[test]
    fn a_zero_limit_is_off_and_keys_name_scope_and_subject() {
        let user = Subject::User(UserId::new(42).expect("id"));
        assert_eq!(RateCall::new(Scope::Like, user, 0), None);
        let call = RateCall::new(Scope::Like, user, 300).expect("on");
        assert_eq!(call.keys(), ["rate:like:u_42".to_owned()]);
        assert_eq!(call.args(), ["300".to_owned(), "60".to_owned()]);
    }

    #[test]
    fn a_refusal_says_how_long_to_wait() {
        let user = Subject::User(UserId::new(42).expect("id"));
        let call = RateCall::new(Scope::Like, user, 300).expect("on");
        assert_eq!(call.verdict(1, 12), Verdict::Allowed);
        assert_eq!(
            call.verdict(0, 12),
            Verdict::Limited {
                retry_after_secs: 12,
                detail: "at most 300 likes and unlikes per minute; try again in 12 s".into()
            }
        );
        // Whatever the reply says, Retry-After is between 1 s and the window.
        for (reset, expect) in [(-1, 60), (0, 1), (3_600, 60)] {
            assert!(
                matches!(call.verdict(0, reset), Verdict::Limited { retry_after_secs, .. } if retry_after_secs == expect),
                "{reset}"
            );
        }
    }
}
