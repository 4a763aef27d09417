//! The Redis users of one data directory: a random password per role (and for the operator),
//! made once and kept owner-only beside Redis's data, rendered into Redis's ACL file by the
//! rules in `likes_core::acl` each time Redis starts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use likes_core::acl::{self, Role};

use crate::tools;

/// The passwords of one Redis.
pub struct RedisUsers {
    operator: String,
    roles: Vec<(Role, String)>,
    dir: PathBuf,
}

const PASSWORDS: &str = "redis-passwords";
const ACL_FILE: &str = "users.acl";

impl RedisUsers {
    /// The users kept in `dir`, made (with fresh random passwords) on first use.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(PASSWORDS);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) => {
                let mut text = format!("default {}\n", tools::random_hex(32)?);
                for role in Role::ALL {
                    text.push_str(&format!("{} {}\n", role.user(), tools::random_hex(32)?));
                }
                write_private(&path, &text)?;
                text
            }
        };
        let find = |user: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(user)?.strip_prefix(' '))
                .map(str::to_owned)
                .with_context(|| format!("{} has no password for {user}", path.display()))
        };
        let users = Self {
            operator: find("default")?,
            roles: Role::ALL
                .iter()
                .map(|r| Ok((*r, find(r.user())?)))
                .collect::<anyhow::Result<_>>()?,
            dir: dir.to_path_buf(),
        };
        write_private(
            &users.acl_file(),
            &acl::acl_file(&users.operator, |r| users.password(r).to_owned()),
        )?;
        Ok(users)
    }

    /// The operator's (`default`'s) password: every right, for setting up and inspecting.
    pub fn operator_password(&self) -> &str {
        &self.operator
    }

    /// The ACL file Redis is started with (`--aclfile`).
    pub fn acl_file(&self) -> PathBuf {
        self.dir.join(ACL_FILE)
    }

    fn password(&self, role: Role) -> &str {
        self.roles
            .iter()
            .find(|(r, _)| *r == role)
            .map_or("", |(_, p)| p.as_str())
    }

    /// The URL `role` connects with, for Redis at `host` (`host:port`).
    pub fn url(&self, role: Role, host: &str) -> String {
        acl::url(role.user(), self.password(role), host)
    }

    /// The edge's `redis_user` and `redis_password` variables, as `SPIN_VARIABLE_*` pairs.
    pub fn edge_env(&self) -> [(&'static str, String); 2] {
        [
            ("SPIN_VARIABLE_REDIS_USER", Role::Edge.user().to_owned()),
            (
                "SPIN_VARIABLE_REDIS_PASSWORD",
                self.password(Role::Edge).to_owned(),
            ),
        ]
    }

    /// Where the operator's password is, for the one line `up` prints.
    pub fn passwords_file(&self) -> PathBuf {
        self.dir.join(PASSWORDS)
    }
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
