//! `allowed_outbound_hosts`: parsing and matching, following Spin's outbound-networking rules.
//!
//! An entry is `<scheme>://<host>[:<port>]` with `*` wildcards for the scheme, the host, a
//! `*.domain` subdomain or the port, a `lo..hi` port range, or a CIDR host. A missing port means
//! the scheme's well-known port. Templates are expanded before parsing (see `app.rs`).

use std::net::IpAddr;

/// An allow-list entry or an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: {reason}")]
pub struct OutboundError {
    /// The text that failed to parse.
    pub input: String,
    /// Why.
    pub reason: String,
}

fn error(input: &str, reason: impl Into<String>) -> OutboundError {
    OutboundError {
        input: input.to_owned(),
        reason: reason.into(),
    }
}

/// The well-known port of a scheme, as Spin defines them.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemeRule {
    Any,
    One(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    AnySubdomain(String),
    /// `self`: service chaining, which never matches a network address.
    ToSelf,
    Exact(String),
    Cidr {
        network: IpAddr,
        prefix: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    One(u16),
    /// Half-open like Spin's `Range<u16>`.
    Range(u16, u16),
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    original: String,
    scheme: SchemeRule,
    host: HostRule,
    port: PortRule,
}

impl AllowedHost {
    /// Parses an entry such as `redis://127.0.0.1:6379` or `*://*.example.com:*`.
    pub fn parse(entry: &str) -> Result<Self, OutboundError> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(error(
                url,
                "does not contain a scheme; hosts must look like <scheme>://<host>[:<port>], \
                 with '*' wildcards allowed for each (use '*://*:*' to allow everything)",
            ));
        };
        let (host, rest) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match rest.split_once('/') {
            Some((port, "")) => port,
            Some(_) => return Err(error(url, "has a path but is not allowed to")),
            None => rest,
        };
        Ok(Self {
            original: entry.to_owned(),
            scheme: parse_scheme(url, scheme)?,
            host: parse_host(url, host)?,
            port: parse_port(url, port, scheme)?,
        })
    }

    /// True when `url` is allowed by this entry.
    pub fn allows(&self, url: &OutboundUrl) -> bool {
        let scheme_ok = match &self.scheme {
            SchemeRule::Any => true,
            SchemeRule::One(s) => *s == url.scheme,
        };
        let host_ok = match &self.host {
            HostRule::Any => true,
            HostRule::AnySubdomain(suffix) => url.host.ends_with(suffix.as_str()),
            HostRule::ToSelf => false,
            HostRule::Exact(h) => *h == url.host,
            HostRule::Cidr { network, prefix } => url
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| cidr_contains(*network, *prefix, ip)),
        };
        let port_ok = match &self.port {
            PortRule::Any => true,
            other => match url.port.or_else(|| well_known_port(&url.scheme)) {
                None => false,
                Some(p) => match other {
                    PortRule::One(allowed) => *allowed == p,
                    PortRule::Range(lo, hi) => (*lo..*hi).contains(&p),
                    PortRule::Any => true,
                },
            },
        };
        scheme_ok && host_ok && port_ok
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.original)
    }
}

fn parse_scheme(url: &str, scheme: &str) -> Result<SchemeRule, OutboundError> {
    if scheme == "*" {
        return Ok(SchemeRule::Any);
    }
    if scheme.starts_with('{') {
        return Err(error(url, "scheme lists are not yet supported"));
    }
    if scheme.is_empty() || scheme.chars().any(|c| !c.is_alphabetic()) {
        return Err(error(
            url,
            format!("scheme {scheme:?} contains non alphabetic character"),
        ));
    }
    Ok(SchemeRule::One(scheme.to_ascii_lowercase()))
}

