//! deploy/k8s against the real release binaries (`target/release`, built by `cargo xtask
//! test` before the tests run): every manifest parses; every flag, environment variable, port
//! and probe path a container declares is one its binary has; Services name ports that exist.
//! No Kubernetes here: the containers' command lines run as local processes, each declared
//! port moved to a free local one, Secrets replaced by throw-away Redis and PostgreSQL URLs of
//! the same ACL users.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use deploy_check::{Container, File, IntOrString, Object, WorkloadSpec};
use testkit::Role;

/// Variables the binaries read that are not clap flags.
const NON_CLAP_ENV: &[&str] = &["RUST_LOG"];
/// The one pod field the manifests may read (its value in the test).
const POD_NAME: &str = "likes-daemon-7d4b9c-x2x9q";

fn root() -> PathBuf {
    testkit::workspace_root()
}

fn manifests() -> anyhow::Result<Vec<File>> {
    deploy_check::load_dir(&root().join("deploy/k8s"))
}

struct Workload<'a> {
    kind: &'a str,
    name: String,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    spec: &'a WorkloadSpec,
}

fn workloads(files: &[File]) -> Vec<Workload<'_>> {
    files
        .iter()
        .flat_map(|f| &f.objects)
        .filter_map(|o| match o {
            Object::Workload { kind, meta, spec } => Some(Workload {
                kind,
                name: meta.name.clone().unwrap_or_else(|| "(generated)".into()),
                labels: &spec.template.metadata.labels,
                annotations: &spec.template.metadata.annotations,
                spec,
            }),
            _ => None,
        })
        .collect()
}

/// `(secret, key)` → the example value in secrets.example.yaml.
fn example_secrets(files: &[File]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for o in files.iter().flat_map(|f| &f.objects) {
        if let Object::Secret { meta, string_data } = o {
            for (k, v) in string_data {
                out.insert(
                    (meta.name.clone().unwrap_or_default(), k.clone()),
                    v.clone(),
                );
            }
        }
    }
    out
}

/// The release binary a container's `command` runs.
fn binary(c: &Container) -> anyhow::Result<PathBuf> {
    let first = c
        .command
        .first()
        .with_context(|| format!("container {} has no command", c.name))?;
    let name = Path::new(first)
        .file_name()
        .and_then(|n| n.to_str())
        .context("command has no file name")?;
    let bin = root().join("target/release").join(name);
    ensure!(
        bin.is_file(),
        "{} is missing: run `cargo build --release --workspace` (cargo xtask test does)",
        bin.display()
    );
    Ok(bin)
}

