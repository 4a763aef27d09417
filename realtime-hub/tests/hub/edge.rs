//! The hub behind real likes: the release `edge-host` binary serving the compiled components of
//! `spin.toml` against the same throw-away Redis, likes sent over HTTP as the app sends them.
//! `cargo xtask test` builds the binary and the components before the tests run.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use likes_core::PostId;
use likes_core::api::{LikeResponse, SessionResponse, User};
use likes_core::scripts::{POST, PostCall};
use testkit::{free_port, workspace_root};

/// Components the like path needs (`spin.toml` loads them all; these two are enough to tell
/// whether `cargo xtask build` ran).
const NEEDED_COMPONENTS: &[&str] = &["session.wasm", "likes.wasm"];

/// A running edge host, killed on drop.
pub struct Edge {
    child: Child,
    pub base: String,
    http: reqwest::Client,
}

impl Edge {
    /// Starts `target/release/edge-host` on a free port against `redis_port`; fails with one
    /// line naming the command to run when the binary or the components are missing.
    pub async fn start(redis_port: u16) -> Self {
        let root = workspace_root();
        let bin = root.join("target/release/edge-host");
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo build --release -p edge-host` (cargo xtask test does)",
            bin.display()
        );
        let components = root.join("target/wasm32-wasip2/component");
        for c in NEEDED_COMPONENTS {
            let path: PathBuf = components.join(c);
            assert!(
                path.is_file(),
                "{} is missing: run `cargo xtask build` (cargo xtask test does)",
                path.display()
            );
        }
        let port = free_port();
        let child = Command::new(&bin)
            .current_dir(&root)
            .arg("--manifest")
            .arg(root.join("spin.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--variable", "session_secret=hub-test-secret"])
            .args(["--variable", &format!("redis_host=127.0.0.1:{redis_port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start edge-host");
        let edge = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "edge-host did not listen in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        edge
    }

    /// `POST /api/session`: a new user and its token.
    pub async fn session(&self, name: &str) -> (String, User) {
        let r = self
            .http
            .post(format!("{}/api/session", self.base))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("POST /api/session");
        assert_eq!(r.status(), 201, "POST /api/session");
        let s: SessionResponse = r.json().await.expect("session body");
        (s.token, s.user)
    }

    /// `PUT` (like) or `DELETE` (unlike) `/api/posts/{post}/like`.
    pub async fn like(&self, token: &str, post: PostId, on: bool) -> LikeResponse {
        let url = format!("{}/api/posts/{post}/like", self.base);
        let req = if on {
            self.http.put(url)
        } else {
            self.http.delete(url)
        };
        let r = req.bearer_auth(token).send().await.expect("like request");
        assert_eq!(r.status(), 200, "like {post} (on = {on})");
        r.json().await.expect("like body")
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the post record with the real post script, as `POST /api/posts` does after storing
/// the image, so the edge accepts likes on it.
pub async fn create_post(
    conn: &mut redis::aio::MultiplexedConnection,
    post: PostId,
    author: &User,
) {
    let call = PostCall {
        post,
        author,
        caption: "hub test",
        image: "0000000000000000",
        width: 1,
        height: 1,
        created_at: "2026-11-28T00:00:00Z",
    };
    let _: i64 = redis::cmd("EVAL")
        .arg(POST.source)
        .arg(call.keys().len())
        .arg(&call.keys())
        .arg(&call.args())
        .query_async(conn)
        .await
        .expect("post script");
}

/// A post id well away from the ones other tests use in the same Redis.
pub fn fresh_post(n: u64) -> PostId {
    PostId::new(900_000 + n).expect("nonzero")
}
