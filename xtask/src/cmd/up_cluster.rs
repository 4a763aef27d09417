//! `cargo xtask up --cluster`: the system as a cluster on this machine, on the same public ports
//! as `up`. A Redis Cluster of 3 primaries and 3 replicas (127.0.0.1:7001-7006, buses +10000,
//! AOF on, data under target/dev/cluster/node-<port>/, the same ACL users as `up`), PostgreSQL
//! as in `up`, two sync daemons, two realtime hubs and two edge hosts, with HAProxy in front: 127.0.0.1:3000 balances the edges, 127.0.0.1:3001 the hubs. Every process is
//! supervised until Ctrl-C, then stopped in reverse start order (HAProxy first, Redis last).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use dev_servers::Persistence;
use likes_core::acl::Role;

use crate::acl::RedisUsers;
use crate::cluster::{BUS_OFFSET, RedisCluster};
use crate::cmd::up::{self, EDGE_ADDR, HUB_ADDR, POSTGRES_PORT};
use crate::proc::{self, Service};
use crate::tools::root;

/// The cluster's nodes: the first three become the primaries when the cluster is created.
const NODE_PORTS: [u16; 6] = [7001, 7002, 7003, 7004, 7005, 7006];
/// The node every service is given: it finds the rest of the cluster from there.
const SEED: &str = "127.0.0.1:7001";
/// The edge hosts behind HAProxy's :3000: (listen, admin).
const EDGES: [(&str, &str); 2] = [
    ("127.0.0.1:3010", "127.0.0.1:9110"),
    ("127.0.0.1:3011", "127.0.0.1:9111"),
];
/// The realtime hubs behind HAProxy's :3001: (listen, admin).
const HUBS: [(&str, &str); 2] = [
    ("127.0.0.1:3012", "127.0.0.1:9112"),
    ("127.0.0.1:3013", "127.0.0.1:9113"),
];
/// The sync daemons' admin listeners (`/metrics`, `/healthz`).
const SYNC_ADMINS: [&str; 2] = ["127.0.0.1:3014", "127.0.0.1:3015"];
/// HAProxy's statistics page: private, on loopback only.
const HAPROXY_STATS: &str = "127.0.0.1:9190";
const CLUSTER_DIR: &str = "target/dev/cluster";

