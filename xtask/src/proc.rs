//! Child processes started by `up` and `bench`: Redis and the native services, stopped with
//! SIGTERM (then SIGKILL) and restarted with backoff when they die.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dev_servers::Persistence;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A child process we own, stopped on drop.
pub struct Service {
    pub name: String,
    make: Box<dyn Fn() -> Command>,
    child: Child,
    restarts: u32,
    next_restart: Option<Instant>,
    started: Instant,
}

/// A service that ran this long before it died starts its backoff afresh: one crash after a
/// healthy hour is not the sixth of a crash loop.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

impl Service {
    /// Starts `make()`; `make` is kept so the supervisor can start it again.
    pub fn start(name: &str, make: impl Fn() -> Command + 'static) -> anyhow::Result<Self> {
        let child = spawn(name, &make)?;
        Ok(Self {
            name: name.to_owned(),
            make: Box::new(make),
            child,
            restarts: 0,
            next_restart: None,
            started: Instant::now(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Restarts the service if it exited, with exponential backoff (0.5 s doubling to 30 s).
    pub fn supervise(&mut self) -> anyhow::Result<()> {
        if let Some(at) = self.next_restart {
            if Instant::now() >= at {
                self.child = spawn(&self.name, &self.make)?;
                self.next_restart = None;
                self.started = Instant::now();
                eprintln!(
                    "[xtask] {} restarted (pid {}, restart #{})",
                    self.name,
                    self.child.id(),
                    self.restarts
                );
            }
            return Ok(());
        }
        if let Some(status) = self.child.try_wait()? {
            if self.started.elapsed() >= HEALTHY_RUN {
                self.restarts = 0;
            }
            self.restarts += 1;
            let backoff = Duration::from_millis(500u64.saturating_mul(1 << self.restarts.min(6)))
                .min(Duration::from_secs(30));
            eprintln!(
                "[xtask] {} exited ({status}); restarting in {backoff:?}",
                self.name
            );
            self.next_restart = Some(Instant::now() + backoff);
        }
        Ok(())
    }

    /// SIGKILL to the service's whole process group (each service leads its own), as a crash
    /// would: no shutdown path runs, nothing is flushed, and no forked worker survives (a
    /// PostgreSQL backend left behind would hold the shared memory its restart needs).
    /// [`Self::supervise`] then restarts it as it would any service that died.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        let pid = i32::try_from(self.child.id()).context("pid out of range")?;
        if nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL).is_err() {
            self.child
                .kill()
                .with_context(|| format!("killing {}", self.name))?;
        }
        Ok(())
    }

    /// Whether the service is running now (not exited, not waiting for its restart).
    pub fn is_up(&mut self) -> bool {
        self.next_restart.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

fn spawn(name: &str, make: &dyn Fn() -> Command) -> anyhow::Result<Child> {
    let mut cmd = make();
    // Own process group: a Ctrl-C in the terminal reaches xtask only, which then stops the
    // children in order instead of every process racing to exit.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().with_context(|| format!("starting {name}"))
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on {addr} after {timeout:?}")
}

/// Waits until `GET http://{addr}{path}` answers 200: a port that accepts connections may belong
/// to a server still loading (the edge compiles its components first).
pub fn wait_for_http(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let deadline = Instant::now() + timeout;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    while Instant::now() < deadline {
        if let Ok(mut conn) = TcpStream::connect(addr) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = [0u8; 12];
            if conn.write_all(request.as_bytes()).is_ok()
                && conn.read_exact(&mut head).is_ok()
                && head.starts_with(b"HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("http://{addr}{path} did not answer 200 within {timeout:?}")
}

/// A Redis server for benchmarks: data under `dir`, AOF on when `durable`, every client the
/// `default` user.
pub fn redis(port: u16, dir: &Path, durable: bool) -> anyhow::Result<Service> {
    redis_server(port, dir, durable, None)
}

/// A Redis server whose clients log in as `users` (its ACL file), data under `dir`, AOF on.
pub fn redis_with_users(
    port: u16,
    dir: &Path,
    users: &crate::acl::RedisUsers,
) -> anyhow::Result<Service> {
    redis_server(port, dir, true, Some(users.acl_file()))
}

fn redis_server(
    port: u16,
    dir: &Path,
    durable: bool,
    acl: Option<std::path::PathBuf>,
) -> anyhow::Result<Service> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.to_path_buf();
    let svc = Service::start("redis", move || {
        let persistence = if durable {
            Persistence::AofEverySec
        } else {
            Persistence::None
        };
        let mut c = dev_servers::redis_command(port, &dir, persistence, acl.as_deref());
        c.args(["--protected-mode", "no", "--logfile", "redis.log"]);
        c
    })?;
    wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(10))?;
    Ok(svc)
}

/// A PostgreSQL server for development: data under `dir` (initdb on first use), database
/// `likes`, trust auth for `postgres` on 127.0.0.1 only. As root it runs as the `postgres`
/// user, since PostgreSQL refuses to run as root.
pub fn postgres(bin: &Path, port: u16, dir: &Path) -> anyhow::Result<Service> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let owner = dev_servers::postgres_owner().map_err(anyhow::Error::msg)?;
    if let Some((uid, gid)) = owner {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(dir)
            .status()?;
        if !status.success() {
            bail!("chown {} failed", dir.display());
        }
    }
    let data = dir.join("data");
    if !data.join("PG_VERSION").exists() {
        let out = dev_servers::initdb_command(bin, &data, owner, false)
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let (bin_dir, sock_dir) = (bin.to_path_buf(), dir.to_path_buf());
    let svc = Service::start("postgres", move || {
        dev_servers::postgres_command(
            &bin_dir,
            &sock_dir.join("data"),
            &sock_dir,
            port,
            &[],
            owner,
        )
    })?;
    wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(30))?;
    // The port opens before the server accepts sessions ("the database system is starting
    // up"), so retry until the database exists.
    for attempt in 0.. {
        let out = dev_servers::createdb_command(bin, port)
            .output()
            .context("running createdb")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || stderr.contains("already exists") {
            break;
        }
        if attempt == 50 {
            bail!("createdb likes failed: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(svc)
}
