//! A real Redis Cluster for integration tests: every node is a `redis-server` on free ports, with
//! its own temporary directory and the roles' ACL file, joined by `redis-cli --cluster create`
//! and killed on drop. Tests kill, restart and wipe nodes to see how the code under test rides a
//! failover.

use std::process::Child;
use std::time::{Duration, Instant};

use dev_servers::Persistence;

use crate::{
    OPERATOR_PASSWORD, Role, free_port, role_password, spawn_redis_server, wait_listening,
    wait_pong, write_acl,
};

/// How long the cluster may take to agree again after a change (creation, a node rejoining).
const SETTLE: Duration = Duration::from_secs(30);

/// Every node's arguments beyond the deployment's: a full resync starts at once instead of
/// waiting 5 s for more replicas to share it, which would dominate a test's run time.
const TEST_ARGS: &[&str] = &["--repl-diskless-sync-delay", "0"];

/// A Redis Cluster of our own (see [`TestCluster::start`]); every node dies with the handle.
/// Nodes are named by their index in [`TestCluster::hosts`], which never changes: a restarted
/// or wiped node keeps its index, port and directory.
pub struct TestCluster {
    nodes: Vec<Node>,
    persistence: Persistence,
}

impl TestCluster {
    /// Starts `primaries` primaries with `replicas_per_primary` replicas each, without
    /// persistence, and waits until every node agrees the cluster is up. `redis-cli` needs at
    /// least 3 primaries.
    pub fn start(primaries: usize, replicas_per_primary: usize) -> Self {
        Self::start_with(primaries, replicas_per_primary, Persistence::None)
    }

    /// [`TestCluster::start`] with every node keeping its data as `persistence` says.
    pub fn start_with(
        primaries: usize,
        replicas_per_primary: usize,
        persistence: Persistence,
    ) -> Self {
        assert!(
            primaries >= 3,
            "redis-cli --cluster create needs at least 3 primaries, not {primaries}"
        );
        let replicas = u8::try_from(replicas_per_primary)
            .unwrap_or_else(|_| panic!("{replicas_per_primary} replicas per primary is too many"));
        let count = primaries * (1 + replicas_per_primary);
        let cluster = Self {
            nodes: (0..count).map(|_| Node::start(persistence)).collect(),
            persistence,
        };
        let out =
            dev_servers::cluster_create_command(&cluster.hosts(), replicas, OPERATOR_PASSWORD)
                .output()
                .unwrap_or_else(|e| {
                    panic!("redis-cli could not start ({e}): is redis-tools installed?")
                });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_settled(SETTLE);
        cluster
    }

    /// How many nodes the cluster has, alive or not.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `127.0.0.1:port` of every node, by index.
    pub fn hosts(&self) -> Vec<String> {
        self.nodes.iter().map(Node::host).collect()
    }

    /// The first node's host: where a service that takes one seed address connects.
    pub fn seed_host(&self) -> String {
        self.nodes[0].host()
    }

    /// The operator's URL (every right) at the seed node.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The URL a service of `role` connects with at the seed node: it may do only what the role
    /// may.
    pub fn url_as(&self, role: Role) -> String {
        likes_core::acl::url(role.user(), &role_password(role), &self.seed_host())
    }