/// Starts everything (see the module's documentation) and supervises it until `stop`.
pub fn run(
    haproxy: &Path,
    pg_bin: &Path,
    users: &RedisUsers,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    ensure_ports_free()?;
    // Thousands of sockets through HAProxy need as many fds there and in the hubs.
    crate::stack::raise_fd_limit(1 << 20);
    let operator = users.operator_password().to_owned();
    let mut system = System::default();
    let stopped = || stop.load(Ordering::SeqCst);

    // Redis Cluster: every node first, then `--cluster create` when none has joined one yet.
    let mut cluster = RedisCluster::start(
        &NODE_PORTS,
        1,
        &root().join(CLUSTER_DIR),
        &users.acl_file(),
        &operator,
        Persistence::AofEverySec,
        &stopped,
    )?;
    let roles = cluster.roles();
    for ((svc, &port), role) in std::mem::take(&mut cluster.services)
        .into_iter()
        .zip(&NODE_PORTS)
        .zip(roles)
    {
        system.add(
            svc,
            &role,
            format!("127.0.0.1:{port} (bus {})", port + BUS_OFFSET),
        );
    }
    if stopped() {
        return Ok(());
    }

    let (postgres, database_url) = up::start_postgres(pg_bin)?;
    system.add(postgres, "postgresql", format!("127.0.0.1:{POSTGRES_PORT}"));
    for (i, admin) in SYNC_ADMINS.into_iter().enumerate() {
        let name = format!("sync-daemon-{}", i + 1);
        let svc = up::sync_daemon(
            &name,
            &name,
            users.url(Role::Daemon, SEED),
            &database_url,
            admin,
        )?;
        system.add(svc, &name, format!("admin {admin}"));
    }
    for (i, (listen, admin)) in HUBS.into_iter().enumerate() {
        let name = format!("realtime-hub-{}", i + 1);
        let svc = up::realtime_hub(&name, listen, admin, users.url(Role::Hub, SEED))?;
        system.add(svc, &name, format!("{listen} (admin {admin})"));
    }
    // The load lab is left out: its runs register users and read counts with a plain Redis
    // client, which a cluster answers with MOVED for every slot the seed does not serve.
    let mut variables = up::edge_variables(up::dev_session_secret()?, SEED, None, users);
    // The edges see HAProxy's address; it names the client in X-Forwarded-For (`option
    // forwardfor`), which the per-address limits believe from this proxy only.
    variables.push(("SPIN_VARIABLE_TRUSTED_PROXIES".into(), "127.0.0.1".into()));
    for (i, (listen, admin)) in EDGES.into_iter().enumerate() {
        let name = format!("edge-host-{}", i + 1);
        let svc = up::edge_host(&name, listen, admin, variables.clone())?;
        system.add(svc, &name, format!("{listen} (admin {admin})"));
    }
    // Both edges compile the components before they answer, on the same cores: allow for it.
    for (listen, _) in EDGES {
        proc::wait_for_http(listen, "/api/health", Duration::from_secs(300))?;
    }
    for (listen, _) in HUBS {
        proc::wait_for_http(listen, "/healthz", Duration::from_secs(30))?;
    }
    if stopped() {
        return Ok(());
    }

    let config = root().join(CLUSTER_DIR).join("haproxy.cfg");
    let front = Haproxy {
        writer: "cargo xtask up --cluster",
        edge: EDGE_ADDR,
        hub: HUB_ADDR,
        stats: HAPROXY_STATS,
        edges: EDGES
            .iter()
            .map(|(listen, _)| (*listen).to_owned())
            .collect(),
        hubs: HUBS
            .iter()
            .map(|(listen, _)| (*listen).to_owned())
            .collect(),
    };
    for svc in start_haproxy(haproxy, &config, &front, 1)? {
        system.add(
            svc,
            "haproxy",
            format!("{EDGE_ADDR} → edges, {HUB_ADDR} → hubs (stats {HAPROXY_STATS})"),
        );
    }
    proc::wait_for_http(EDGE_ADDR, "/api/health", Duration::from_secs(30))
        .and_then(|()| proc::wait_for_http(HUB_ADDR, "/healthz", Duration::from_secs(30)))
        .context("through HAProxy (its messages, if any, are above)")?;

    system.print();
    println!(
        "  the app      http://{EDGE_ADDR}/  (HAProxy: edges round robin, hubs by client address)"
    );
    println!(
        "  redis        any node, e.g. redis-cli -c -p 7001 --user default --pass \
         \"$(awk '/^default /{{print $2}}' {})\" cluster info  (data in {CLUSTER_DIR})",
        users.passwords_file().display()
    );
    println!("  postgresql   {database_url}  (data in target/dev/postgres)");
    println!(
        "  haproxy      {} (stats on http://{HAPROXY_STATS}/)",
        config.display()
    );
    println!(
        "  load lab     off: the load generator has no Redis Cluster client yet (`cargo xtask up` has the lab)"
    );
    println!("  Ctrl-C stops everything.");
    println!();

    up::supervise_until_stopped(std::mem::take(&mut system.services), stop)
}

/// The supervised processes in start order, with what the topology says about each.
#[derive(Default)]
struct System {
    services: Vec<Service>,
    /// (role, address) of each service, by index.
    rows: Vec<(String, String)>,
}

impl System {
    fn add(&mut self, svc: Service, role: &str, address: impl Into<String>) {
        self.services.push(svc);
        self.rows.push((role.to_owned(), address.into()));
    }

    fn print(&self) {
        println!();
        println!("  {:<24} {:<58} pid", "role", "address");
        for (svc, (role, address)) in self.services.iter().zip(&self.rows) {
            println!("  {role:<24} {address:<58} {}", svc.pid());
        }
        println!();
    }
}

impl Drop for System {
    /// A start that failed half-way stops what it started, the last first.
    fn drop(&mut self) {
        while let Some(mut s) = self.services.pop() {
            s.stop(Duration::from_secs(15));
        }
    }
}

