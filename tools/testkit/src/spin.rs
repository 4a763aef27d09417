//! The real Spin (`spin up`) as a child process, serving a manifest and its compiled components
//! on a free port: the second runtime of the edge's conformance suite and of the app's
//! end-to-end test. `cargo xtask test` finds or unpacks the binary and passes it in `SPIN`.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::free_port;

/// Where `cargo xtask` unpacks the Spin of `../shared/tools` (relative to the workspace root).
pub const UNPACKED: &str = "target/tools/spin";

/// The `spin` binary: `SPIN`, else `spin` on PATH, else the copy `cargo xtask` unpacked.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SPIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("spin"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(crate::workspace_root().join(UNPACKED)).filter(|p| p.is_file()))
}

/// The `spin` binary for a test that needs it. Outside CI a missing Spin skips the test with one
/// line (printed once) saying how to get it; in CI (`CI=true`) it fails the test instead, so a
/// CI run can never pass without having run the Spin half of the suite.
pub fn binary_or_skip() -> Option<PathBuf> {
    if let Some(path) = binary() {
        return Some(path);
    }
    let hint = "Spin not found: `cargo xtask test` unpacks ../shared/tools/spin-*.xz, or set SPIN=/path/to/spin";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{hint} (CI=true: the Spin half of the suite must run)");
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| eprintln!("skipping the tests on the real Spin. {hint}"));
    None
}

/// A running `spin up`, killed (with its `spin trigger http` child) on drop.
pub struct SpinProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    port: u16,
    _state: tempfile::TempDir,
}

impl SpinProcess {
    /// `spin up --from manifest` on a free port, with `variables` as `SPIN_VARIABLE_*` (Spin's own
    /// environment provider), its logs and state in a temporary directory, ready when
    /// `/.well-known/spin/health` answers. Panics with the log's tail when it does not start.
    pub fn start(spin: &Path, manifest: &Path, variables: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            if let Some(spin) = Self::try_start(spin, manifest, variables) {
                return spin;
            }
        }
        panic!("spin up did not come up on any of 3 free ports");
    }

    fn try_start(spin: &Path, manifest: &Path, variables: &[(&str, &str)]) -> Option<Self> {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = free_port();
        let log = state.path().join("spin.log");
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("spin log: {e}"));
        let mut cmd = Command::new(spin);
        cmd.arg("up")
            .arg("--from")
            .arg(manifest)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--state-dir")
            .arg(state.path())
            .arg("--log-dir")
            .arg(state.path().join("logs"))
            .arg("--temp")
            .arg(state.path())
            // A new process group, so the drop can stop `spin trigger http` with its parent.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap_or_else(|e| panic!("spin log: {e}")))
            .stderr(out);
        for (name, value) in variables {
            cmd.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", spin.display()));
        let mut process = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            _state: state,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                if log.contains("in use") {
                    return None;
                }
                panic!("spin up exited during start-up ({status}):\n{log}");
            }
            // Spin prints this once it has bound the port; until then an answer on the port
            // could come from another test's server that took it meanwhile.
            let serving = format!("Serving http://127.0.0.1:{port}");
            if std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&serving))
                && process.healthy()
            {
                return Some(process);
            }
            assert!(
                Instant::now() < deadline,
                "spin up did not answer in 120 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether Spin's own health route answers 200.
    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        let request =
            "GET /.well-known/spin/health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
        let mut answer = [0u8; 12];
        conn.write_all(request.as_bytes()).is_ok()
            && conn.read_exact(&mut answer).is_ok()
            && answer.ends_with(b"200")
    }

    /// The process id of `spin up` (the serving `spin trigger http` is its child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SpinProcess {
    fn drop(&mut self) {
        // The whole group: `spin up` and the trigger process it started.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
