//! The HTTP route table: Spin's route syntax, precedence and `spin-*` request headers.
//!
//! Routes are exact (`/a/b`), with `:name` segments (`/posts/:id`), or end in a `/...` (or `/*`)
//! wildcard. Among the routes matching a path the most specific wins, as Spin's `routefinder`
//! decides: compare segment by segment, exact before `:param` before wildcard; if all shared
//! segments tie, the route with fewer segments wins. Private routes are never reachable.

use http::{HeaderName, HeaderValue};

use crate::manifest::RouteConfig;

/// A route could not be added to the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// `route = { private = false }`.
    #[error(
        "route must be a string pattern or '{{ private = true }}': component {0:?} has {{ private = false }}"
    )]
    NotPrivate(String),
    /// A pattern the table cannot represent.
    #[error("error parsing route {route:?} associated with component {component:?}: {reason}")]
    Invalid {
        /// The route as written.
        route: String,
        /// The component it points at.
        component: String,
        /// Why it is invalid.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Exact(String),
    /// A `:name` capture and its `spin-path-match-<name>` header, named once when the route is
    /// parsed rather than on every request (`None` for a name no header can carry, which Spin
    /// drops too).
    Param {
        name: String,
        header: Option<HeaderName>,
    },
}

/// One routable entry.
#[derive(Debug, Clone)]
struct Route {
    component: String,
    /// The route as written in the manifest.
    raw: String,
    /// The route after Spin's normalisation (leading `/`, no trailing `/`), base `/`.
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

impl Route {
    /// Specificity kinds per segment group: 0 exact, 1 param, 2 wildcard.
    fn kinds(&self) -> impl Iterator<Item = u8> + '_ {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Exact(_) => 0,
                Segment::Param { .. } => 1,
            })
            .chain(self.wildcard.then_some(2))
    }

    fn group_count(&self) -> usize {
        self.segments.len() + usize::from(self.wildcard)
    }

    /// Orders by specificity: `Less` means `self` is the better match.
    fn specificity_cmp(&self, other: &Route) -> std::cmp::Ordering {
        for (a, b) in self.kinds().zip(other.kinds()) {
            if a != b {
                return a.cmp(&b);
            }
        }
        self.group_count().cmp(&other.group_count())
    }
}

/// The result of routing a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The component to run.
    pub component: &'a str,
    /// The route as written in the manifest (`spin-raw-component-route`).
    pub raw_route: &'a str,
    /// The normalised route (`spin-matched-route`).
    pub based_route: &'a str,
    /// The path after the wildcard prefix (`spin-path-info`), `""` for exact routes.
    pub path_info: String,
    /// `:name` captures, in route order (`spin-path-match-<name>`).
    pub params: Vec<(&'a str, String)>,
    /// The header of each capture, in the same order.
    param_headers: Vec<Option<&'a HeaderName>>,
}

impl RouteMatch<'_> {
    /// The raw route without a trailing `/...` (`spin-component-route`).
    pub fn raw_route_or_prefix(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(self.raw_route)
    }

    /// The headers Spin adds for every route, as (lowercase name, value) pairs.
    fn fixed_headers<'s>(
        &'s self,
        full_url: &'s str,
        client_addr: &'s str,
    ) -> [(&'static str, &'s str); 7] {
        [
            ("spin-path-info", &self.path_info),
            ("spin-full-url", full_url),
            ("spin-matched-route", self.based_route),
            ("spin-base-path", "/"),
            ("spin-raw-component-route", self.raw_route),
            ("spin-component-route", self.raw_route_or_prefix()),
            ("spin-client-addr", client_addr),
        ]
    }

    /// Inserts the Spin headers into `map`, replacing any the client sent under the same names.
    ///
    /// This runs on every request, so the fixed names are static rather than parsed.
    pub fn apply_headers(&self, map: &mut http::HeaderMap, full_url: &str, client_addr: &str) {
        for (name, value) in self.fixed_headers(full_url, client_addr) {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.insert(http::HeaderName::from_static(name), value);
            }
        }
        for (name, (_, value)) in self.param_headers.iter().zip(&self.params) {
            if let (Some(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
                map.insert((*name).clone(), value);
            }
        }
    }
}

