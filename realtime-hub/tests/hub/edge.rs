//! The hub behind real likes: the release `edge-host` binary serving the compiled components of
//! `spin.toml` against the same throw-away Redis, likes sent over HTTP as the app sends them.
//! `cargo xtask test` builds the binary and the components before the tests run.

use likes_core::PostId;
use likes_core::api::{LikeResponse, SessionResponse, User};
use likes_core::scripts::{POST, PostCall};
use testkit::edge::EdgeProcess;

/// A running edge host (killed on drop) and a client for it.
pub struct Edge {
    _process: EdgeProcess,
    pub base: String,
    http: reqwest::Client,
}

impl Edge {
    /// Starts `target/release/edge-host` on a free port against `redis`.
    pub async fn start(redis: &testkit::TestRedis) -> Self {
        Self::start_at(redis.edge_variables()).await
    }

    /// [`Edge::start`] with the edge's Redis variables given (a cluster's, for instance).
    pub async fn start_at(variables: [(&'static str, String); 3]) -> Self {
        let process =
            EdgeProcess::start_at(variables, "realtime-hub-test-secret-not-for-production");
        Self {
            base: process.base.clone(),
            _process: process,
            http: reqwest::Client::new(),
        }
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
        let r = self.try_like(token, post, on).await;
        assert_eq!(r.status(), 200, "like {post} (on = {on})");
        r.json().await.expect("like body")
    }

    /// The like request and its response, whatever its status.
    pub async fn try_like(&self, token: &str, post: PostId, on: bool) -> reqwest::Response {
        let url = format!("{}/api/posts/{post}/like", self.base);
        let req = if on {
            self.http.put(url)
        } else {
            self.http.delete(url)
        };
        req.bearer_auth(token).send().await.expect("like request")
    }
}

/// Creates the post record with the real post script, as `POST /api/posts` does after storing
/// the image, so the edge accepts likes on it.
pub async fn create_post(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
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
