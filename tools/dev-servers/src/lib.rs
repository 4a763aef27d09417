//! How our throw-away and development servers are launched, written once for the test kit
//! (`testkit`: servers on free ports, killed on drop) and `cargo xtask` (supervised servers
//! with data under `target/`). Each function only builds a [`Command`] or finds a path: who
//! spawns, waits and supervises stays with the caller.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the nearest directory above this crate holding `spin.toml`, so the answer
/// does not depend on how deep a crate sits in the tree.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("spin.toml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// How a Redis server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk: tests that do not restart the server, benchmarks of the scripts alone.
    None,
    /// AOF, fsync'd once a second: the deployment's default (docs/DEPLOY.md).
    AofEverySec,
}

/// `redis-server` on 127.0.0.1:`port` with its files in `dir`, no RDB snapshots, and clients
/// checked against `acl` when given (the roles of `likes_core::acl`).
pub fn redis_command(
    port: u16,
    dir: &Path,
    persistence: Persistence,
    acl: Option<&Path>,
) -> Command {
    let mut c = Command::new("redis-server");
    c.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
    ]);
    match persistence {
        Persistence::None => c.args(["--appendonly", "no"]),
        Persistence::AofEverySec => c.args(["--appendonly", "yes", "--appendfsync", "everysec"]),
    };
    c.arg("--dir").arg(dir);
    if let Some(acl) = acl {
        c.arg("--aclfile").arg(acl);
    }
    c
}

/// [`redis_command`] as one node of a Redis Cluster, its cluster bus on `bus_port` (named
/// explicitly: the default, `port` + 10000, overflows for high free ports). A short node timeout
/// makes failover take seconds, and replicas authenticate to their primary as the operator, since
/// every server enforces the ACL file. Full coverage stays required, so a lost shard is visible.
pub fn redis_cluster_node_command(
    port: u16,
    bus_port: u16,
    dir: &Path,
    persistence: Persistence,
    acl: Option<&Path>,
    operator_password: &str,
) -> Command {
    let mut c = redis_command(port, dir, persistence, acl);
    c.args([
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus_port.to_string(),
        "--cluster-node-timeout",
        "1500",
        "--masteruser",
        "default",
        "--masterauth",
        operator_password,
    ]);
    c
}

/// `redis-cli --cluster create` over `hosts` (`127.0.0.1:port`): the first of them become the
/// primaries, `replicas_per_primary` replicas each from the rest. The operator's password goes in
/// `REDISCLI_AUTH`, which keeps it off the command line and spares the `-a` warning.
pub fn cluster_create_command(
    hosts: &[String],
    replicas_per_primary: u8,
    operator_password: &str,
) -> Command {
    let mut c = Command::new("redis-cli");
    c.env("REDISCLI_AUTH", operator_password)
        .args(["--user", "default", "--cluster", "create"])
        .args(hosts)
        .args([
            "--cluster-replicas",
            &replicas_per_primary.to_string(),
            "--cluster-yes",
        ]);
    c
}

/// Directory of the PostgreSQL server binaries (`initdb`, `postgres`, `createdb`): `PATH` first,
/// else the newest Debian install under /usr/lib/postgresql.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    // PATH may hold only symlinks to some of the binaries (initdb, postgres): follow them to the
    // directory that has all of them (createdb too).
    let complete = |d: &Path| d.join("postgres").is_file() && d.join("createdb").is_file();
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("initdb"))
                .find(|p| p.is_file())
        })
        .and_then(|initdb| std::fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf));
    if let Some(dir) = on_path.filter(|d| complete(d)) {
        return Some(dir);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|d| d.join("initdb").is_file() && complete(d))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
}

/// The `(uid, gid)` PostgreSQL runs as: `None` when we are not root; as root, the `postgres`
/// user (created when missing), since PostgreSQL refuses to run as root.
pub fn postgres_owner() -> Result<Option<(u32, u32)>, String> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return Ok(None);
    }
    if id(&["-u", "postgres"]).is_none() {
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "postgres"])
            .status();
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => Err(
            "running as root, PostgreSQL needs a `postgres` user, and useradd could not create one"
                .to_owned(),
        ),
    }
}

/// Runs `cmd` as `owner` (see [`postgres_owner`]).
pub fn run_as(cmd: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// `initdb` of a new cluster in `data`: superuser `postgres`, trust auth (the server listens on
/// 127.0.0.1 only), UTF-8, C locale; `no_sync` for throw-away clusters.
pub fn initdb_command(
    bin: &Path,
    data: &Path,
    owner: Option<(u32, u32)>,
    no_sync: bool,
) -> Command {
    let mut c = Command::new(bin.join("initdb"));
    c.args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]);
    if no_sync {
        c.arg("--no-sync");
    }
    c.arg("-D").arg(data);
    if let Some(parent) = data.parent() {
        c.current_dir(parent);
    }
    run_as(&mut c, owner);
    c
}