/// The route table of an application.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the table from `(component id, route)` pairs in manifest order.
    ///
    /// Private routes are dropped; a later duplicate of the same route replaces the earlier one
    /// (Spin's "last one wins", logged as a warning).
    pub fn build<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a RouteConfig)>,
    ) -> Result<Self, RouteError> {
        let mut routes: Vec<Route> = Vec::new();
        for (component, config) in entries {
            let raw = match config {
                RouteConfig::Route(raw) => raw,
                RouteConfig::Private(p) if p.private => continue,
                RouteConfig::Private(_) => {
                    return Err(RouteError::NotPrivate(component.to_owned()));
                }
            };
            let route = parse_route(component, raw)?;
            if let Some(existing) = routes.iter_mut().find(|r| r.raw == route.raw) {
                tracing::warn!(
                    route = %route.raw,
                    replaced = %existing.component,
                    effective = %route.component,
                    "duplicate route: the earlier one will never be used"
                );
                *existing = route;
            } else {
                routes.push(route);
            }
        }
        Ok(Self { routes })
    }

    /// The most specific route matching `path` (no query string), if any.
    ///
    /// The path is split once and only the winning route builds its captures, since this
    /// runs on every request.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        // As Spin's router (routefinder) does: every leading and trailing `/` goes, while an
        // inner `//` is an empty segment that a `:name` may capture.
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let best = self
            .routes
            .iter()
            .filter(|route| matches(route, &parts))
            .reduce(|best, route| {
                if route.specificity_cmp(best).is_lt() {
                    route
                } else {
                    best
                }
            })?;
        Some(captures(best, path, &parts))
    }

    /// `(route, component)` pairs, for the startup log.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes
            .iter()
            .map(|r| (r.raw.as_str(), r.component.as_str()))
    }
}

/// Applies Spin's normalisation: absolute, one trailing `/` stripped, base `/`.
fn normalise(raw: &str) -> String {
    let absolute = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    };
    absolute
        .strip_suffix('/')
        .map(str::to_owned)
        .unwrap_or(absolute)
}

fn parse_route(component: &str, raw: &str) -> Result<Route, RouteError> {
    let invalid = |reason: &str| RouteError::Invalid {
        route: raw.to_owned(),
        component: component.to_owned(),
        reason: reason.to_owned(),
    };
    let based = normalise(raw);
    let (prefix, wildcard) = match based
        .strip_suffix("/...")
        .or_else(|| based.strip_suffix("/*"))
    {
        Some(prefix) => (prefix, true),
        None => (based.as_str(), false),
    };
    let mut segments = Vec::new();
    for segment in prefix.split('/').skip(1) {
        if segment.is_empty() {
            return Err(invalid("empty path segment"));
        }
        if segment == "..." || segment == "*" {
            return Err(invalid("a wildcard may only end a route"));
        }
        match segment.strip_prefix(':') {
            Some("") => return Err(invalid("a ':' parameter needs a name")),
            Some(name) => segments.push(Segment::Param {
                name: name.to_owned(),
                header: param_header(name).ok(),
            }),
            None => segments.push(Segment::Exact(segment.to_owned())),
        }
    }
    Ok(Route {
        component: component.to_owned(),
        raw: raw.to_owned(),
        based,
        segments,
        wildcard,
    })
}

/// The `spin-path-match-<name>` header of a `:name` capture, named as Spin names it (lower
/// case, `_` as `-`: `:user_id` is `spin-path-match-user-id`).
fn param_header(name: &str) -> Result<HeaderName, http::header::InvalidHeaderName> {
    HeaderName::try_from(format!(
        "spin-path-match-{}",
        name.to_ascii_lowercase().replace('_', "-")
    ))
}

/// True when `route` matches a path split into `parts` (no slashes; an empty part is an inner
/// `//`, which only a `:name` capture or a wildcard tail takes, as in Spin).
fn matches(route: &Route, parts: &[&str]) -> bool {
    if parts.len() < route.segments.len()
        || (!route.wildcard && parts.len() != route.segments.len())
    {
        return false;
    }
    route
        .segments
        .iter()
        .zip(parts)
        .all(|(segment, part)| match segment {
            Segment::Exact(text) => text == part,
            Segment::Param { .. } => true,
        })
}