fn help_env_names(bin: &Path) -> anyhow::Result<Vec<String>> {
    let out = Command::new(bin).arg("--help").env_clear().output()?;
    ensure!(out.status.success(), "{} --help failed", bin.display());
    Ok(deploy_check::env_names_in_help(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

#[test]
fn manifests_hang_together() -> anyhow::Result<()> {
    let files = manifests()?;
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile"))?;
    let secrets = example_secrets(&files);
    // The kustomization names files that exist and parse.
    let dir = root().join("deploy/k8s");
    let mut kustomizations = 0;
    for o in files.iter().flat_map(|f| &f.objects) {
        if let Object::Kustomization { resources } = o {
            kustomizations += 1;
            ensure!(!resources.is_empty(), "kustomization lists nothing");
            for r in resources {
                ensure!(
                    files.iter().any(|f| f.path == dir.join(r)),
                    "kustomization names {r}, which is not a manifest here"
                );
            }
        }
    }
    ensure!(kustomizations == 1, "one kustomization.yaml expected");

    let all = workloads(&files);
    ensure!(
        all.iter().filter(|w| w.kind == "Deployment").count() == 2,
        "the hub's and the daemon's Deployments"
    );
    for w in &all {
        let pod = &w.spec.template.spec;
        let at = format!("{} {}", w.kind, w.name);
        ensure!(
            pod.automount_service_account_token == Some(false),
            "{at}: automountServiceAccountToken must be false"
        );
        ensure!(
            pod.security_context
                .as_ref()
                .and_then(|s| s.run_as_non_root)
                == Some(true),
            "{at}: pod securityContext.runAsNonRoot"
        );
        if w.kind == "Deployment" {
            ensure!(
                w.spec.replicas.unwrap_or(1) >= 2,
                "{at}: 2 replicas or more"
            );
            let selector = w.spec.selector.as_ref().context("selector")?;
            for (k, v) in &selector.match_labels {
                ensure!(
                    w.labels.get(k) == Some(v),
                    "{at}: selector {k}={v} misses the template"
                );
            }
        }
        for c in &pod.containers {
            let at = format!("{at}, container {}", c.name);
            let sc = c.security_context.clone().unwrap_or_default();
            ensure!(
                sc.read_only_root_filesystem == Some(true),
                "{at}: readOnlyRootFilesystem"
            );
            ensure!(
                sc.allow_privilege_escalation == Some(false),
                "{at}: allowPrivilegeEscalation: false"
            );
            ensure!(
                sc.capabilities.is_some_and(|c| c.drop == ["ALL"]),
                "{at}: capabilities drop ALL"
            );
            ensure!(!c.image.is_empty(), "{at}: image");
            // The image puts the binary where the command looks for it.
            let bin = binary(c)?;
            let name = bin.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let copy = format!("/src/target/release/{name} {}", c.command[0]);
            ensure!(
                dockerfile.contains(&copy),
                "{at}: deploy/Dockerfile has no `COPY … {copy}`"
            );
            // Every variable set is one the binary reads.
            let known = help_env_names(&bin)?;
            for e in &c.env {
                ensure!(
                    known.contains(&e.name) || NON_CLAP_ENV.contains(&e.name.as_str()),
                    "{at}: {} does not read {} (its --help lists {known:?})",
                    bin.display(),
                    e.name
                );
                if let Some(from) = &e.value_from {
                    if let Some(r) = &from.secret_key_ref {
                        ensure!(
                            secrets.contains_key(&(r.name.clone(), r.key.clone())),
                            "{at}: secret {}/{} is not in secrets.example.yaml",
                            r.name,
                            r.key
                        );
                    }
                    if let Some(f) = &from.field_ref {
                        ensure!(
                            f.field_path == "metadata.name",
                            "{at}: fieldRef {}",
                            f.field_path
                        );
                    }
                } else {
                    ensure!(e.value.is_some(), "{at}: {} has no value", e.name);
                }
            }
            if w.kind == "Deployment" {
                ensure!(c.resources.is_some(), "{at}: resources");
                ensure!(
                    c.readiness_probe
                        .as_ref()
                        .and_then(|p| p.http_get.as_ref())
                        .is_some(),
                    "{at}: an HTTP readinessProbe"
                );
                ensure!(
                    c.liveness_probe
                        .as_ref()
                        .and_then(|p| p.http_get.as_ref())
                        .is_some(),
                    "{at}: an HTTP livenessProbe"
                );
                for (kind, probe) in c.http_probes() {
                    ensure!(
                        c.port(&probe.port).is_some(),
                        "{at}: {kind} probe port {:?} is not a container port",
                        probe.port
                    );
                }
                ensure!(
                    w.annotations
                        .get("prometheus.io/scrape")
                        .map(String::as_str)
                        == Some("true"),
                    "{at}: prometheus.io/scrape"
                );
                let port: u16 = w
                    .annotations
                    .get("prometheus.io/port")
                    .context("prometheus.io/port")?
                    .parse()?;
                ensure!(
                    c.port(&IntOrString::Int(port)).is_some(),
                    "{at}: prometheus.io/port {port} is not a container port"
                );
            }
        }
    }

    // Each Service selects one Deployment and targets ports its container declares.
    let mut services = 0;
    for o in files.iter().flat_map(|f| &f.objects) {
        let Object::Service { meta, spec } = o else {
            continue;
        };
        services += 1;
        let name = meta.name.clone().unwrap_or_default();
        let selected: Vec<_> = all
            .iter()
            .filter(|w| w.kind == "Deployment")
            .filter(|w| {
                spec.selector
                    .iter()
                    .all(|(k, v)| w.labels.get(k) == Some(v))
            })
            .collect();
        ensure!(
            !spec.selector.is_empty() && selected.len() == 1,
            "Service {name} selects {} Deployments",
            selected.len()
        );
        let containers = &selected[0].spec.template.spec.containers;
        for p in &spec.ports {
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            ensure!(
                containers.iter().any(|c| c.port(&target).is_some()),
                "Service {name}: targetPort {target:?} is not a port of {}",
                selected[0].name
            );
        }
    }
    ensure!(services >= 1, "the hub's Service");
    Ok(())
}

/// A child process, killed on drop, its stderr kept for the error message.
struct Proc {
    child: Child,
    what: String,
    stderr: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let tail: Vec<_> = log.lines().rev().take(15).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real values the test gives a Secret's example value: the URL of the same ACL user on
/// the test's Redis, or the test's PostgreSQL.
fn real_secret(
    example: &str,
    redis: &testkit::TestRedis,
    pg: &testkit::TestPostgres,
) -> anyhow::Result<String> {
    if let Some(rest) = example.strip_prefix("redis://") {
        let user = rest.split(':').next().unwrap_or("");
        let role = Role::ALL
            .into_iter()
            .find(|r| r.user() == user)
            .with_context(|| format!("{example}: {user:?} is no role's Redis user"))?;
        return Ok(redis.url_as(role));
    }
    if example.starts_with("postgres://") {
        return Ok(pg.url());
    }
    bail!("no test value for secret value {example}")
}

/// Starts a container's command line; returns it with each declared port's local stand-in.
fn spawn(
    c: &Container,
    secrets: &BTreeMap<(String, String), String>,
    redis: &testkit::TestRedis,
    pg: &testkit::TestPostgres,
    logs: &Path,
) -> anyhow::Result<(Proc, BTreeMap<u16, u16>)> {
    let bin = binary(c)?;
    let ports: BTreeMap<u16, u16> = c
        .ports
        .iter()
        .map(|p| (p.container_port, testkit::free_port()))
        .collect();
    let mut rebound = BTreeMap::new();
    let mut rewrite = |s: &str| {
        let mut s = s.to_owned();
        for (from, to) in &ports {
            let (next, n) = deploy_check::rebind(&s, *from, *to);
            *rebound.entry(*from).or_insert(0) += n;
            s = next;
        }
        s
    };
    let mut cmd = Command::new(&bin);
    cmd.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.args(c.command.iter().skip(1).map(|a| rewrite(a)));
    cmd.args(c.args.iter().map(|a| rewrite(a)));
    for e in &c.env {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => rewrite(v),
            (None, Some(from)) => match (&from.secret_key_ref, &from.field_ref) {
                (Some(r), _) => {
                    let example = secrets
                        .get(&(r.name.clone(), r.key.clone()))
                        .with_context(|| format!("secret {}/{}", r.name, r.key))?;
                    real_secret(example, redis, pg)?
                }
                (None, Some(_)) => POD_NAME.to_owned(),
                (None, None) => bail!("{}: unsupported valueFrom", e.name),
            },
            (None, None) => bail!("{}: no value", e.name),
        };
        cmd.env(&e.name, value);
    }
    for (port, n) in &rebound {
        ensure!(
            *n >= 1,
            "container {}: port {port} is declared but no 0.0.0.0:{port} listener is configured",
            c.name
        );
    }
    let stderr = logs.join(format!("{}.stderr", c.name));
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let what = format!("{} {:?}", bin.display(), c.args);
    Ok((
        Proc {
            child,
            what,
            stderr,
        },
        ports,
    ))
}

/// `GET path` on 127.0.0.1:port: the status and the body.
fn get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits until `GET path` answers 200 (a service may be 503 until Redis is subscribed).
fn get_ok(p: &mut Proc, port: u16, path: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::from("nothing yet");
    while Instant::now() < deadline {
        if let Some(status) = p.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", p.what, p.log());
        }
        match get(port, path) {
            Ok((200, body)) => return Ok(body),
            Ok((code, body)) => last = format!("{code} {body}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{}: GET {path} never answered 200 (last: {last}):\n{}",
        p.what,
        p.log()
    )
}

#[test]
fn binaries_serve_what_the_manifests_declare() -> anyhow::Result<()> {
    let files = manifests()?;
    let secrets = example_secrets(&files);
    let redis = testkit::TestRedis::start();
    let pg = testkit::TestPostgres::start();
    let logs = tempfile_dir()?;
    let all = workloads(&files);
    let is_migrate = |w: &Workload<'_>| {
        w.spec
            .template
            .spec
            .containers
            .iter()
            .any(|c| c.args == ["migrate"])
    };
    // The order an operator uses: migrations, the services, then a rehydrate (of an empty
    // record here: it must still run to completion with the daemon's rights).
    let mut order: Vec<&Workload<'_>> = all.iter().filter(|w| is_migrate(w)).collect();
    order.extend(all.iter().filter(|w| w.kind == "Deployment"));
    order.extend(all.iter().filter(|w| w.kind == "Job" && !is_migrate(w)));
    ensure!(
        order.len() == all.len(),
        "only Deployments and Jobs are known"
    );

    for w in order {
        for c in &w.spec.template.spec.containers {
            let at = format!("{} {}, container {}", w.kind, w.name, c.name);
            let (mut p, ports) =
                spawn(c, &secrets, &redis, &pg, logs.path()).with_context(|| at.clone())?;
            if w.kind == "Job" {
                let deadline = Instant::now() + Duration::from_secs(60);
                let status = loop {
                    if let Some(s) = p.child.try_wait()? {
                        break s;
                    }
                    ensure!(Instant::now() < deadline, "{at}: still running after 60 s");
                    std::thread::sleep(Duration::from_millis(100));
                };
                ensure!(status.success(), "{at}: exited {status}:\n{}", p.log());
                continue;
            }
            let local = |port: &IntOrString| -> anyhow::Result<u16> {
                let declared = c
                    .port(port)
                    .with_context(|| format!("{at}: port {port:?}"))?;
                ports.get(&declared).copied().context("port")
            };
            for (kind, probe) in c.http_probes() {
                get_ok(&mut p, local(&probe.port)?, &probe.path)
                    .with_context(|| format!("{at}: {kind} probe"))?;
            }
            // Every declared port answers the readiness path (the hub: /healthz on both).
            if let Some(ready) = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()) {
                for (declared, port) in &ports {
                    get_ok(&mut p, *port, &ready.path)
                        .with_context(|| format!("{at}: {} on port {declared}", ready.path))?;
                }
            }
            if let (Some(port), Some(path)) = (
                w.annotations.get("prometheus.io/port"),
                w.annotations.get("prometheus.io/path"),
            ) {
                // A recorder renders nothing until the first sample (the daemon's lag sampler
                // runs every few seconds), so the scrape is retried until it has a metric.
                let port = local(&IntOrString::Int(port.parse()?))?;
                let deadline = Instant::now() + Duration::from_secs(15);
                loop {
                    let body = get_ok(&mut p, port, path)
                        .with_context(|| format!("{at}: Prometheus scrape"))?;
                    if body.lines().any(|l| l.starts_with("# TYPE")) {
                        break;
                    }
                    ensure!(
                        Instant::now() < deadline,
                        "{at}: {path} is not Prometheus text: {body:?}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            // The Services that select this pod reach Socket.IO (the hub) on their targetPort.
            for o in files.iter().flat_map(|f| &f.objects) {
                let Object::Service { spec, .. } = o else {
                    continue;
                };
                if !spec
                    .selector
                    .iter()
                    .all(|(k, v)| w.labels.get(k) == Some(v))
                {
                    continue;
                }
                for sp in &spec.ports {
                    let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
                    let body = get_ok(
                        &mut p,
                        local(&target)?,
                        "/socket.io/?EIO=4&transport=polling",
                    )
                    .with_context(|| format!("{at}: Socket.IO on the Service's port"))?;
                    ensure!(
                        body.contains("\"sid\""),
                        "{at}: not an Engine.IO handshake: {body:?}"
                    );
                }
            }
        }
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<TempDir> {
    let path = std::env::temp_dir().join(format!("deploy-check-{}", std::process::id()));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