/// `postgres` serving `data` on 127.0.0.1:`port`, its Unix socket in `socket_dir`; `extra` are
/// `-c name=value` settings (e.g. `fsync=off` for tests).
pub fn postgres_command(
    bin: &Path,
    data: &Path,
    socket_dir: &Path,
    port: u16,
    extra: &[&str],
    owner: Option<(u32, u32)>,
) -> Command {
    let mut c = Command::new(bin.join("postgres"));
    c.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"]);
    for setting in extra {
        c.args(["-c", setting]);
    }
    c.arg("-k").arg(socket_dir).current_dir(socket_dir);
    run_as(&mut c, owner);
    c
}

/// `createdb likes` against the server on 127.0.0.1:`port`.
pub fn createdb_command(bin: &Path, port: u16) -> Command {
    let mut c = Command::new(bin.join("createdb"));
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "postgres",
        "likes",
    ]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_workspace_root_holds_the_manifest() {
        assert!(workspace_root().join("spin.toml").is_file());
        assert!(workspace_root().join("Cargo.lock").is_file());
    }

    #[test]
    fn redis_persists_only_when_asked() {
        let dir = Path::new("/tmp/x");
        let volatile = args(&redis_command(7000, dir, Persistence::None, None));
        assert!(volatile.windows(2).any(|w| w == ["--appendonly", "no"]));
        assert!(!volatile.iter().any(|a| a == "--aclfile"));
        let durable = args(&redis_command(
            7000,
            dir,
            Persistence::AofEverySec,
            Some(Path::new("/tmp/x/users.acl")),
        ));
        assert!(durable.windows(2).any(|w| w == ["--appendonly", "yes"]));
        assert!(
            durable
                .windows(2)
                .any(|w| w == ["--appendfsync", "everysec"])
        );
        assert!(
            durable
                .windows(2)
                .any(|w| w == ["--aclfile", "/tmp/x/users.acl"])
        );
        // Never reachable from another machine, whatever the caller adds.
        assert!(durable.windows(2).any(|w| w == ["--bind", "127.0.0.1"]));
    }

    #[test]
    fn cluster_nodes_name_their_bus_and_authenticate_replication() {
        let acl = Path::new("/tmp/x/users.acl");
        let a = args(&redis_cluster_node_command(
            7000,
            17001,
            Path::new("/tmp/x"),
            Persistence::None,
            Some(acl),
            "pw",
        ));
        assert!(a.windows(2).any(|w| w == ["--cluster-enabled", "yes"]));
        assert!(a.windows(2).any(|w| w == ["--cluster-port", "17001"]));
        assert!(a.windows(2).any(|w| w == ["--masteruser", "default"]));
        assert!(a.windows(2).any(|w| w == ["--masterauth", "pw"]));
        assert!(a.windows(2).any(|w| w == ["--aclfile", "/tmp/x/users.acl"]));
        assert!(!a.iter().any(|a| a == "--cluster-require-full-coverage"));
    }

    #[test]
    fn cluster_create_keeps_the_password_off_the_command_line() {
        let hosts = vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()];
        let c = cluster_create_command(&hosts, 1, "pw");
        let a = args(&c);
        assert_eq!(c.get_program(), "redis-cli");
        assert!(!a.iter().any(|a| a == "pw"));
        assert!(
            c.get_envs()
                .any(|(k, v)| k == "REDISCLI_AUTH" && v == Some("pw".as_ref()))
        );
        assert!(a.windows(2).any(|w| w == ["127.0.0.1:1", "127.0.0.1:2"]));
        assert!(a.windows(2).any(|w| w == ["--cluster-replicas", "1"]));
        assert!(a.iter().any(|a| a == "--cluster-yes"));
    }

    #[test]
    fn postgres_settings_follow_the_listen_address() {
        let c = postgres_command(
            Path::new("/pg/bin"),
            Path::new("/d/data"),
            Path::new("/d"),
            5433,
            &["fsync=off"],
            None,
        );
        let a = args(&c);
        assert_eq!(c.get_program(), "/pg/bin/postgres");
        assert!(
            a.windows(2)
                .any(|w| w == ["-c", "listen_addresses=127.0.0.1"])
        );
        assert!(a.windows(2).any(|w| w == ["-c", "fsync=off"]));
        assert!(a.windows(2).any(|w| w == ["-p", "5433"]));
    }
}