/// The match of `route`, which [`matches`] `parts` (the split `path`): its captures and the
/// path after its wildcard.
fn captures<'a>(route: &'a Route, path: &str, parts: &[&str]) -> RouteMatch<'a> {
    let (params, param_headers) = route
        .segments
        .iter()
        .zip(parts)
        .filter_map(|(segment, part)| match segment {
            Segment::Param { name, header } => {
                Some(((name.as_str(), (*part).to_owned()), header.as_ref()))
            }
            Segment::Exact(_) => None,
        })
        .unzip();
    let path_info = if route.wildcard {
        // Spin's `trailing_wildcard`: the rest of the trimmed path, with a `/` after it when
        // the request's path ended in one.
        let rest = parts[route.segments.len()..].join("/");
        match (rest.is_empty(), path.ends_with('/')) {
            (true, false) => String::new(),
            (true, true) => "/".to_owned(),
            (false, false) => format!("/{rest}"),
            (false, true) => format!("/{rest}/"),
        }
    } else {
        String::new()
    };
    RouteMatch {
        component: &route.component,
        raw_route: &route.raw,
        based_route: &route.based,
        path_info,
        params,
        param_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::PrivateEndpoint;

    fn router(entries: &[(&str, &str)]) -> Router {
        let configs: Vec<(String, RouteConfig)> = entries
            .iter()
            .map(|(c, r)| ((*c).to_owned(), RouteConfig::Route((*r).to_owned())))
            .collect();
        Router::build(configs.iter().map(|(c, r)| (c.as_str(), r))).expect("valid routes")
    }

    fn component<'a>(r: &'a Router, path: &str) -> Option<&'a str> {
        r.route(path).map(|m| m.component)
    }

    #[test]
    fn exact_routes() {
        let r = router(&[("foo", "/foo"), ("foobar", "/foo/bar")]);
        assert_eq!(component(&r, "/foo"), Some("foo"));
        assert_eq!(
            component(&r, "/foo/"),
            Some("foo"),
            "a trailing slash still matches"
        );
        assert_eq!(component(&r, "/foo/bar"), Some("foobar"));
        assert_eq!(component(&r, "/foo/baz"), None);
        assert_eq!(component(&r, "/fo"), None);
        assert_eq!(component(&r, "/"), None);
    }

    #[test]
    fn root_route_matches_only_root() {
        let r = router(&[("root", "/")]);
        assert_eq!(component(&r, "/"), Some("root"));
        assert_eq!(component(&r, "/x"), None);
    }

    #[test]
    fn wildcards_capture_path_info_like_spin() {
        let r = router(&[("all", "/...")]);
        assert_eq!(
            r.route("/1/2/3").map(|m| m.path_info),
            Some("/1/2/3".to_owned())
        );
        assert_eq!(r.route("/").map(|m| m.path_info), Some("/".to_owned()));

        let r = router(&[("test", "/test/...")]);
        let info = |p: &str| r.route(p).map(|m| m.path_info);
        assert_eq!(info("/test"), Some(String::new()));
        assert_eq!(info("/test/"), Some("/".to_owned()));
        assert_eq!(info("/test/hello"), Some("/hello".to_owned()));
        assert_eq!(info("/test/hello/"), Some("/hello/".to_owned()));
        assert_eq!(info("/testing"), None, "wildcards match whole segments");
    }

    #[test]
    fn longest_wildcard_prefix_wins_regardless_of_order() {
        for order in [
            [
                ("one", "/one/..."),
                ("onetwo", "/one/two/..."),
                ("three", "/one/two/three/..."),
            ],
            [
                ("three", "/one/two/three/..."),
                ("onetwo", "/one/two/..."),
                ("one", "/one/..."),
            ],
        ] {
            let r = router(&order);
            assert_eq!(component(&r, "/one/two/three/four"), Some("three"));
            assert_eq!(component(&r, "/one/two/x"), Some("onetwo"));
            assert_eq!(component(&r, "/one/x"), Some("one"));
        }
    }

    #[test]
    fn exact_beats_param_beats_wildcard() {
        let r = router(&[
            ("wild", "/..."),
            ("param", "/posts/:id"),
            ("exact", "/posts/new"),
            ("param-wild", "/posts/:id/..."),
        ]);
        assert_eq!(component(&r, "/posts/new"), Some("exact"));
        assert_eq!(
            component(&r, "/posts/42"),
            Some("param"),
            "fewer segments beat a wildcard tail"
        );
        assert_eq!(component(&r, "/posts/42/likes"), Some("param-wild"));
        assert_eq!(component(&r, "/other"), Some("wild"));
    }

    #[test]
    fn named_parameters_are_captured() {
        let r = router(&[("likes", "/api/posts/:id/like"), ("user", "/1/:two/...")]);
        let m = r.route("/api/posts/p_42/like").expect("match");
        assert_eq!(m.component, "likes");
        assert_eq!(m.params, vec![("id", "p_42".to_owned())]);
        let m = r
            .route("/api/posts//like")
            .expect("Spin binds an empty segment");
        assert_eq!(m.params, vec![("id", String::new())]);
        let m = r.route("/1/2/3").expect("match");
        assert_eq!(m.params, vec![("two", "2".to_owned())]);
        assert_eq!(m.path_info, "/3");
    }

    /// What Spin 4.0.2's router gives for the same paths (routefinder trims every leading and
    /// trailing slash).
    #[test]
    fn repeated_slashes_route_as_in_spin() {
        let r = router(&[
            ("posts", "/api/posts"),
            ("feed", "/api/posts/:id"),
            ("likes", "/api/posts/:id/like"),
            ("static", "/..."),
        ]);
        assert_eq!(component(&r, "/api/posts//"), Some("posts"));
        assert_eq!(component(&r, "/api/posts/x//"), Some("feed"));
        assert_eq!(component(&r, "//api/posts"), Some("posts"));
        let m = r.route("//api//posts").expect("the wildcard");
        assert_eq!(
            (m.component, m.path_info.as_str()),
            ("static", "/api//posts")
        );
        assert_eq!(
            r.route("///x///").map(|m| m.path_info),
            Some("/x/".to_owned())
        );
        let r = router(&[("test", "/test/...")]);
        assert_eq!(
            r.route("/test/hello//").map(|m| m.path_info),
            Some("/hello/".to_owned())
        );
    }

    #[test]
    fn private_routes_are_unreachable_and_private_false_is_an_error() {
        let private = RouteConfig::Private(PrivateEndpoint { private: true });
        let public = RouteConfig::Route("/x".to_owned());
        let r = Router::build([("hidden", &private), ("x", &public)]).expect("valid");
        assert_eq!(r.routes().count(), 1);
        assert_eq!(component(&r, "/x"), Some("x"));

        let not_private = RouteConfig::Private(PrivateEndpoint { private: false });
        assert!(matches!(
            Router::build([("bad", &not_private)]),
            Err(RouteError::NotPrivate(_))
        ));
    }

    #[test]
    fn duplicate_routes_last_one_wins() {
        let r = router(&[("first", "/foo"), ("second", "/foo")]);
        assert_eq!(r.routes().count(), 1);
        assert_eq!(component(&r, "/foo"), Some("second"));
    }

    #[test]
    fn invalid_routes_are_rejected() {
        let bad = RouteConfig::Route("/a/.../b".to_owned());
        assert!(Router::build([("c", &bad)]).is_err());
        let bad = RouteConfig::Route("/a/:/b".to_owned());
        assert!(Router::build([("c", &bad)]).is_err());
    }

    /// The headers `m` adds to a request that had none.
    fn spin_headers(m: &RouteMatch<'_>, full_url: &str, client_addr: &str) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        m.apply_headers(&mut map, full_url, client_addr);
        map
    }

    #[test]
    fn spin_headers_match_spin() {
        let r = router(&[("dummy", "/foo/...")]);
        let m = r.route("/foo/bar").expect("match");
        let headers = spin_headers(
            &m,
            "https://fermyon.dev/foo/bar?key1=value1",
            "127.0.0.1:8777",
        );
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(
            get("spin-full-url"),
            Some("https://fermyon.dev/foo/bar?key1=value1")
        );
        assert_eq!(get("spin-path-info"), Some("/bar"));
        assert_eq!(get("spin-matched-route"), Some("/foo/..."));
        assert_eq!(get("spin-base-path"), Some("/"));
        assert_eq!(get("spin-raw-component-route"), Some("/foo/..."));
        assert_eq!(get("spin-component-route"), Some("/foo"));
        assert_eq!(get("spin-client-addr"), Some("127.0.0.1:8777"));

        let r = router(&[("dummy", "/foo/:userid/..."), ("under", "/u/:user_id")]);
        let m = r.route("/u/7").expect("match");
        let headers = spin_headers(&m, "http://h/u/7", "127.0.0.1:1");
        assert_eq!(
            headers.get("spin-path-match-user-id").map(|v| v.as_bytes()),
            Some(&b"7"[..]),
            "Spin writes `_` in a capture's name as `-`"
        );
        let m = r.route("/foo/42/bar").expect("match");
        let headers = spin_headers(&m, "http://h/foo/42/bar", "127.0.0.1:1");
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(get("spin-path-match-userid"), Some("42"));
        assert_eq!(get("spin-path-info"), Some("/bar"));
        assert_eq!(get("spin-component-route"), Some("/foo/:userid"));

        let mut map = http::HeaderMap::new();
        map.insert("spin-path-info", HeaderValue::from_static("/spoofed"));
        m.apply_headers(&mut map, "http://h/foo/42/bar", "127.0.0.1:1");
        assert_eq!(
            map.get("spin-path-info").map(|v| v.as_bytes()),
            Some(&b"/bar"[..])
        );
    }
}
