//! Making sure the tools a command needs exist, installing what can be installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The component packages `spin.toml` ships: spin.toml is their one list, and each
/// `[component.*.build]` names the folder whose Cargo.toml names the package.
pub fn components() -> anyhow::Result<Vec<String>> {
    component_packages(&root().join("spin.toml"))
}

/// The component packages only tests load (the edge host's `fault.toml` fixture).
pub fn test_components() -> anyhow::Result<Vec<String>> {
    component_packages(&root().join("crates/edge-host/tests/fixtures/fault.toml"))
}

fn component_packages(manifest: &Path) -> anyhow::Result<Vec<String>> {
    let read = |path: &Path| -> anyhow::Result<toml::Table> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        text.parse()
            .with_context(|| format!("parsing {}", path.display()))
    };
    let base = manifest.parent().unwrap_or(Path::new("."));
    let spin = read(manifest)?;
    let components = spin
        .get("component")
        .and_then(toml::Value::as_table)
        .with_context(|| format!("{} has no [component.*]", manifest.display()))?;
    let mut packages = Vec::new();
    for (id, component) in components {
        let workdir = component
            .get("build")
            .and_then(|b| b.get("workdir"))
            .and_then(toml::Value::as_str)
            .with_context(|| format!("component `{id}` has no build.workdir"))?;
        let cargo = read(&base.join(workdir).join("Cargo.toml"))?;
        let name = cargo
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{workdir}/Cargo.toml has no package.name"))?;
        packages.push(name.to_owned());
    }
    Ok(packages)
}

/// The workspace root.
pub fn root() -> PathBuf {
    dev_servers::workspace_root()
}

/// Runs `cmd` in the workspace root, echoing it, and fails when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    cmd.current_dir(root());
    eprintln!("$ {}", render(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting `{}`", render(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", render(cmd));
    }
    Ok(())
}

fn render(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cargo` with the workspace's toolchain.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `bytes` random bytes from the kernel, as hex: secrets and keys nobody else can guess.
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where `program` is on PATH, if it is.
pub fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    which(program).is_some()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Installs Debian packages when running as root; otherwise fails with the one line to run.
pub fn apt_install(what: &str, packages: &[&str]) -> anyhow::Result<()> {
    if !is_root() || !on_path("apt-get") {
        bail!(
            "{what} is missing: install it with `sudo apt-get install -y {}`",
            packages.join(" ")
        );
    }
    eprintln!("installing {what} ({})", packages.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(packages))
}

/// `redis-server`, `redis-cli` and `redis-benchmark` (Debian's redis-server pulls in redis-tools).
pub fn ensure_redis() -> anyhow::Result<()> {
    if on_path("redis-server") {
        return Ok(());
    }
    apt_install("redis-server", &["redis-server"])
}

/// The `haproxy` binary (`up --cluster`'s load balancer). Debian installs it in /usr/sbin, which
/// is not on every user's PATH.
pub fn ensure_haproxy() -> anyhow::Result<PathBuf> {
    let find = || {
        which("haproxy")
            .or_else(|| Some(PathBuf::from("/usr/sbin/haproxy")).filter(|p| p.is_file()))
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    apt_install("HAProxy", &["haproxy"])?;
    find().context("HAProxy was installed but `haproxy` is still not found")
}

/// Directory of the PostgreSQL server binaries (`initdb`, `postgres`, `createdb`).
pub fn postgres_bin_dir() -> Option<PathBuf> {
    dev_servers::postgres_bin_dir()
}

/// The PostgreSQL server binaries.
pub fn ensure_postgres() -> anyhow::Result<PathBuf> {
    if let Some(dir) = postgres_bin_dir() {
        return Ok(dir);
    }
    apt_install("PostgreSQL", &["postgresql"])?;
    postgres_bin_dir().context("PostgreSQL was installed but initdb is still not found")
}

/// The wasm targets the components and the app are built for.
pub fn ensure_wasm_targets() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let have = installed
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let missing: Vec<&str> = ["wasm32-wasip2", "wasm32-unknown-unknown"]
        .into_iter()
        .filter(|t| !have.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("rustup")
        .args(["target", "add"])
        .args(&missing))
}

/// Builds the Spin components (and the test-only ones when `with_test`).
pub fn build_components(with_test: bool) -> anyhow::Result<()> {
    ensure_wasm_targets()?;
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--target",
        "wasm32-wasip2",
        "--profile",
        "component",
    ]);
    let test = if with_test {
        test_components()?
    } else {
        Vec::new()
    };
    for c in components()?.iter().chain(&test) {
        cmd.args(["-p", c]);
    }
    run(&mut cmd)
}

/// Builds every native binary, example and test in release mode, in one cargo invocation.
///
/// Cargo resolves dependency features per invocation, from the packages and targets it builds,
/// so building `-p edge-host` alone, the four services, or the tests would each pick other
/// features and compile another copy of wasmtime. One invocation of the whole workspace, with
/// the tests' dev-dependencies, is the build that `cargo test --release`, `up` and every bench use.
pub fn build_native() -> anyhow::Result<()> {
    run(cargo().args(["build", "--release", "--all-targets"]))
}

/// Path of a release binary.
pub fn release_bin(name: &str) -> PathBuf {
    root().join("target/release").join(name)
}

/// The real Spin the project is tested against, as `../shared/tools` holds it: the xz archive and
/// the SHA-256 of the unpacked binary (from that folder's README).
const SHARED_SPIN: &str = "../shared/tools/spin-4.0.2-x86_64-linux.xz";
const SHARED_SPIN_SHA256: &str = "e76bc4f299687877e72df5f1cfce70b8c99001d87d4e9945c11a5366c9110712";

/// The `spin` binary: `SPIN=/path`, else `spin` on PATH, else the copy in `../shared/tools`,
/// unpacked once into `target/tools/spin` and checked against its SHA-256. `None` when there is
/// none of these (the caller decides whether that is a skip or a failure).
pub fn find_spin() -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os("SPIN").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("SPIN={} is not a file", path.display());
        }
        return Ok(Some(path));
    }
    if let Some(spin) = which("spin") {
        return Ok(Some(spin));
    }
    let archive = root().join(SHARED_SPIN);
    let unpacked = root().join("target/tools/spin");
    if unpacked.is_file() && sha256_file(&unpacked)? == SHARED_SPIN_SHA256 {
        return Ok(Some(unpacked));
    }
    if !archive.is_file() {
        return Ok(None);
    }
    if !on_path("xz") {
        apt_install("xz", &["xz-utils"])?;
    }
    std::fs::create_dir_all(root().join("target/tools"))?;
    let partial = unpacked.with_extension("partial");
    let out = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let status = Command::new("xz")
        .arg("-dc")
        .arg(&archive)
        .stdout(out)
        .status()
        .context("running xz")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", archive.display());
    }
    let sum = sha256_file(&partial)?;
    if sum != SHARED_SPIN_SHA256 {
        bail!(
            "{} unpacks to a binary with SHA-256 {sum}, not {SHARED_SPIN_SHA256}",
            archive.display()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, &unpacked)?;
    eprintln!("unpacked the real Spin into {}", unpacked.display());
    Ok(Some(unpacked))
}

/// [`find_spin`], failing with the one line that says how to get Spin.
pub fn require_spin() -> anyhow::Result<PathBuf> {
    find_spin()?.context(
        "Spin not found: put `spin` (Spin 4) on PATH, set SPIN=/path/to/spin, or keep ../shared/tools beside the checkout",
    )
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
