//! Shared helpers for the edge integration tests: a throwaway Redis, the components served by
//! our host in-process or by the real Spin, and paths into the workspace.

#![allow(dead_code, reason = "helpers are shared by several test modules")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edge_host::Config;
use edge_host::manifest::Manifest;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The `session_secret` every test app runs with.
pub const TEST_SECRET: &str = "edge-host-test-secret-do-not-use-in-production";

pub use testkit::workspace_root;

/// A file under `crates/edge-host/tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub use testkit::TestRedis;

/// Panics with the build hint when a component of `manifest` has not been built.
pub fn assert_components_built(manifest: &Path) {
    let parsed = Manifest::from_file(manifest).expect("test manifest parses");
    let base = manifest.parent().expect("manifest has a directory");
    for (id, component) in &parsed.component {
        let source = base.join(component.source_path().expect("local source"));
        assert!(
            source.is_file(),
            "component {id:?} is not built ({}): run `cargo xtask test` (it builds the components first)",
            source.display()
        );
    }
}

/// Test defaults: the given manifest and overrides, a small instance pool, a short grace.
pub fn test_config(manifest: &Path, overrides: &[(&str, &str)]) -> Config {
    let mut config = Config::new(manifest);
    for (name, value) in overrides {
        config = config.variable(name, *value);
    }
    config.max_instances = 64;
    config.shutdown_grace = Duration::from_secs(5);
    config
}

/// The runtime that serves the components in a test: the conformance tests run one body on
/// each (`#[case::host(Runtime::Host)] #[case::spin(Runtime::Spin)]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// Our edge host, in-process.
    Host,
    /// The real `spin up`, as a child process (see `testkit::spin`).
    Spin,
}

/// The components of a manifest served on `127.0.0.1:<free port>`, by our host in-process or
/// by the real Spin, stopped on drop.
pub struct TestEdge {
    addr: SocketAddr,
    client: reqwest::Client,
    server: Server,
}

enum Server {
    Host {
        admin: Option<SocketAddr>,
        shutdown: Option<oneshot::Sender<()>>,
        task: Option<JoinHandle<anyhow::Result<()>>>,
    },
    Spin(#[allow(dead_code, reason = "held to keep spin running")] testkit::spin::SpinProcess),
}

impl TestEdge {
    /// Runs `manifest` with variable `overrides` and test defaults in our host.
    pub async fn start(manifest: &Path, overrides: &[(&str, &str)]) -> Self {
        Self::start_with(test_config(manifest, overrides)).await
    }

    /// Runs `manifest` with variable `overrides` on `runtime`; `None` when the runtime is Spin
    /// and no `spin` binary is found outside CI (the test is then skipped, see
    /// `testkit::spin::binary_or_skip`).
    pub async fn start_on(
        runtime: Runtime,
        manifest: &Path,
        overrides: &[(&str, &str)],
    ) -> Option<Self> {
        match runtime {
            Runtime::Host => Some(Self::start(manifest, overrides).await),
            Runtime::Spin => {
                assert_components_built(manifest);
                let spin = testkit::spin::binary_or_skip()?;
                let (manifest, overrides): (PathBuf, Vec<(String, String)>) = (
                    manifest.to_owned(),
                    overrides
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                );
                let process = tokio::task::spawn_blocking(move || {
                    let vars: Vec<(&str, &str)> = overrides
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    testkit::spin::SpinProcess::start(&spin, &manifest, &vars)
                })
                .await
                .expect("spin start-up");
                let addr = process
                    .base
                    .trim_start_matches("http://")
                    .parse()
                    .expect("spin address");
                Some(Self {
                    addr,
                    client: http_client(),
                    server: Server::Spin(process),
                })
            }
        }
    }

    /// Runs the real `spin.toml` against `redis` on `runtime`, with `session_secret` =
    /// [`TEST_SECRET`] (`None`: skipped, as [`TestEdge::start_on`]).
    pub async fn app_on(runtime: Runtime, redis: &TestRedis) -> Option<Self> {
        Self::app_with(runtime, redis, &[]).await
    }

    /// [`TestEdge::app_on`] with extra variable overrides.
    pub async fn app_with(
        runtime: Runtime,
        redis: &TestRedis,
        extra: &[(&str, &str)],
    ) -> Option<Self> {
        Self::app_at(runtime, redis.edge_variables(), extra).await
    }

