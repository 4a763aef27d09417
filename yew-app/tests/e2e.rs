//! The web app end to end: a throw-away Redis, the real realtime hub and the real edge host
//! (serving `spin.toml`'s components and the built app in `yew-app/dist`), all on free ports,
//! driven by `e2e/app.e2e.mjs` in Debian's headless Chromium through playwright-core.
//!
//! Needs what `cargo xtask test` prepares: the components and the app built, the release
//! binaries of `edge-host`, `realtime-hub`, `load-lab` and `sync-daemon`, `/usr/bin/chromium`,
//! and `yew-app/node_modules`. The load lab (with a throw-away PostgreSQL and the sync daemon
//! draining into it) starts only when the browser script asks for it, and the edge then
//! restarts with its `lab_url`.
#![cfg(not(target_arch = "wasm32"))]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use testkit::{TestPostgres, TestRedis, free_port, workspace_root};

/// A server process (with its whole process group when it is `spin up`, whose `spin trigger
/// http` child does the serving), killed when dropped.
struct Server {
    name: &'static str,
    child: Option<Child>,
}

impl Server {
    fn start(name: &'static str, mut cmd: Command, log: &Path, port: u16) -> anyhow::Result<Self> {
        // Its own process group, so that a kill takes a server's children with it.
        cmd.process_group(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = cmd
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut server = Self {
            name,
            child: Some(child),
        };
        wait_for_port(port, Duration::from_secs(60))
            .with_context(|| format!("{name} did not listen on {port}"))?;
        // Something else may have taken the free port between picking and binding (other
        // tests run on this machine too): then our process has exited and the answer was not
        // ours.
        std::thread::sleep(Duration::from_millis(100));
        server.ensure_running()?;
        Ok(server)
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => bail!("{} exited ({status})", self.name),
            Some(Err(e)) => Err(e).context("checking the child"),
            None => bail!("{} is not running", self.name),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Every server here leads its own process group (see `Stack::spawn_group`).
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port}")
}

/// Waits until `GET /api/health` answers 200: the edge has loaded its components and reaches
/// Redis, so the browser's first navigation cannot race the start-up.
fn wait_for_health(port: u16) -> anyhow::Result<()> {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                return Ok(());
            }
            last = answer.lines().next().unwrap_or_default().to_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the edge's /api/health never answered 200 (last: {last:?})")
}