/// Fails, before anything starts, when one of the fixed ports is taken (another `up`?).
fn ensure_ports_free() -> anyhow::Result<()> {
    let fixed = [EDGE_ADDR, HUB_ADDR, HAPROXY_STATS]
        .into_iter()
        .map(str::to_owned)
        .chain(
            EDGES
                .iter()
                .chain(&HUBS)
                .flat_map(|(a, b)| [a.to_string(), b.to_string()]),
        )
        .chain(SYNC_ADMINS.iter().map(|a| a.to_string()))
        .chain(std::iter::once(format!("127.0.0.1:{POSTGRES_PORT}")))
        .chain(
            NODE_PORTS
                .iter()
                .flat_map(|p| [*p, p + BUS_OFFSET])
                .map(|p| format!("127.0.0.1:{p}")),
        );
    for addr in fixed {
        if TcpListener::bind(&addr).is_err() {
            bail!("{addr} is taken: is another `cargo xtask up` running?");
        }
    }
    Ok(())
}

/// HAProxy in front of the edges and the hubs: where it listens and what it balances.
pub struct Haproxy<'a> {
    /// Who writes the file, for its first line.
    pub writer: &'a str,
    pub edge: &'a str,
    pub hub: &'a str,
    pub stats: &'a str,
    pub edges: Vec<String>,
    pub hubs: Vec<String>,
}

/// Writes `front`'s configuration to `config`, has HAProxy check it, and starts `processes`
/// HAProxy processes on it (named `haproxy`, or `haproxy-<n>` when several): they share each port
/// through `SO_REUSEPORT`, so the connections of one are spread over several open-file limits.
pub fn start_haproxy(
    haproxy: &Path,
    config: &Path,
    front: &Haproxy<'_>,
    processes: usize,
) -> anyhow::Result<Vec<Service>> {
    std::fs::write(config, haproxy_config(front))
        .with_context(|| format!("writing {}", config.display()))?;
    let check = Command::new(haproxy)
        .args(["-c", "-q", "-f"])
        .arg(config)
        .output()
        .context("running haproxy -c")?;
    if !check.status.success() {
        bail!(
            "haproxy rejects {}: {}{}",
            config.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    (1..=processes)
        .map(|n| {
            let name = if processes == 1 {
                "haproxy".to_owned()
            } else {
                format!("haproxy-{n}")
            };
            let (haproxy, config) = (haproxy.to_path_buf(), config.to_path_buf());
            Service::start(&name, move || {
                let mut c = Command::new(&haproxy);
                c.arg("-f").arg(&config).arg("-db");
                c
            })
        })
        .collect()
}

/// HAProxy's configuration: the edges behind `front.edge`, the hubs behind `front.hub`.
fn haproxy_config(front: &Haproxy<'_>) -> String {
    let servers = |prefix: &str, listens: &[String]| -> String {
        listens
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("    server {prefix}-{} {addr} check\n", i + 1))
            .collect()
    };
    let edges = servers("edge", &front.edges);
    let hubs = servers("hub", &front.hubs);
    let (writer, edge_addr, hub_addr, stats) = (front.writer, front.edge, front.hub, front.stats);
    format!(
        "# Written by `{writer}` at each start: edits are overwritten.
global
    # No maxconn: HAProxy sizes it by the open-file limit it inherits.

defaults
    mode http
    timeout connect 5s
    # An Engine.IO long-poll is held for up to the hub's ping interval (25 s).
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    # An upgraded connection (a WebSocket) lives as long as its client keeps it.
    timeout tunnel 1h
    # A server is out after two failed checks (the edge logs each check it answers); meanwhile
    # a connection it refuses is retried on the other one.
    default-server inter 5s fall 2 rise 2
    retries 2
    option redispatch

frontend edge
    bind {edge_addr}
    # The client's address for the edge, which will trust it from this proxy only.
    option forwardfor
    default_backend edges

backend edges
    balance roundrobin
    option httpchk
    http-check send meth GET uri /api/health ver HTTP/1.1 hdr Host {edge_addr}
    http-check expect status 200
{edges}
frontend hub
    bind {hub_addr}
    # A WebSocket opened straight away (no Engine.IO session yet) is one connection: any hub
    # will do, the least busy.
    use_backend hubs-websocket if {{ url_param(transport) -m str websocket }} !{{ url_param(sid) -m found }}
    # Long-polling, and its upgrade to a WebSocket, must reach the hub holding the session: by
    # client address, since browsers send the hub (another origin) no cookie.
    default_backend hubs

backend hubs
    balance source
    hash-type consistent
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host {hub_addr}
    http-check expect status 200
{hubs}
backend hubs-websocket
    balance leastconn
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host {hub_addr}
    http-check expect status 200
{hubs}
listen stats
    bind {stats}
    stats enable
    stats uri /
    stats refresh 5s
"
    )
}
