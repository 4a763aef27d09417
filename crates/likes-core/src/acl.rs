//! Least privilege in Redis: each process connects as its own ACL user, allowed only the
//! commands, keys and channels its work needs. Nobody but the operator (Redis's `default` user,
//! with a password) may `FLUSHALL`, `CONFIG`, `KEYS` or `DEBUG`, or read data outside its role.
//!
//! Written once here; `cargo xtask up`, the throw-away stacks and the test kit render the same
//! rules into Redis's ACL file ([`acl_file`]), and every integration test runs each service as
//! its role, so a rule that is missing fails a test rather than a deployment.

/// The commands the scripts in `lua/` call. Scripts run with their caller's permissions, so
/// every role that runs a script needs these (checked against the sources in the tests below).
const SCRIPT_COMMANDS: &[&str] = &[
    "exists",
    "expire",
    "hdel",
    "hexists",
    "hget",
    "hincrby",
    "hkeys",
    "hmget",
    "hset",
    "hvals",
    "incr",
    "lpush",
    "lrange",
    "lrem",
    "ltrim",
    "spublish",
    "ttl",
    "xadd",
    "zadd",
    "zrevrange",
    "zrevrangebyscore",
];

/// What a Redis Cluster client asks of the nodes: whether an address is a cluster node, the slot
/// map, and the `ASK` handshake while a slot moves. Every role may connect to a cluster.
const CLUSTER_COMMANDS: &[&str] = &["cluster|info", "cluster|slots", "cluster|nodes", "asking"];

/// A process's role toward Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The edge components: their scripts, images and sign-in.
    Edge,
    /// The realtime hub: reads counts, subscribes to the event channels. Writes nothing.
    Hub,
    /// The sync daemon: consumes the event streams, copies new images, repairs counts,
    /// rehydrates from PostgreSQL.
    Daemon,
    /// The load generator and the load lab: registers its users with the edge's own sign-in
    /// script and reads counts for the verdict.
    LoadGen,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Edge, Role::Hub, Role::Daemon, Role::LoadGen];

    /// The ACL user name.
    pub fn user(self) -> &'static str {
        match self {
            Role::Edge => "likes-edge",
            Role::Hub => "likes-hub",
            Role::Daemon => "likes-daemon",
            Role::LoadGen => "likes-loadgen",
        }
    }

    /// Key patterns (`~` read-write, `%R~` read-only).
    fn keys(self) -> &'static [&'static str] {
        match self {
            Role::Edge | Role::LoadGen => {
                &["~{s*}:*", "~{users}:*", "~{posts}:*", "~img:*", "~rate:*"]
            }
            Role::Hub => &["%R~{s*}:post:*"],
            // Images: it copies each new one into PostgreSQL, and rehydrate restores them.
            Role::Daemon => &["~{s*}:*", "~{users}:*", "~{posts}:*", "~img:*"],
        }
    }

    /// Pub/Sub channels: every shard's channel of each [`crate::keys::Channel`] kind.
    fn channels(self) -> &'static [&'static str] {
        match self {
            Role::Edge | Role::Hub | Role::LoadGen => &["&{s*}:like_event", "&{s*}:post_event"],
            Role::Daemon => &[],
        }
    }

    /// Commands beyond [`SCRIPT_COMMANDS`] (which every script-running role gets).
    fn commands(self) -> &'static [&'static str] {
        match self {
            // `wait`: a like answered only once a replica has it (`like_durability=replicated`).
            Role::Edge => &["eval", "evalsha", "ping", "get", "wait"],
            Role::Hub => &["hget", "hmget", "ssubscribe", "sunsubscribe", "ping"],
            Role::Daemon => &[
                "eval",
                "evalsha",
                "script|load",
                "script|exists",
                "ping",
                "get",
                "set",
                "del",
                "hgetall",
                "rpush",
                "incrby",
                "watch",
                "unwatch",
                "multi",
                "exec",
                "discard",
                "xreadgroup",
                "xack",
                "xgroup|create",
                "xgroup|setid",
                "xautoclaim",
                "xclaim",
                "xpending",
                "xinfo|stream",
                "xinfo|groups",
                "xrange",
                "xrevrange",
                "xlen",
                "xtrim",
            ],
            Role::LoadGen => &["eval", "evalsha", "script|load", "ping", "get", "incrby"],
        }
    }

    /// Whether the role runs the scripts (and so needs the commands they call).
    fn runs_scripts(self) -> bool {
        !matches!(self, Role::Hub)
    }

    /// The role's rules in `ACL SETUSER` syntax, without the password: everything is denied
    /// first (`resetkeys resetchannels -@all`), then allowed one item at a time.
    pub fn rules(self) -> String {
        let mut rules = vec!["resetkeys", "resetchannels", "-@all"];
        rules.extend(self.keys());
        rules.extend(self.channels());
        let scripts = if self.runs_scripts() {
            SCRIPT_COMMANDS
        } else {
            &[]
        };
        let commands: Vec<String> = scripts
            .iter()
            .chain(self.commands())
            .chain(CLUSTER_COMMANDS)
            .map(|c| format!("+{c}"))
            .collect();
        let mut out = rules.join(" ");
        for c in commands {
            out.push(' ');
            out.push_str(&c);
        }
        out
    }
}