fn wait_until_closed(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && TcpStream::connect(("127.0.0.1", port)).is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lab's key in these tests; the edge hands it to the app (`lab_key`), as under `up`.
const LAB_KEY: &str = "e2e-only-lab-key-0123456789abcdef";

/// Which runtime serves the edge: our host, or the real Spin at this path.
#[derive(Clone)]
enum Edge {
    Host,
    Spin(PathBuf),
}

struct Stack {
    root: PathBuf,
    runtime: Edge,
    out: PathBuf,
    redis: TestRedis,
    hub_port: u16,
    /// The hub's admin listener, where its `/metrics` live.
    hub_admin_port: u16,
    edge_port: u16,
    /// The load lab's port once it runs (the edge then tells the app where it is).
    lab_port: Option<u16>,
    hub: Server,
    edge: Server,
    lab: Server,
    /// PostgreSQL and the sync daemon, started with the lab so its verdict is complete.
    pg: Option<TestPostgres>,
    sync: Server,
}

impl Stack {
    /// Starts everything, on fresh ports again if a port was taken meanwhile.
    fn start(root: &Path, out: &Path, runtime: &Edge) -> anyhow::Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(root, out, runtime) {
                Ok(stack) => return Ok(stack),
                Err(e) if attempt < 4 => eprintln!("e2e harness: retrying start-up: {e:#}"),
                Err(e) => return Err(e),
            }
        }
    }

    fn try_start(root: &Path, out: &Path, runtime: &Edge) -> anyhow::Result<Self> {
        let redis = TestRedis::start();
        let (hub_port, hub_admin_port, edge_port) = (free_port(), free_port(), free_port());
        let mut stack = Self {
            root: root.to_owned(),
            runtime: runtime.clone(),
            out: out.to_owned(),
            hub: Server {
                name: "realtime-hub",
                child: None,
            },
            edge: Server {
                name: "edge-host",
                child: None,
            },
            lab: Server {
                name: "load-lab",
                child: None,
            },
            lab_port: None,
            pg: None,
            sync: Server {
                name: "sync-daemon",
                child: None,
            },
            redis,
            hub_port,
            hub_admin_port,
            edge_port,
        };
        stack.start_hub()?;
        stack.start_edge()?;
        Ok(stack)
    }

    fn start_hub(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.root.join("target/release/realtime-hub"));
        cmd.args(["--listen", &format!("127.0.0.1:{}", self.hub_port)])
            .args([
                "--admin-listen",
                &format!("127.0.0.1:{}", self.hub_admin_port),
            ])
            .args(["--redis-url", &self.redis.url_as(testkit::Role::Hub)])
            .args([
                "--cors-origin",
                &format!("http://127.0.0.1:{}", self.edge_port),
            ]);
        self.hub = Server::start(
            "realtime-hub",
            cmd,
            &self.out.join("hub.log"),
            self.hub_port,
        )?;
        Ok(())
    }

    fn start_edge(&mut self) -> anyhow::Result<()> {
        let listen = format!("127.0.0.1:{}", self.edge_port);
        let mut variables = vec![
            (
                "session_secret",
                "e2e-only-session-secret-not-for-production".to_owned(),
            ),
            (
                "realtime_url",
                format!("http://127.0.0.1:{}", self.hub_port),
            ),
            // The lab run signs its users in through the API, all from this machine's address.
            ("sessions_per_minute", "0".to_owned()),
        ];
        variables.extend(self.redis.edge_variables());
        if let Some(lab) = self.lab_port {
            variables.push(("lab_url", format!("http://127.0.0.1:{lab}")));
            variables.push(("lab_key", LAB_KEY.to_owned()));
        }
        let manifest = self.root.join("spin.toml");
        let (name, mut cmd) = match &self.runtime {
            Edge::Host => {
                let mut cmd = Command::new(self.root.join("target/release/edge-host"));
                cmd.arg("--manifest").arg(&manifest);
                ("edge-host", cmd)
            }
            Edge::Spin(spin) => {
                let mut cmd = Command::new(spin);
                cmd.arg("up").arg("--from").arg(&manifest);
                cmd.arg("--state-dir").arg(self.out.join("spin-state"));
                ("spin", cmd)
            }
        };
        cmd.current_dir(&self.root).args(["--listen", &listen]);
        for (variable, value) in &variables {
            cmd.env(format!("SPIN_VARIABLE_{}", variable.to_uppercase()), value);
        }
        self.edge = Server::start(name, cmd, &self.out.join("edge.log"), self.edge_port)?;
        wait_for_health(self.edge_port)?;
        self.edge.ensure_running()
    }

    /// The load lab with runs enabled, aimed at this edge and Redis, with a PostgreSQL and the
    /// sync daemon draining into it, so a run's verdict compares all three counts.
    fn start_lab(&mut self) -> anyhow::Result<()> {
        let pg = TestPostgres::start();
        let sync_port = free_port();
        let mut sync = Command::new(self.root.join("target/release/sync-daemon"));
        sync.args(["--redis-url", &self.redis.url_as(testkit::Role::Daemon)])
            .args(["--database-url", &pg.url()])
            .args(["--admin-listen", &format!("127.0.0.1:{sync_port}")])
            .arg("run")
            .env("RUST_LOG", "warn");
        self.sync = Server::start("sync-daemon", sync, &self.out.join("sync.log"), sync_port)?;
        let port = free_port();
        let mut cmd = Command::new(self.root.join("target/release/load-lab"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--enable-lab"])
            .args(["--edge", &format!("http://127.0.0.1:{}", self.edge_port)])
            .args(["--hub", "none", "--database-url", &pg.url()])
            .args([
                "--sync-metrics",
                &format!("http://127.0.0.1:{sync_port}/metrics"),
            ])
            .args(["--redis", &self.redis.url_as(testkit::Role::LoadGen)])
            .args(["--max-users", "1000"])
            .args([
                "--allowed-origin",
                &format!("http://127.0.0.1:{}", self.edge_port),
            ])
            .env("LAB_KEY", LAB_KEY);
        self.lab = Server::start("load-lab", cmd, &self.out.join("lab.log"), port)?;
        self.lab_port = Some(port);
        self.pg = Some(pg);
        Ok(())
    }

    /// Carries out `kill hub`, `start edge`, … for the browser script.
    fn command(&mut self, cmd: &str) -> anyhow::Result<()> {
        match cmd {
            "kill hub" => {
                self.hub.kill();
                wait_until_closed(self.hub_port);
            }
            "kill edge" => {
                self.edge.kill();
                wait_until_closed(self.edge_port);
            }
            "start hub" => self.start_hub()?,
            "start edge" => self.start_edge()?,
            // The lab, and the edge again so that `/api/config` names it.
            "start lab" => {
                self.start_lab()?;
                self.edge.kill();
                wait_until_closed(self.edge_port);
                self.start_edge()?;
            }
            other => bail!("unknown command {other:?}"),
        }
        eprintln!(
            "e2e harness: {cmd} done ({} / {})",
            self.hub.name, self.edge.name
        );
        Ok(())
    }
}

/// Whether a screenshot shows something: many distinct colours, not one flat fill.
fn assert_not_blank(path: &Path) -> anyhow::Result<()> {
    let img = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_rgb8();
    let mut colours = std::collections::HashSet::new();
    for p in img.pixels().step_by(7) {
        colours.insert(p.0);
        if colours.len() > 64 {
            return Ok(());
        }
    }
    bail!(
        "{} looks blank ({} distinct colours)",
        path.display(),
        colours.len()
    )
}

/// The app on our edge host.
#[test]
fn the_app_works_on_a_phone_in_headless_chromium() -> anyhow::Result<()> {
    run_app(Edge::Host, "host")
}

/// The same browser script with the real Spin serving the edge.
#[test]
fn the_app_works_on_a_phone_with_the_real_spin() -> anyhow::Result<()> {
    match testkit::spin::binary_or_skip() {
        Some(spin) => run_app(Edge::Spin(spin), "spin"),
        None => Ok(()),
    }
}

/// Runs the browser script against a fresh stack whose edge is `runtime`, with screenshots and
/// logs in `target/e2e/<name>/`. One run at a time: two Chromiums on two cores would turn the
/// script's waits into timing tests.
fn run_app(runtime: Edge, name: &str) -> anyhow::Result<()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let root = workspace_root();
    for (path, how) in [
        ("yew-app/dist/index.html", "cargo xtask build-app"),
        (
            "target/release/edge-host",
            "cargo build --release -p edge-host",
        ),
        (
            "target/release/realtime-hub",
            "cargo build --release -p realtime-hub",
        ),
        (
            "target/release/load-lab",
            "cargo build --release -p load-lab",
        ),
        (
            "target/release/sync-daemon",
            "cargo build --release -p sync-daemon",
        ),
        (
            "target/wasm32-wasip2/component/posts.wasm",
            "cargo xtask build",
        ),
        (
            "yew-app/node_modules/playwright-core/package.json",
            "cargo xtask build-app (npm ci)",
        ),
        ("/usr/bin/chromium", "apt-get install -y chromium"),
    ] {
        ensure!(
            root.join(path).exists(),
            "{path} is missing: run `{how}` (or `cargo xtask test`, which does all of it)"
        );
    }
    let out = root.join("target/e2e").join(name);
    std::fs::create_dir_all(&out).context("creating target/e2e")?;
    for shot in [
        "feed.png",
        "upload.png",
        "lab.png",
        "hub.log",
        "edge.log",
        "lab.log",
    ] {
        let _ = std::fs::remove_file(out.join(shot));
    }

    let mut stack = Stack::start(&root, &out, &runtime)?;
    let mut node = Command::new("node")
        .arg(root.join("yew-app/e2e/app.e2e.mjs"))
        .current_dir(root.join("yew-app"))
        .env("APP_URL", format!("http://127.0.0.1:{}/", stack.edge_port))
        .env("HUB_URL", format!("http://127.0.0.1:{}/", stack.hub_port))
        .env(
            "HUB_METRICS_URL",
            format!("http://127.0.0.1:{}/metrics", stack.hub_admin_port),
        )
        .env("OUT_DIR", &out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    let mut to_node = node.stdin.take().context("node stdin")?;
    let from_node = BufReader::new(node.stdout.take().context("node stdout")?);
    let mut passed = false;
    for line in from_node.lines() {
        let line = line.context("reading node's output")?;
        if let Some(cmd) = line.strip_prefix("CMD ") {
            let reply = match stack.command(cmd) {
                Ok(()) => "OK".to_owned(),
                Err(e) => format!("ERR {e:#}"),
            };
            writeln!(to_node, "{reply}").context("answering node")?;
        } else {
            println!("{line}");
            passed |= line == "PASS";
        }
    }
    drop(to_node);
    let status = node.wait().context("waiting for node")?;
    ensure!(
        status.success() && passed,
        "the browser test failed ({status}); server logs are in {}",
        out.display()
    );
    for shot in ["feed.png", "upload.png", "lab.png"] {
        assert_not_blank(&out.join(shot))?;
    }
    Ok(())
}
