//! Redis lost and rehydrated, seen from the outside: users, posts and likes made through the
//! real edge host (the release binary serving `spin.toml`'s compiled components), drained by the
//! daemon, then `FLUSHALL` and `sync-daemon rehydrate`: every API answer is the same as before,
//! and the edge keeps working on top (new likes, new posts that do not reuse an id).
//! `cargo xtask test` builds the binary and the components before the tests run.

use likes_core::api::{FeedPage, LikersPage, Post, SessionResponse};
use serde_json::Value;
use testkit::edge::EdgeProcess;

use crate::support::{Env, InProcess};

const SECRET: &str = "sync-through-edge-test-secret-not-for-production";

/// The release edge host (killed on drop) and a client for it.
struct Edge {
    _process: EdgeProcess,
    base: String,
    http: reqwest::Client,
}

impl Edge {
    fn start(redis: &testkit::TestRedis) -> Self {
        let process = EdgeProcess::start(redis, SECRET);
        Self {
            base: process.base.clone(),
            _process: process,
            http: reqwest::Client::new(),
        }
    }

    async fn sign_in(&self, name: &str) -> SessionResponse {
        let resp = self
            .http
            .post(format!("{}/api/session", self.base))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("session");
        assert_eq!(resp.status(), 201);
        resp.json().await.expect("session body")
    }

    async fn upload(&self, token: &str, seed: u32) -> Post {
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(
            400 + seed * 10,
            300,
            |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, (seed * 40 % 256) as u8]),
        ));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .expect("encode");
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                reqwest::multipart::Part::bytes(jpeg.into_inner()).file_name("p.jpg"),
            )
            .text("caption", format!("post {seed}"));
        let resp = self
            .http
            .post(format!("{}/api/posts", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), 201);
        resp.json().await.expect("post body")
    }

    async fn like(&self, token: &str, post: &Post, on: bool) {
        let url = format!("{}/api/posts/{}/like", self.base, post.id);
        let req = if on {
            self.http.put(url)
        } else {
            self.http.delete(url)
        };
        let resp = req.bearer_auth(token).send().await.expect("like");
        assert_eq!(resp.status(), 200);
    }

    /// `GET path` as `token` (or anonymously): status and body (JSON, or the bytes' length
    /// and ETag for images).
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::json!({ "len": bytes.len(), "etag": etag }));
        (status, body)
    }
}

/// Every answer a client could get: all feed pages (both orders, each viewer), each post, its
/// likers pages and both image variants.
async fn snapshot(
    edge: &Edge,
    posts: &[Post],
    viewers: &[Option<&str>],
) -> Vec<(String, u16, Value)> {
    let mut out = Vec::new();
    for viewer in viewers {
        for sort in ["new", "top"] {
            let mut cursor = String::new();
            loop {
                let path = format!("/api/feed?sort={sort}&limit=2{cursor}");
                let (status, body) = edge.get(&path, *viewer).await;
                let page: FeedPage = serde_json::from_value(body.clone()).expect("feed page");
                out.push((format!("{viewer:?} {path}"), status, body));
                match page.next_cursor {
                    Some(c) => cursor = format!("&cursor={c}"),
                    None => break,
                }
            }
        }
        for post in posts {
            let path = format!("/api/posts/{}", post.id);
            let (status, body) = edge.get(&path, *viewer).await;
            out.push((format!("{viewer:?} {path}"), status, body));
        }
    }
    for post in posts {
        let mut cursor = String::new();
        loop {
            let path = format!("/api/posts/{}/likers?limit=2{cursor}", post.id);
            let (status, body) = edge.get(&path, None).await;
            let page: LikersPage = serde_json::from_value(body.clone()).expect("likers page");
            out.push((path, status, body));
            match page.next_cursor {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        for url in [&post.image.full_url, &post.image.thumb_url] {
            let (status, body) = edge.get(url, None).await;
            out.push((url.clone(), status, body));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_flushall_and_rehydrate_the_edge_api_answers_exactly_as_before() {
    let env = Env::start();
    let edge = Edge::start(&env.redis);
    let mut users = Vec::new();
    for name in ["ann", "bob", "cy", "dee", "eve"] {
        users.push(edge.sign_in(name).await);
    }
    let mut posts = Vec::new();
    for (i, author) in users.iter().take(3).enumerate() {
        posts.push(edge.upload(&author.token, i as u32).await);
    }
    // Likes, unlikes and re-likes, so counts, liked_by_me, recent likers and the `top` order
    // all carry history.
    for (u, user) in users.iter().enumerate() {
        for (p, post) in posts.iter().enumerate() {
            if (u + p) % 2 == 0 || p == 2 {
                edge.like(&user.token, post, true).await;
            }
        }
    }
    edge.like(&users[0].token, &posts[2], false).await;
    edge.like(&users[1].token, &posts[0], false).await;
    edge.like(&users[1].token, &posts[0], true).await;

    let config = env.config();
    let group = config.group.clone();
    let mut conn = env.redis.async_conn().await;
    let daemon = InProcess::spawn(config);
    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;

    let mut viewers: Vec<Option<&str>> = vec![None];
    viewers.extend(users.iter().map(|u| Some(u.token.as_str())));
    let before = snapshot(&edge, &posts, &viewers).await;
    assert!(
        before.iter().all(|(_, status, _)| *status == 200),
        "{before:?}"
    );

    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    let (status, _) = edge.get(&format!("/api/posts/{}", posts[0].id), None).await;
    assert_eq!(status, 404, "the loss is real");
    sync_daemon::rehydrate::rehydrate(&env.pg.url(), &env.redis.url_as(testkit::Role::Daemon))
        .await
        .expect("rehydrate");

    let after = snapshot(&edge, &posts, &viewers).await;
    for ((what, s1, b1), (_, s2, b2)) in before.iter().zip(&after) {
        assert_eq!((s1, b1), (s2, b2), "{what}");
    }
    assert_eq!(before.len(), after.len());

    // The edge carries on: sessions, uploads and likes get fresh ids and counts continue.
    let fay = edge.sign_in("fay").await;
    assert!(
        users.iter().all(|u| u.user.id < fay.user.id),
        "no user id reused"
    );
    let fresh = edge.upload(&fay.token, 9).await;
    assert!(posts.iter().all(|p| p.id < fresh.id), "no post id reused");
    edge.like(&fay.token, &posts[0], true).await;
    let (_, body) = edge
        .get(&format!("/api/posts/{}", posts[0].id), Some(&fay.token))
        .await;
    let post: Post = serde_json::from_value(body).expect("post");
    let before_likes = after
        .iter()
        .find(|(what, _, _)| what == &format!("None /api/posts/{}", posts[0].id))
        .map(|(_, _, b)| b["likes"].as_u64().unwrap_or(0))
        .expect("post 0 in the snapshot");
    assert_eq!(post.likes, before_likes + 1);
    assert_eq!(post.liked_by_me, Some(true));
    assert_eq!(post.recent_likers.first().map(String::as_str), Some("fay"));
}