/// Redis's ACL file (`redis-server --aclfile`): the operator as `default` with every right and
/// a password, then one user per role. A password must not contain whitespace (use hex).
pub fn acl_file(operator_password: &str, password: impl Fn(Role) -> String) -> String {
    let mut out = format!("user default on >{operator_password} ~* &* +@all\n");
    for role in Role::ALL {
        out.push_str(&format!(
            "user {} on >{} {}\n",
            role.user(),
            password(role),
            role.rules()
        ));
    }
    out
}

/// `redis://user:password@host:port` for one user.
pub fn url(user: &str, password: &str, host: &str) -> String {
    format!("redis://{user}:{password}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PostId;
    use crate::keys::{self, PostKeys, Shard};

    /// Redis's glob subset the patterns use: `*` only.
    fn glob(pattern: &str, key: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == key,
            Some((head, tail)) => {
                key.starts_with(head)
                    && (0..=key.len() - head.len()).any(|i| glob(tail, &key[head.len() + i..]))
            }
        }
    }

    fn can_write(role: Role, key: &str) -> bool {
        role.keys()
            .iter()
            .filter_map(|p| p.strip_prefix('~'))
            .any(|p| glob(p, key))
    }

    fn can_read(role: Role, key: &str) -> bool {
        can_write(role, key)
            || role
                .keys()
                .iter()
                .filter_map(|p| p.strip_prefix("%R~"))
                .any(|p| glob(p, key))
    }

    fn edge_keys() -> Vec<String> {
        let k = PostKeys::new(PostId::new(12_345).expect("id"));
        let s = Shard::of(PostId::new(12_345).expect("id"));
        vec![
            k.post,
            k.likers,
            k.recent,
            s.stream(),
            s.new_index(),
            s.top(),
            keys::USER_SEQ.into(),
            keys::USER_NAMES.into(),
            keys::USER_STREAM.into(),
            keys::POST_SEQ.into(),
            keys::image_key("abc"),
        ]
    }

    #[test]
    fn every_key_the_scripts_touch_is_the_edges_and_every_stream_the_daemons() {
        for key in edge_keys() {
            assert!(can_write(Role::Edge, &key), "{key}");
            assert!(can_write(Role::LoadGen, &key), "{key}");
        }
        for stream in keys::all_streams() {
            assert!(can_write(Role::Daemon, &stream), "{stream}");
        }
    }

    #[test]
    fn the_hub_reads_post_hashes_only_and_writes_nothing() {
        let post = PostKeys::new(PostId::new(7).expect("id"));
        assert!(can_read(Role::Hub, &post.post));
        for key in edge_keys().into_iter().filter(|k| *k != post.post) {
            assert!(
                !can_read(Role::Hub, &key) || key.contains(":post:"),
                "{key}"
            );
            assert!(!can_write(Role::Hub, &key), "{key}");
        }
    }

    #[test]
    fn channels_are_the_event_channels() {
        for role in [Role::Edge, Role::Hub] {
            let allowed = |name: &str| {
                role.channels()
                    .iter()
                    .any(|p| glob(p.trim_start_matches('&'), name))
            };
            for name in keys::all_channels() {
                assert!(allowed(&name), "{role:?} {name}");
            }
            assert!(!allowed("like_event"), "{role:?}");
            assert!(!allowed("{users}:events"), "{role:?}");
        }
        assert!(Role::Daemon.channels().is_empty());
    }

    #[test]
    fn every_command_a_script_calls_is_allowed_to_the_roles_that_run_scripts() {
        let sources = [
            include_str!("../lua/cardinality.lua"),
            include_str!("../lua/contains.lua"),
            include_str!("../lua/feed.lua"),
            include_str!("../lua/like.lua"),
            include_str!("../lua/likers.lua"),
            include_str!("../lua/post.lua"),
            include_str!("../lua/rate.lua"),
            include_str!("../lua/restore.lua"),
            include_str!("../lua/roaring.lua"),
            include_str!("../lua/session.lua"),
        ];
        let mut called = Vec::new();
        for source in sources {
            for (i, _) in source.match_indices("redis.call(") {
                let rest = &source[i + "redis.call(".len()..];
                let quote = rest.chars().next().expect("an argument");
                assert!(
                    quote == '\'' || quote == '"',
                    "a command name is always a literal: {rest:.40}"
                );
                let name: String = rest[1..].chars().take_while(|c| *c != quote).collect();
                called.push(name.to_ascii_lowercase());
            }
        }
        assert!(called.len() > 20, "found {called:?}");
        for c in called {
            assert!(SCRIPT_COMMANDS.contains(&c.as_str()), "{c} is not allowed");
        }
    }

    #[test]
    fn no_role_may_run_what_only_an_operator_may() {
        for role in Role::ALL {
            let rules = role.rules();
            assert!(rules.contains("-@all"), "{rules}");
            for c in [
                "flushall", "flushdb", "config", "keys", "debug", "acl", "shutdown",
            ] {
                assert!(
                    !rules
                        .split(' ')
                        .any(|r| r == format!("+{c}") || r.starts_with(&format!("+{c}|"))),
                    "{role:?} may {c}"
                );
            }
        }
    }

    #[test]
    fn the_acl_file_has_the_operator_and_one_line_per_role() {
        let file = acl_file("op", |r| format!("pw-{}", r.user()));
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 1 + Role::ALL.len());
        assert!(lines[0].starts_with("user default on >op "));
        assert!(lines[1].starts_with("user likes-edge on >pw-likes-edge resetkeys"));
    }
}