fn parse_host(url: &str, host: &str) -> Result<HostRule, OutboundError> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostRule::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostRule::ToSelf);
    }
    if host.starts_with('{') {
        return Err(error(url, "host lists are not yet supported"));
    }
    if let Some((addr, prefix)) = host.split_once('/')
        && let (Ok(network), Ok(prefix)) = (addr.parse::<IpAddr>(), prefix.parse::<u8>())
    {
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(error(url, format!("CIDR prefix /{prefix} is too long")));
        }
        return Ok(HostRule::Cidr { network, prefix });
    }
    if matches!(host.split('/').nth(1), Some(path) if !path.is_empty()) {
        return Err(error(url, "hosts must not contain paths"));
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return Err(error(url, "wildcards are allowed only as prefixes"));
        }
        return Ok(HostRule::AnySubdomain(format!(
            ".{}",
            domain.to_ascii_lowercase()
        )));
    }
    if host.contains('*') {
        return Err(error(url, "wildcards are allowed only as subdomains"));
    }
    let host = host.trim_end_matches('/');
    if host.is_empty() {
        return Err(error(url, "has no host"));
    }
    Ok(HostRule::Exact(host.to_ascii_lowercase()))
}

fn parse_port(url: &str, port: &str, scheme: &str) -> Result<PortRule, OutboundError> {
    if port.is_empty() {
        return well_known_port(scheme).map(PortRule::One).ok_or_else(|| {
            error(
                url,
                format!("no port was provided and the scheme {scheme:?} has no well-known port"),
            )
        });
    }
    if port == "*" {
        return Ok(PortRule::Any);
    }
    if port.starts_with('{') {
        return Err(error(url, "port lists are not yet supported"));
    }
    if let Some((lo, hi)) = port.split_once("..") {
        let parse = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| error(url, format!("port range {port:?} contains non-number")))
        };
        return Ok(PortRule::Range(parse(lo)?, parse(hi)?));
    }
    port.parse::<u16>()
        .map(PortRule::One)
        .map_err(|_| error(url, format!("port {port:?} is not a number")))
}

fn cidr_contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The scheme, host and port of an address a guest wants to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    /// Lowercase scheme.
    pub scheme: String,
    /// Lowercase host (IPv6 keeps its brackets).
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
}

/// `address` with any `user:password@` replaced by `***@`, for logs: a Redis address carries
/// the edge's ACL password.
pub fn without_userinfo(address: &str) -> std::borrow::Cow<'_, str> {
    let (scheme, rest) = address.split_once("://").unwrap_or(("", address));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => {
            let sep = if scheme.is_empty() { "" } else { "://" };
            format!("{scheme}{sep}***@{host}{}", &rest[end..]).into()
        }
        None => address.into(),
    }
}

impl OutboundUrl {
    /// Parses `url`; without `scheme://` the `default_scheme` is assumed, as Spin does.
    pub fn parse(url: &str, default_scheme: &str) -> Result<Self, OutboundError> {
        let (scheme, rest) = url.split_once("://").unwrap_or((default_scheme, url));
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(error(url, "invalid scheme"));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| error(url, "unterminated IPv6 host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(error(url, "garbage after IPv6 host")),
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (host_port.to_ascii_lowercase(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(error(url, "does not have a host component"));
        }
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| error(url, format!("invalid port {p:?}")))?,
            ),
        };
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            host,
            port,
        })
    }
}

/// A component's parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Vec<AllowedHost>);

impl AllowedHosts {
    /// Parses already-expanded entries; `insecure:allow-all` is refused as Spin refuses it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, OutboundError> {
        if let [only] = entries
            && only.as_ref() == "insecure:allow-all"
        {
            return Err(error(
                "insecure:allow-all",
                "is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic",
            ));
        }
        entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// True when `address` (a URL, `default_scheme` assumed when it has none) is allowed.
    /// Unparseable addresses are never allowed.
    pub fn allows(&self, address: &str, default_scheme: &str) -> bool {
        match OutboundUrl::parse(address, default_scheme) {
            Ok(url) => self.0.iter().any(|h| h.allows(&url)),
            Err(_) => false,
        }
    }

