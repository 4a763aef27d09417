//! A Redis Cluster of real `redis-server` processes for the commands that run one: `up --cluster`
//! on fixed ports, `load --cluster` and the benchmarks on free ones. Each node's data is in
//! `<dir>/node-<port>/`; the cluster is created with `redis-cli --cluster create` unless every
//! node already belongs to it (a restarted `up --cluster` keeps its data).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dev_servers::Persistence;

use crate::proc::{self, Service};

/// A node's cluster bus is on its port + this.
pub const BUS_OFFSET: u16 = 10_000;

/// A running cluster. Its nodes stop, the last first, when it is dropped.
pub struct RedisCluster {
    /// One per node, in the order of `ports`.
    pub services: Vec<Service>,
    pub ports: Vec<u16>,
    operator: String,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts a node on each of `ports` (the first `ports.len() / (replicas + 1)` become the
    /// primaries of a new cluster), all under `dir`, enforcing `acl`; `operator` is the
    /// `default` user's password, which nodes also use to replicate. Waits for `cluster_state:ok`
    /// on every node (or for `stopped`).
    pub fn start(
        ports: &[u16],
        replicas: u8,
        dir: &Path,
        acl: &Path,
        operator: &str,
        persistence: Persistence,
        stopped: &dyn Fn() -> bool,
    ) -> anyhow::Result<Self> {
        let dirs: Vec<PathBuf> = ports
            .iter()
            .map(|port| dir.join(format!("node-{port}")))
            .collect();
        let joined: Vec<bool> = dirs.iter().map(|d| has_joined(d)).collect();
        if joined.iter().any(|j| *j) && !joined.iter().all(|j| *j) {
            bail!(
                "some nodes under {} belong to a cluster and others do not (a node's directory \
                 was removed, or a creation failed): remove it to start with an empty cluster \
                 (its data goes with it)",
                dir.display()
            );
        }
        let mut cluster = Self {
            services: Vec::new(),
            ports: ports.to_vec(),
            operator: operator.to_owned(),
            dir: dir.to_path_buf(),
        };
        for (&port, node_dir) in ports.iter().zip(&dirs) {
            cluster
                .services
                .push(node(port, node_dir, acl, operator, persistence)?);
        }
        for &port in ports {
            proc::wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(10))?;
        }
        if joined.iter().all(|j| *j) {
            eprintln!(
                "[xtask] Redis Cluster exists in {}: starting its nodes",
                dir.display()
            );
        } else {
            let hosts = cluster.hosts();
            eprintln!(
                "[xtask] creating a Redis Cluster ({} nodes, {replicas} replica(s) per primary)",
                hosts.len()
            );
            let out = dev_servers::cluster_create_command(&hosts, replicas, operator)
                .output()
                .context("running redis-cli --cluster create")?;
            if !out.status.success() {
                bail!(
                    "redis-cli --cluster create failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        cluster.wait_ok(Duration::from_secs(60), stopped)?;
        Ok(cluster)
    }

    /// `127.0.0.1:<port>` of every node.
    pub fn hosts(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// The node services should be given: they find the rest of the cluster from it.
    pub fn seed(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    /// Waits until every node says `cluster_state:ok`.
    pub fn wait_ok(&self, timeout: Duration, stopped: &dyn Fn() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let states: Vec<(u16, String)> = self
                .ports
                .iter()
                .map(|&port| {
                    let info = self.cli(port, &["cluster", "info"]).unwrap_or_default();
                    let state = field(&info, "cluster_state").unwrap_or("?").to_owned();
                    (port, state)
                })
                .collect();
            if states.iter().all(|(_, state)| state == "ok") || stopped() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let states: Vec<String> = states.iter().map(|(p, s)| format!("{p}: {s}")).collect();
                bail!(
                    "the Redis Cluster is not ok after {timeout:?} (cluster_state of each node: \
                     {}); see {}/node-*/redis.log",
                    states.join(", "),
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Each node's role as the node says now: `redis primary` or `redis replica of :<port>`.
    pub fn roles(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|&port| {
                let info = self.cli(port, &["info", "replication"]).unwrap_or_default();
                match (field(&info, "role"), field(&info, "master_port")) {
                    (Some("master"), _) => "redis primary".to_owned(),
                    (Some("slave"), Some(primary)) => format!("redis replica of :{primary}"),
                    _ => "redis node".to_owned(),
                }
            })
            .collect()
    }

    /// `redis-cli` at node `port` as the operator (password in the environment, not the
    /// arguments); its standard output.
    pub fn cli(&self, port: u16, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("redis-cli")
            .env("REDISCLI_AUTH", &self.operator)
            .args(["-p", &port.to_string(), "--user", "default"])
            .args(args)
            .output()
            .context("running redis-cli")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        while let Some(mut s) = self.services.pop() {
            s.stop(Duration::from_secs(15));
        }
    }
}

/// `n` free ports whose cluster bus ports (+[`BUS_OFFSET`]) are free too; every listener is held
/// until all are picked.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n * 50 {
        if ports.len() == n {
            break;
        }
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        held.push(l);
        let Some(bus) = port.checked_add(BUS_OFFSET) else {
            continue;
        };
        if let Ok(b) = TcpListener::bind(("127.0.0.1", bus)) {
            held.push(b);
            ports.push(port);
        }
    }
    anyhow::ensure!(
        ports.len() == n,
        "found only {} of {n} free port pairs",
        ports.len()
    );
    Ok(ports)
}

/// One cluster node on `port` (bus `port` + [`BUS_OFFSET`]), its data in `dir`.
fn node(
    port: u16,
    dir: &Path,
    acl: &Path,
    operator: &str,
    persistence: Persistence,
) -> anyhow::Result<Service> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (dir, acl, operator) = (dir.to_path_buf(), acl.to_path_buf(), operator.to_owned());
    Service::start(&format!("redis-{port}"), move || {
        let mut c = dev_servers::redis_cluster_node_command(
            port,
            port + BUS_OFFSET,
            &dir,
            persistence,
            Some(&acl),
            &operator,
        );
        c.args(["--protected-mode", "no", "--logfile", "redis.log"]);
        c
    })
}

/// Whether the node whose data is in `dir` has joined a cluster: its `nodes.conf` knows other
/// nodes (a node that never joined one lists itself alone).
fn has_joined(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("nodes.conf"))
        .map(|text| {
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("vars "))
                .count()
                > 1
        })
        .unwrap_or(false)
}

/// A `name:value` field of an `INFO`-style reply.
pub fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}
