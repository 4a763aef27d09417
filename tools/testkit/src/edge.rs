//! The release edge host as a child process, serving the real `spin.toml` and its compiled
//! components, for services' tests that need the edge in front of them (the hub's, the sync
//! daemon's). `cargo xtask test` builds the binary and the components first.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, workspace_root};

/// A running `target/release/edge-host`, killed on drop.
pub struct EdgeProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl EdgeProcess {
    /// Starts the edge on a free port against `redis` (as the edge's ACL user), signing
    /// sessions with `secret`. Fails with one line naming the command to run when the binary or
    /// the components are missing.
    pub fn start(redis: &crate::TestRedis, secret: &str) -> Self {
        Self::start_at(redis.edge_variables(), secret)
    }

    /// [`EdgeProcess::start`] with the edge's Redis variables given (`redis_host`, its user and
    /// password): a [`crate::TestCluster`]'s, for instance.
    pub fn start_at(variables: [(&'static str, String); 3], secret: &str) -> Self {
        let root = workspace_root();
        let bin = root.join("target/release/edge-host");
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo build --release -p edge-host` (cargo xtask test does)",
            bin.display()
        );
        for component in ["session.wasm", "likes.wasm", "posts.wasm", "feed.wasm"] {
            let path = root.join("target/wasm32-wasip2/component").join(component);
            assert!(
                path.is_file(),
                "{} is missing: run `cargo xtask build` (cargo xtask test does)",
                path.display()
            );
        }
        let port = free_port();
        let mut cmd = Command::new(&bin);
        for (name, value) in variables {
            cmd.args(["--variable", &format!("{name}={value}")]);
        }
        let child = cmd
            .current_dir(&root)
            .arg("--manifest")
            .arg(root.join("spin.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--variable", &format!("session_secret={secret}")])
            // These tests measure the services behind the edge; the edge's abuse limits are
            // tested in edge-host's own suite, and would only throttle the workloads here.
            .args(["--variable", "likes_per_minute=0"])
            .args(["--variable", "sessions_per_minute=0"])
            .args(["--variable", "address_uploads_per_minute=0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut edge = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = edge.child.try_wait() {
                panic!("edge-host exited during start-up ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "edge-host did not listen in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        edge
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