    /// The real `spin.toml` with `redis_vars` (a [`TestRedis`]'s or a cluster's
    /// `edge_variables`) and extra overrides.
    pub async fn app_at(
        runtime: Runtime,
        redis_vars: [(&'static str, String); 3],
        extra: &[(&str, &str)],
    ) -> Option<Self> {
        let manifest = workspace_root().join("spin.toml");
        let mut overrides: Vec<(&str, &str)> =
            redis_vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        overrides.push(("session_secret", TEST_SECRET));
        overrides.extend_from_slice(extra);
        Self::start_on(runtime, &manifest, &overrides).await
    }

    /// Runs with a custom configuration (no admin listener).
    pub async fn start_with(config: Config) -> Self {
        Self::launch(config, false).await
    }

    /// Runs with a custom configuration and an admin listener.
    pub async fn start_with_admin(config: Config) -> Self {
        Self::launch(config, true).await
    }

    async fn launch(config: Config, with_admin: bool) -> Self {
        assert_components_built(&config.manifest);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind edge listener");
        let addr = listener.local_addr().expect("edge address");
        let admin = if with_admin {
            Some(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind admin listener"),
            )
        } else {
            None
        };
        let admin_addr = admin
            .as_ref()
            .map(|l| l.local_addr().expect("admin address"));
        let (shutdown, stop) = oneshot::channel::<()>();
        // The host's warnings and errors, shown with the output of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
        let task = tokio::spawn(edge_host::run(listener, admin, config, async move {
            let _ = stop.await;
        }));
        let mut edge = Self {
            addr,
            client: http_client(),
            server: Server::Host {
                admin: admin_addr,
                shutdown: Some(shutdown),
                task: Some(task),
            },
        };
        edge.wait_ready().await;
        edge
    }

    /// Waits for `/.well-known/spin/health`, failing fast if startup failed.
    async fn wait_ready(&mut self) {
        let started = Instant::now();
        let url = self.url("/.well-known/spin/health");
        loop {
            if let Server::Host { task, .. } = &mut self.server
                && task.as_ref().is_some_and(JoinHandle::is_finished)
            {
                let task = task.take().expect("task present");
                match task.await {
                    Ok(Ok(())) => panic!("edge host exited during startup"),
                    Ok(Err(e)) => panic!("edge host failed to start: {e:#}"),
                    Err(e) => panic!("edge host panicked during startup: {e}"),
                }
            }
            if let Ok(response) = self
                .client
                .get(&url)
                .timeout(Duration::from_millis(500))
                .send()
                .await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "edge host did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The listener address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<admin address>`, when started with an admin listener.
    pub fn admin_url(&self) -> Option<String> {
        match &self.server {
            Server::Host { admin, .. } => admin.map(|a| format!("http://{a}")),
            Server::Spin(_) => None,
        }
    }

    /// The HTTP client shared by this edge's tests (keep-alive connections are reused).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET path`, which must get an answer (any status): a connection error fails the test.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Requests shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Server::Host { shutdown, task, .. } = &mut self.server else {
            return Ok(());
        };
        if let Some(shutdown) = shutdown.take() {
            let _ = shutdown.send(());
        }
        match task.take() {
            Some(task) => task.await.map_err(anyhow::Error::from)?,
            None => Ok(()),
        }
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Server::Host { shutdown, .. } = &mut self.server
            && let Some(shutdown) = shutdown.take()
        {
            let _ = shutdown.send(());
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Parses a response that must be an RFC 9457 problem with `status`.
pub async fn expect_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, likes_core::problem::CONTENT_TYPE);
    let body: serde_json::Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}

/// Signs in a new user called `name` through `POST /api/session`.
pub async fn sign_in(edge: &TestEdge, name: &str) -> likes_core::api::SessionResponse {
    let resp = edge
        .client()
        .post(edge.url("/api/session"))
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    resp.json().await.expect("session body")
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn assert_problem(
    resp: reqwest::Response,
    status: reqwest::StatusCode,
) -> serde_json::Value {
    assert_eq!(resp.status(), status);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: serde_json::Value = resp.json().await.expect("problem body");
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(),
        "{body}"
    );
    body
}

/// `POST /api/posts` with `image` as the `image` part (filename `photo.jpg`, whatever the bytes
/// are) and an optional caption.
pub async fn upload(
    edge: &TestEdge,
    token: &str,
    image: Vec<u8>,
    caption: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new().part("image", image_part(image));
    if let Some(caption) = caption {
        form = form.text("caption", caption.to_owned());
    }
    edge.client()
        .post(edge.url("/api/posts"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("send upload")
}

/// `bytes` as the form's `image` part, named `photo.jpg` whatever they are (the edge sniffs
/// the bytes and ignores the name and declared type).
pub fn image_part(bytes: Vec<u8>) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name("photo.jpg")
        .mime_str("image/jpeg")
        .expect("mime")
}

/// A small JPEG, different for each `seed` (so each post has its own image id).
pub fn small_jpeg(seed: u32) -> Vec<u8> {
    use likes_images::samples::{encode, gradient};
    encode(&gradient(64 + seed % 64, 48), image::ImageFormat::Jpeg)
}

/// Uploads a post and returns it.
pub async fn new_post(edge: &TestEdge, token: &str, seed: u32) -> likes_core::api::Post {
    let resp = upload(edge, token, small_jpeg(seed), Some(&format!("post {seed}"))).await;
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "upload");
    resp.json().await.expect("post body")
}

/// Creates `n` posts through the API; in a fresh Redis they are `p_1` to `p_n`.
pub async fn seed_posts(edge: &TestEdge, token: &str, n: u32) -> Vec<likes_core::api::Post> {
    let mut posts = Vec::new();
    for seed in 0..n {
        posts.push(new_post(edge, token, seed).await);
    }
    posts
}

/// `GET path` (with `token` as a bearer when given), asserted 200, as JSON.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    edge: &TestEdge,
    path: &str,
    token: Option<&str>,
) -> T {
    let mut req = edge.client().get(edge.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("send");
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET {path}");
    resp.json().await.expect("json body")
}

/// `PUT` (`on`) or `DELETE /api/posts/{post}/like` as the holder of `token`.
pub async fn like(edge: &TestEdge, token: &str, post: &str, on: bool) -> reqwest::Response {
    let url = edge.url(&format!("/api/posts/{post}/like"));
    let req = if on {
        edge.client().put(url)
    } else {
        edge.client().delete(url)
    };
    req.bearer_auth(token).send().await.expect("send")
}