    /// True when the list is empty (nothing is reachable).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_addresses_carry_no_password() {
        assert_eq!(
            without_userinfo("redis://likes-edge:s3cret@10.0.0.1:6379"),
            "redis://***@10.0.0.1:6379"
        );
        assert_eq!(
            without_userinfo("redis://10.0.0.1:6379"),
            "redis://10.0.0.1:6379"
        );
        assert_eq!(without_userinfo("u:p@h:1/x"), "***@h:1/x");
    }

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(entries).expect("valid allow-list")
    }

    #[test]
    fn exact_host_and_port() {
        let h = hosts(&["redis://127.0.0.1:6380"]);
        assert!(h.allows("redis://127.0.0.1:6380", "redis"));
        assert!(h.allows("redis://127.0.0.1:6380/0", "redis"));
        assert!(h.allows("redis://user:pw@127.0.0.1:6380", "redis"));
        assert!(!h.allows("redis://127.0.0.2:6380", "redis"), "other host");
        assert!(
            !h.allows("redis://localhost:6380", "redis"),
            "names are not resolved"
        );
    }

    #[test]
    fn port_mismatch_is_refused() {
        let h = hosts(&["redis://127.0.0.1:6380"]);
        assert!(!h.allows("redis://127.0.0.1:6379", "redis"));
        assert!(
            !h.allows("redis://127.0.0.1", "redis"),
            "default port 6379 is not 6380"
        );
    }

    #[test]
    fn scheme_mismatch_is_refused() {
        let h = hosts(&["redis://127.0.0.1:6380"]);
        assert!(!h.allows("rediss://127.0.0.1:6380", "redis"));
        assert!(!h.allows("http://127.0.0.1:6380", "redis"));
    }

    #[test]
    fn default_ports_apply_on_both_sides() {
        let h = hosts(&["redis://cache.internal"]);
        assert!(h.allows("redis://cache.internal:6379", "redis"));
        assert!(h.allows("redis://cache.internal", "redis"));
        assert!(
            h.allows("cache.internal", "redis"),
            "scheme defaults to redis"
        );
        assert!(!h.allows("redis://cache.internal:6380", "redis"));
    }

    #[test]
    fn wildcards() {
        let h = hosts(&["redis://*:6380"]);
        assert!(h.allows("redis://10.1.2.3:6380", "redis"));
        assert!(!h.allows("redis://10.1.2.3:6379", "redis"));

        let h = hosts(&["redis://127.0.0.1:*"]);
        assert!(h.allows("redis://127.0.0.1:1", "redis"));
        assert!(!h.allows("redis://127.0.0.2:1", "redis"));

        let h = hosts(&["*://*.example.com:*"]);
        assert!(h.allows("redis://a.example.com:1", "redis"));
        assert!(h.allows("http://b.a.EXAMPLE.com", "redis"));
        assert!(!h.allows("redis://example.com:1", "redis"));

        let h = hosts(&["*://*:*"]);
        assert!(h.allows("redis://anything:1", "redis"));
    }

    #[test]
    fn ranges_and_cidrs() {
        let h = hosts(&["redis://10.0.0.0/8:6379..6390"]);
        assert!(h.allows("redis://10.200.0.1:6380", "redis"));
        assert!(
            !h.allows("redis://10.200.0.1:6390", "redis"),
            "ranges are half-open"
        );
        assert!(!h.allows("redis://11.0.0.1:6380", "redis"));
    }

    #[test]
    fn invalid_entries_are_errors() {
        for bad in [
            "127.0.0.1:6379",
            "redis://a*b:1",
            "redis://*.a.*:1",
            "foo://host",
            "redis://h:port",
            "redis://h:1/path",
            "1x://h:1",
        ] {
            assert!(
                AllowedHosts::parse(&[bad]).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(AllowedHosts::parse(&["insecure:allow-all"]).is_err());
    }

    #[test]
    fn empty_list_and_bad_addresses_allow_nothing() {
        assert!(!AllowedHosts::default().allows("redis://127.0.0.1:6379", "redis"));
        let h = hosts(&["*://*:*"]);
        assert!(!h.allows("redis://", "redis"));
        assert!(!h.allows("redis://host:99999", "redis"));
    }

    #[test]
    fn ipv6_hosts() {
        let h = hosts(&["redis://[::1]:6379"]);
        assert!(h.allows("redis://[::1]:6379", "redis"));
        assert!(!h.allows("redis://[::2]:6379", "redis"));
    }
}
