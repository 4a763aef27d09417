//! The edge API end to end: the real components from spin.toml in the real host, against a
//! real Redis. Each test gets its own Redis and host.

use std::collections::BTreeSet;

use futures::StreamExt;
use likes_core::api::{LikeResponse, LikersPage, SessionResponse, User};
use likes_core::keys::{self, PostKeys, post_field};
use likes_core::{PostId, UserId, session};
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{ShardSubscription, TestRedis};

use rstest::rstest;

use crate::support::{
    Runtime, TEST_SECRET, TestEdge, assert_problem, get_json, like, seed_posts, sign_in,
};

/// The abuse limits, off: these tests are about counting exactly under concurrency, which
/// takes more likes and sign-ins from one address than the limits allow (see `abuse.rs`).
const LIMITS_OFF: &[(&str, &str)] = &[("likes_per_minute", "0"), ("sessions_per_minute", "0")];

async fn like_ok(edge: &TestEdge, token: &str, post: &str, on: bool) -> LikeResponse {
    let resp = like(edge, token, post, on).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.expect("like body")
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn sessions_create_a_new_user_each_time_and_me_echoes_it(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let a = sign_in(&edge, "  ann  ").await;
    let b = sign_in(&edge, "ann").await;
    assert_ne!(a.user.id, b.user.id);
    assert_eq!(a.user.name, "ann");
    let me: User = edge
        .client()
        .get(edge.url("/api/me"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("me");
    assert_eq!(me, a.user);
    let claims =
        session::verify(TEST_SECRET.as_bytes(), &a.token, now()).expect("a standard HS256 token");
    assert_eq!(claims.exp - claims.iat, session::DEFAULT_TTL_SECS);
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn bad_session_requests_get_clear_errors(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let c = edge.client();
    let malformed = c
        .post(edge.url("/api/session"))
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await;
    assert_problem(malformed.expect("send"), StatusCode::BAD_REQUEST).await;
    for bad in [
        "",
        "   ",
        &"x".repeat(33),
        "\u{202e}\u{200b}",
        "\u{200b}\u{feff}",
    ] {
        let resp = c
            .post(edge.url("/api/session"))
            .json(&json!({ "name": bad }))
            .send()
            .await
            .expect("send");
        assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let resp = edge.get("/api/session").await;
    assert_eq!(
        resp.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    let resp = c
        .post(edge.url("/api/session"))
        .header("content-type", "text/plain")
        .body(r#"{"name":"ann"}"#)
        .send()
        .await
        .expect("send");
    assert_problem(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // Over the component's JSON limit, and over the host's body limit: 413 either way, on
    // every runtime (Spin has no body limit of its own).
    for size in [likes_core::api::MAX_JSON_BODY_BYTES + 1, 11 * 1024 * 1024] {
        let resp = c
            .post(edge.url("/api/session"))
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
            .await
            .expect("send");
        assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
    }
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn missing_forged_and_expired_tokens_are_401(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let user = UserId::new(1).expect("nonzero");
    let forged = session::issue(b"not-the-secret", user, "eve", now(), 3600);
    let expired = session::issue(TEST_SECRET.as_bytes(), user, "eve", now() - 7200, 3600);
    let c = edge.client();
    for token in [
        None,
        Some(forged.as_str()),
        Some(expired.as_str()),
        Some("garbage"),
    ] {
        for req in [
            c.put(edge.url("/api/posts/p_1/like")),
            c.delete(edge.url("/api/posts/p_1/like")),
            c.get(edge.url("/api/me")),
        ] {
            let req = match token {
                Some(t) => req.bearer_auth(t),
                None => req,
            };
            assert_problem(req.send().await.expect("send"), StatusCode::UNAUTHORIZED).await;
        }
        // Optional auth: a present but invalid token is still refused.
        if let Some(t) = token {
            let resp = c
                .get(edge.url("/api/posts/p_1/likers"))
                .bearer_auth(t)
                .send()
                .await
                .expect("send");
            assert_problem(resp, StatusCode::UNAUTHORIZED).await;
        }
    }
    let count: Option<i64> = redis
        .async_conn()
        .await
        .hget(PostKeys::new(post(1)).post, post_field::LIKES)
        .await
        .expect("hget");
    assert_eq!(count, None, "no refused request wrote anything");
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn likes_are_idempotent_and_unlike_undoes_them(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    seed_posts(&edge, &ann.token, 1).await;
    assert_eq!(
        like_ok(&edge, &ann.token, "p_1", true).await,
        LikeResponse {
            post_id: post(1),
            likes: 1,
            liked: true
        }
    );
    assert_eq!(like_ok(&edge, &ann.token, "p_1", true).await.likes, 1);
    assert_eq!(
        like_ok(&edge, &ann.token, "p_1", false).await,
        LikeResponse {
            post_id: post(1),
            likes: 0,
            liked: false
        }
    );
    assert_eq!(like_ok(&edge, &ann.token, "p_1", false).await.likes, 0);
    for unknown in ["p_zz", "p_2", "p_0"] {
        let body = assert_problem(
            like(&edge, &ann.token, unknown, true).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap_or("").contains(unknown),
            "{body}"
        );
    }
    let stray: Option<i64> = redis
        .async_conn()
        .await
        .hget(PostKeys::new(post(2)).post, post_field::LIKES)
        .await
        .expect("hget");
    assert_eq!(stray, None, "a like on an unknown post writes nothing");
    let resp = edge
        .client()
        .post(edge.url("/api/posts/p_1/like"))
        .bearer_auth(&ann.token)
        .send()
        .await
        .expect("send");
    assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn a_thousand_concurrent_likes_by_one_user_count_once(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_with(rt, &redis, LIMITS_OFF).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    seed_posts(&edge, &ann.token, 7).await;
    let results: Vec<LikeResponse> = futures::stream::iter(0..1000)
        .map(|_| like_ok(&edge, &ann.token, "p_7", true))
        .buffer_unordered(200)
        .collect()
        .await;
    assert!(results.iter().all(|r| r.likes == 1 && r.liked));
    let mut conn = redis.async_conn().await;
    let entries: u64 = conn
        .xlen(PostKeys::new(post(7)).stream)
        .await
        .expect("xlen");
    assert_eq!(
        entries, 2,
        "the post's creation, then one state change = one stream entry"
    );
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn a_thousand_distinct_users_concurrently_count_a_thousand(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_with(rt, &redis, LIMITS_OFF).await else {
        return;
    };
    let edge_ref = &edge;
    let author = sign_in(&edge, "author").await;
    seed_posts(&edge, &author.token, 3).await;
    let users: Vec<SessionResponse> = futures::stream::iter(0..1000)
        .map(|i| async move { sign_in(edge_ref, &format!("user{i}")).await })
        .buffer_unordered(100)
        .collect()
        .await;
    let results: Vec<LikeResponse> = futures::stream::iter(&users)
        .map(|u| like_ok(&edge, &u.token, "p_3", true))
        .buffer_unordered(200)
        .collect()
        .await;
    assert_eq!(results.iter().map(|r| r.likes).max(), Some(1000));
    let mut seen: Vec<u64> = results.iter().map(|r| r.likes).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=1000).collect::<Vec<_>>(),
        "each like observed a distinct count"
    );
    let count: i64 = redis
        .async_conn()
        .await
        .hget(PostKeys::new(post(3)).post, post_field::LIKES)
        .await
        .expect("hget");
    assert_eq!(count, 1000);
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn stream_entries_and_messages_match_state_changes_exactly(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    let bob = sign_in(&edge, "bob").await;
    seed_posts(&edge, &ann.token, 5).await;
    let mut sub =
        ShardSubscription::start(&redis.url(), &keys::Channel::Like.all().collect::<Vec<_>>())
            .await;

    // (who, on, expected count, changes state?)
    let script = [
        (&ann, true, 1, true),
        (&ann, true, 1, false),
        (&bob, true, 2, true),
        (&ann, false, 1, true),
        (&ann, false, 1, false),
        (&bob, false, 0, true),
    ];
    for (who, on, expect, _) in script {
        assert_eq!(like_ok(&edge, &who.token, "p_5", on).await.likes, expect);
    }
    let changes: Vec<_> = script.iter().filter(|s| s.3).collect();

    let mut got = Vec::new();
    for _ in 0..changes.len() {
        let msg = sub
            .next(std::time::Duration::from_secs(5))
            .await
            .expect("message in time");
        assert_eq!(msg.get_channel_name(), PostKeys::new(post(5)).like_channel);
        let m: likes_core::events::LikeMessage =
            serde_json::from_slice(msg.get_payload_bytes()).expect("like_event json");
        assert_eq!(m.post_id, post(5));
        got.push(m.likes);
    }
    assert_eq!(got, changes.iter().map(|c| c.2).collect::<Vec<_>>());
    let extra = sub.next(std::time::Duration::from_millis(300)).await;
    assert!(extra.is_none(), "no message for repeated likes/unlikes");

    let mut conn = redis.async_conn().await;
    let entries: redis::streams::StreamRangeReply = conn
        .xrange_all(PostKeys::new(post(5)).stream)
        .await
        .expect("xrange");
    let decoded: Vec<_> = testkit::stream_events(&entries)
        .into_iter()
        // The shard's stream also carries the post's creation.
        .filter(|e| !matches!(e, likes_core::events::StreamEvent::Post(_)))
        .collect();
    assert_eq!(decoded.len(), changes.len());
    for (event, (who, on, count, _)) in decoded.iter().zip(&changes) {
        match event {
            likes_core::events::StreamEvent::Like { user, likes, .. } => {
                assert!(*on && *user == who.user.id && *likes == *count)
            }
            likes_core::events::StreamEvent::Unlike { user, likes, .. } => {
                assert!(!*on && *user == who.user.id && *likes == *count)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn likers_pages_list_every_liker_exactly_once(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_with(rt, &redis, LIMITS_OFF).await else {
        return;
    };
    let author = sign_in(&edge, "author").await;
    seed_posts(&edge, &author.token, 9).await;
    let mut users = Vec::new();
    for i in 0..120 {
        users.push(sign_in(&edge, &format!("liker{i}")).await);
    }
    for u in &users {
        like_ok(&edge, &u.token, "p_9", true).await;
    }
    // Two users leave: they must not be listed.
    like_ok(&edge, &users[3].token, "p_9", false).await;
    like_ok(&edge, &users[77].token, "p_9", false).await;

    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = edge.url("/api/posts/p_9/likers?limit=50");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: LikersPage = edge
            .client()
            .get(url)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("page");
        pages += 1;
        listed.extend(page.users);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<User> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 77)
        .map(|(_, u)| u.user.clone())
        .collect();
    let ids: Vec<UserId> = listed.iter().map(|u| u.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "stable ascending order, no repeats"
    );
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), listed.len());
    let mut expected_sorted = expected;
    expected_sorted.sort_by_key(|u| u.id);
    assert_eq!(listed, expected_sorted);

    for bad in ["limit=0", "limit=201", "cursor=xyz"] {
        let resp = edge.get(&format!("/api/posts/p_9/likers?{bad}")).await;
        assert_problem(resp, StatusCode::BAD_REQUEST).await;
    }
    // A post that does not exist has no likers page (the contract's 404), even when someone
    // tried to like it.
    assert_problem(
        like(&edge, &users[0].token, "p_999", true).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for unknown in ["/api/posts/p_999/likers", "/api/posts/nope/likers"] {
        assert_problem(edge.get(unknown).await, StatusCode::NOT_FOUND).await;
    }
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn scripts_survive_a_flushed_script_cache(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    seed_posts(&edge, &ann.token, 2).await;
    assert_eq!(like_ok(&edge, &ann.token, "p_2", true).await.likes, 1);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis.async_conn().await)
        .await
        .expect("flush");
    let bob = sign_in(&edge, "bob").await;
    assert_eq!(
        like_ok(&edge, &bob.token, "p_2", true).await.likes,
        2,
        "EVALSHA falls back to EVAL after NOSCRIPT"
    );
}

/// Redis answers `BUSY` while a long script runs (as it answers `LOADING` while it reads its
/// data after a restart): every route says 503 with `Retry-After`, never 500, and serves again
/// once Redis does.
#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_redis_is_503_with_retry_after_on_every_route(#[case] rt: Runtime) {
    let redis = TestRedis::start_with(&["--busy-reply-threshold", "20"]);
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    seed_posts(&edge, &ann.token, 1).await;
    let busy = {
        let mut conn = redis.conn();
        std::thread::spawn(move || {
            let spin_for_two_seconds = "local t0 = redis.call('TIME') \
                 while true do local t = redis.call('TIME') \
                 if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 2000000 then return 1 end end";
            redis::cmd("EVAL")
                .arg(spin_for_two_seconds)
                .arg(0)
                .query::<i64>(&mut conn)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let c = edge.client();
    let answers = [
        like(&edge, &ann.token, "p_1", true).await,
        edge.get("/api/posts/p_1/likers").await,
        edge.get("/api/feed").await,
        edge.get("/api/health").await,
        c.post(edge.url("/api/session"))
            .json(&json!({ "name": "bob" }))
            .send()
            .await
            .expect("send"),
    ];
    for resp in answers {
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let url = resp.url().clone();
        assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(retry_after.as_deref(), Some("1"), "{url}");
    }
    assert_eq!(busy.join().expect("join").expect("the long script"), 1);
    assert_eq!(like_ok(&edge, &ann.token, "p_1", true).await.likes, 1);
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn health_follows_redis_and_config_serves_the_realtime_url(#[case] rt: Runtime) {
    let mut redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    assert_eq!(edge.get("/api/health").await.status(), StatusCode::OK);
    let config: Value = get_json(&edge, "/api/config", None).await;
    assert!(
        config["realtime_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http")),
        "{config}"
    );
    redis.kill();
    assert_problem(
        edge.get("/api/health").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let token = session::issue(
        TEST_SECRET.as_bytes(),
        UserId::new(1).expect("nonzero"),
        "ann",
        now(),
        60,
    );
    assert_problem(
        like(&edge, &token, "p_1", true).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
}

/// The lab key goes to the app's own pages only: with `lab_url`, `no-store`, and without any
/// CORS header, so a page on another origin cannot read it.
#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn config_gives_the_lab_key_only_with_the_lab_and_only_same_origin(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let key = "edge-test-lab-key-0123456789abcdef";
    let lab = [("lab_url", "http://127.0.0.1:3004"), ("lab_key", key)];
    let Some(edge) = TestEdge::app_with(rt, &redis, &lab).await else {
        return;
    };
    let resp = edge
        .client()
        .get(edge.url("/api/config"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()
            .keys()
            .all(|h| !h.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let config: Value = resp.json().await.expect("json");
    assert_eq!(config["lab_url"], "http://127.0.0.1:3004", "{config}");
    assert_eq!(config["lab_key"], key, "{config}");
    drop(edge);

    // A key without a lab stays on the server.
    let Some(edge) = TestEdge::app_with(rt, &redis, &[("lab_key", key)]).await else {
        return;
    };
    let config: Value = get_json(&edge, "/api/config", None).await;
    assert!(
        config.get("lab_url").is_none() && config.get("lab_key").is_none(),
        "{config}"
    );
}

fn post(raw: u64) -> PostId {
    PostId::new(raw).expect("nonzero")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The likes component writes its responses itself (`edge_kit::wire`): each carries its exact
/// length, so the host sends it in one piece rather than chunked.
#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn like_responses_carry_their_exact_length(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let author = sign_in(&edge, "author").await;
    seed_posts(&edge, &author.token, 1).await;
    for (token, status) in [
        (author.token.as_str(), StatusCode::OK),
        ("forged", StatusCode::UNAUTHORIZED),
    ] {
        let resp = like(&edge, token, "p_1", true).await;
        assert_eq!(resp.status(), status);
        assert!(resp.headers().get("transfer-encoding").is_none());
        let length: usize = resp.headers()["content-length"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("a number");
        let body = resp.bytes().await.expect("body");
        assert_eq!(length, body.len());
        assert!(serde_json::from_slice::<Value>(&body).is_ok(), "JSON body");
    }
}