    /// The edge's Redis variables (`redis_host`, `redis_user`, `redis_password`), seeded at the
    /// first node.
    pub fn edge_variables(&self) -> [(&'static str, String); 3] {
        crate::edge_variables_at(self.seed_host())
    }

    /// A cluster client for the operator, every node a seed, so it finds the cluster whichever
    /// nodes are down.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::builder(self.nodes.iter().map(Node::url))
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|e| panic!("cluster client: {e}"))
    }

    /// A blocking cluster connection. It follows `MOVED`/`ASK` but, in redis 1.8, keeps dialing a
    /// dead primary rather than refreshing its slots: take a new one after a failover.
    pub fn conn(&self) -> redis::cluster::ClusterConnection {
        self.client()
            .get_connection()
            .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"))
    }

    /// An async cluster connection.
    pub async fn async_conn(&self) -> redis::cluster_async::ClusterConnection {
        self.client()
            .get_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"))
    }

    /// A plain connection to node `i` alone, as the operator: no redirections, so a test sees
    /// what that node holds (on a replica, send `READONLY` first).
    pub fn node_conn(&self, i: usize) -> redis::Connection {
        self.nodes[i]
            .conn()
            .unwrap_or_else(|e| panic!("connecting to cluster node {i}: {e}"))
    }

    /// The node serving `key`'s slot, as a live node's `CLUSTER NODES` says.
    pub fn primary_for_key(&self, key: &str) -> usize {
        let (i, view) = self.any_view();
        let slot: u16 = self
            .query(i, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT on node {i}: {e}"));
        view.iter()
            .find(|l| l.serves(slot, slot))
            .and_then(|l| self.index_of(l.port))
            .unwrap_or_else(|| panic!("node {i} knows no live primary for slot {slot} ({key})"))
    }

    /// The nodes serving slots now, by index.
    pub fn primaries(&self) -> Vec<usize> {
        let (_, view) = self.any_view();
        let mut out: Vec<usize> = view
            .iter()
            .filter(|l| l.master && l.healthy() && !l.slots.is_empty())
            .filter_map(|l| self.index_of(l.port))
            .collect();
        out.sort_unstable();
        out
    }

    /// The healthy replicas of node `i`, by index.
    pub fn replicas_of(&self, i: usize) -> Vec<usize> {
        let (_, view) = self.any_view();
        let Some(id) = view
            .iter()
            .find(|l| l.port == self.nodes[i].port && l.healthy())
            .map(|l| l.id.clone())
        else {
            return Vec::new();
        };
        let mut out: Vec<usize> = view
            .iter()
            .filter(|l| l.healthy() && l.primary_id.as_deref() == Some(id.as_str()))
            .filter_map(|l| self.index_of(l.port))
            .collect();
        out.sort_unstable();
        out
    }

    /// Stops node `i` (SIGKILL) while its handle, port and directory stay. What the cluster said
    /// about it (its id, its shard's slots) is kept for [`TestCluster::wait_for_failover`] and
    /// [`TestCluster::lose_disk`].
    pub fn kill(&mut self, i: usize) {
        if self.nodes[i].child.is_none() {
            return;
        }
        if let Some(seen) = self.seen(i) {
            self.nodes[i].last_seen = Some(seen);
        }
        self.nodes[i].kill();
    }

    /// Starts node `i` again (killing it first if need be) on the same port, directory and
    /// arguments, and waits until it answers `PING` rather than `LOADING`. It rejoins with the
    /// identity in its `nodes.conf`; its data survives only with persistence.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let port = self.nodes[i].port;
        assert!(
            self.nodes[i].spawn(self.persistence),
            "cluster node {i} did not restart on port {port}"
        );
        wait_pong(&self.nodes[i].url());
    }

    /// After killing primary `i`: waits until every live node says `cluster_state:ok` and serves
    /// `i`'s slots from one promoted primary, whose index it returns.
    pub fn wait_for_failover(&self, i: usize, timeout: Duration) -> usize {
        assert!(
            self.nodes[i].child.is_none(),
            "cluster node {i} is running: kill it before waiting for its failover"
        );
        let seen = self.nodes[i]
            .last_seen
            .clone()
            .unwrap_or_else(|| panic!("cluster node {i} was killed before the cluster knew it"));
        assert!(
            seen.was_primary,
            "cluster node {i} was a replica when killed"
        );
        self.wait_for_owner(&seen, timeout)
            .unwrap_or_else(|e| panic!("no failover of node {i} within {timeout:?}: {e}"))
    }

    /// Node `i` loses its disk: it is killed, everything in its directory (`nodes.conf`, AOF) is
    /// deleted, and it starts as a fresh, empty node that is met into the cluster and made a
    /// replica of whichever node now serves its former shard. Returns once its link is up.
    pub fn lose_disk(&mut self, i: usize) {
        self.kill(i);
        let seen = self.nodes[i]
            .last_seen
            .clone()
            .unwrap_or_else(|| panic!("cluster node {i} was killed before the cluster knew it"));
        let primary = self
            .wait_for_owner(&seen, SETTLE)
            .unwrap_or_else(|e| panic!("nobody took over node {i}'s shard: {e}"));
        self.nodes[i].wipe();
        let port = self.nodes[i].port;
        assert!(
            self.nodes[i].spawn(self.persistence),
            "cluster node {i} did not start again on port {port}"
        );
        wait_pong(&self.nodes[i].url());
        // Its old identity would stay in every node's table as a failed node at its address.
        for j in self.live().filter(|j| *j != i) {
            let _: redis::RedisResult<()> =
                self.query(j, redis::cmd("CLUSTER").arg("FORGET").arg(&seen.id));
        }
        let (seed_port, seed_bus) = (self.nodes[primary].port, self.nodes[primary].bus_port);
        let _: () = self
            .query(
                i,
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(seed_port)
                    .arg(seed_bus),
            )
            .unwrap_or_else(|e| panic!("CLUSTER MEET from node {i}: {e}"));
        let primary_id: String = self
            .query(primary, redis::cmd("CLUSTER").arg("MYID"))
            .unwrap_or_else(|e| panic!("CLUSTER MYID on node {primary}: {e}"));
        // REPLICATE needs the node to know its primary, which it learns through the handshake.
        let deadline = Instant::now() + SETTLE;
        loop {
            let replicated: redis::RedisResult<()> =
                self.query(i, redis::cmd("CLUSTER").arg("REPLICATE").arg(&primary_id));
            match replicated {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    panic!("CLUSTER REPLICATE {primary_id} on node {i}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        self.wait_settled(SETTLE);
    }

    /// Waits until every live node says `cluster_state:ok`, knows every live node as connected
    /// and healthy (and no strangers), and every live replica's link to its primary is up.
    pub fn wait_settled(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let why = match self.settled() {
                Ok(()) => return,
                Err(why) => why,
            };
            assert!(
                Instant::now() < deadline,
                "the test cluster did not settle within {timeout:?}: {why}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn settled(&self) -> Result<(), String> {
        let live: Vec<usize> = self.live().collect();
        let mut views = Vec::with_capacity(live.len());
        for &i in &live {
            let view = self.ok_view(i)?;
            views.push(view);
        }
        // How each live node describes itself, which every view must repeat.
        let mut selves = Vec::with_capacity(live.len());
        for (view, i) in views.iter().zip(&live) {
            let me = view.iter().find(|l| l.myself);
            selves.push(me.ok_or_else(|| format!("node {i} does not list itself"))?);
        }
        for (view, &i) in views.iter().zip(&live) {
            for line in view {
                match self.index_of(line.port) {
                    None => return Err(format!("node {i} knows a stranger: {}", line.raw)),
                    Some(j) if live.contains(&j) && !(line.healthy() && line.connected) => {
                        return Err(format!("node {i} sees node {j} as: {}", line.raw));
                    }
                    Some(_) => {}
                }
            }
            for (&j, me) in live.iter().zip(&selves) {
                let mut entries = view.iter().filter(|l| l.port == self.nodes[j].port);
                let (Some(line), None) = (entries.next(), entries.next()) else {
                    return Err(format!("node {i} has not exactly one entry for node {j}"));
                };
                if (&line.id, line.master, &line.primary_id, &line.slots)
                    != (&me.id, me.master, &me.primary_id, &me.slots)
                {
                    return Err(format!(
                        "node {i} sees {}; node {j} says {}",
                        line.raw, me.raw
                    ));
                }
            }
        }
        for &i in &live {
            let replication: String = self
                .query(i, redis::cmd("INFO").arg("replication"))
                .map_err(|e| format!("INFO on node {i}: {e}"))?;
            if field(&replication, "role") == Some("slave")
                && field(&replication, "master_link_status") != Some("up")
            {
                return Err(format!("node {i}'s replication link is not up yet"));
            }
        }
        Ok(())
    }

    /// Waits until every live node says `cluster_state:ok` and has one healthy primary other
    /// than `seen.id` serving all of `seen`'s shard; returns that primary.
    fn wait_for_owner(&self, seen: &Seen, timeout: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let why = match self.owner(seen) {
                Ok(owner) => return Ok(owner),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(why);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn owner(&self, seen: &Seen) -> Result<usize, String> {
        let mut owner = None;
        for i in self.live() {
            let view = self.ok_view(i)?;
            for &(from, to) in &seen.shard_slots {
                let line = view
                    .iter()
                    .find(|l| l.serves(from, to))
                    .ok_or_else(|| format!("node {i} sees nobody serving slots {from}-{to}"))?;
                if line.id == seen.id {
                    return Err(format!("node {i} still has the old node on {from}-{to}"));
                }
                let j = self
                    .index_of(line.port)
                    .ok_or_else(|| format!("node {i} sees a stranger on {from}-{to}"))?;
                match owner {
                    Some(o) if o != j => {
                        return Err(format!("nodes disagree: {o} or {j} serves {from}-{to}"));
                    }
                    _ => owner = Some(j),
                }
            }
        }
        owner.ok_or_else(|| "no live node serves the shard".to_owned())
    }

    /// What a live node says about node `i`: its id and its shard's slots.
    fn seen(&self, i: usize) -> Option<Seen> {
        let view = self.live().find_map(|j| self.view(j).ok())?;
        let me = view
            .iter()
            .find(|l| l.port == self.nodes[i].port && l.healthy())?;
        let shard_slots = if me.master {
            me.slots.clone()
        } else {
            view.iter()
                .find(|l| Some(l.id.as_str()) == me.primary_id.as_deref())
                .map(|l| l.slots.clone())
                .unwrap_or_default()
        };
        Some(Seen {
            id: me.id.clone(),
            was_primary: me.master,
            shard_slots,
        })
    }

    /// The first live node that answers, with its `CLUSTER NODES`.
    fn any_view(&self) -> (usize, Vec<NodeLine>) {
        self.live()
            .find_map(|i| self.view(i).ok().map(|view| (i, view)))
            .unwrap_or_else(|| panic!("no live cluster node answers CLUSTER NODES"))
    }

    /// Node `i`'s view of the cluster, provided it says the cluster is ok.
    fn ok_view(&self, i: usize) -> Result<Vec<NodeLine>, String> {
        let state = self.cluster_state(i)?;
        if state != "ok" {
            return Err(format!("node {i} says cluster_state:{state}"));
        }
        self.view(i)
            .map_err(|e| format!("CLUSTER NODES on node {i}: {e}"))
    }

    fn view(&self, i: usize) -> redis::RedisResult<Vec<NodeLine>> {
        let text: String = self.query(i, redis::cmd("CLUSTER").arg("NODES"))?;
        Ok(text.lines().filter_map(NodeLine::parse).collect())
    }

    fn cluster_state(&self, i: usize) -> Result<String, String> {
        let info: String = self
            .query(i, redis::cmd("CLUSTER").arg("INFO"))
            .map_err(|e| format!("CLUSTER INFO on node {i}: {e}"))?;
        Ok(field(&info, "cluster_state").unwrap_or("?").to_owned())
    }

    fn query<T: redis::FromRedisValue>(&self, i: usize, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        cmd.query(&mut self.nodes[i].conn()?)
    }

    /// Indexes of the nodes we have not killed.
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].child.is_some())
    }

    fn index_of(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }
}

/// One `redis-server` of the cluster; killed on drop, so a cluster that fails to start leaves
/// nothing running.
struct Node {
    child: Option<Child>,
    port: u16,
    bus_port: u16,
    dir: tempfile::TempDir,
    /// What the cluster said about this node when it was last killed.
    last_seen: Option<Seen>,
}

/// A node's identity and shard, as the cluster saw them before the node was killed.
#[derive(Clone)]
struct Seen {
    id: String,
    was_primary: bool,
    /// Its own slots as a primary, its primary's as a replica.
    shard_slots: Vec<(u16, u16)>,
}

impl Node {
    /// A new node on free ports, retried when another test wins the race for a port.
    fn start(persistence: Persistence) -> Self {
        for _ in 0..5 {
            let (port, bus_port) = (free_port(), free_port());
            if port == bus_port {
                continue;
            }
            let mut node = Self {
                child: None,
                port,
                bus_port,
                dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
                last_seen: None,
            };
            if node.spawn(persistence) {
                return node;
            }
        }
        panic!("a cluster node did not come up on any of 5 pairs of free ports");
    }

    /// Starts the server on this node's ports and directory; false when it did not come up
    /// (a port taken meanwhile).
    fn spawn(&mut self, persistence: Persistence) -> bool {
        let acl = write_acl(self.dir.path());
        let mut child = spawn_redis_server(
            dev_servers::redis_cluster_node_command(
                self.port,
                self.bus_port,
                self.dir.path(),
                persistence,
                Some(&acl),
                OPERATOR_PASSWORD,
            )
            .args(TEST_ARGS),
        );
        // A node that lost the race for its bus port exits after opening its client port.
        if wait_listening(
            &mut child,
            &[self.port, self.bus_port],
            Duration::from_secs(10),
        ) {
            self.child = Some(child);
            true
        } else {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Deletes everything in the node's directory.
    fn wipe(&self) {
        let entries = std::fs::read_dir(self.dir.path())
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.dir.path().display()));
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        likes_core::acl::url("default", OPERATOR_PASSWORD, &self.host())
    }

    fn conn(&self) -> redis::RedisResult<redis::Connection> {
        let conn =
            redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(conn)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One line of `CLUSTER NODES`:
/// `<id> <ip:port@bus> <flags> <primary> <ping> <pong> <epoch> <link> <slot>…`.
struct NodeLine {
    raw: String,
    id: String,
    port: u16,
    myself: bool,
    master: bool,
    /// `fail`, `fail?`, `handshake` or `noaddr`.
    troubled: bool,
    connected: bool,
    primary_id: Option<String>,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        let address = fields[1].split('@').next()?;
        let port = address.rsplit(':').next()?.parse().unwrap_or(0);
        let flags: Vec<&str> = fields[2].split(',').collect();
        let slots = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((from, to)) => Some((from.parse().ok()?, to.parse().ok()?)),
                None => s.parse().ok().map(|slot| (slot, slot)),
            })
            .collect();
        Some(Self {
            raw: line.to_owned(),
            id: fields[0].to_owned(),
            port,
            myself: flags.contains(&"myself"),
            master: flags.contains(&"master"),
            troubled: flags
                .iter()
                .any(|f| matches!(*f, "fail" | "fail?" | "handshake" | "noaddr")),
            connected: flags.contains(&"myself") || fields[7] == "connected",
            primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
            slots,
        })
    }

    fn healthy(&self) -> bool {
        !self.troubled
    }

    /// Whether this is a healthy primary serving every slot from `from` to `to`.
    fn serves(&self, from: u16, to: u16) -> bool {
        self.master && self.healthy() && self.slots.iter().any(|&(a, b)| a <= from && to <= b)
    }
}

/// A `name:value` field of an `INFO`-style reply.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}
