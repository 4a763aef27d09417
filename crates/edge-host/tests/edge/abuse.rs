//! Abuse limits (likes per user; sessions and uploads per client address) and the session
//! secret's checks, on both runtimes: every refusal is a 429 problem with `Retry-After`, and a
//! refused request changes nothing.

use reqwest::StatusCode;
use rstest::rstest;

use crate::support::{
    Runtime, TestEdge, TestRedis, assert_problem, like, new_post, sign_in, small_jpeg, upload,
    workspace_root,
};

/// `Retry-After` of a 429, checked to be within the one-minute window.
fn retry_after(resp: &reqwest::Response) -> u64 {
    let secs: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&secs), "{secs}");
    secs
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn likes_over_the_per_user_limit_get_429_and_change_nothing(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_with(rt, &redis, &[("likes_per_minute", "3")]).await else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    let bob = sign_in(&edge, "bob").await;
    let post = new_post(&edge, &ann.token, 1).await;

    // Likes and unlikes share the budget.
    for on in [true, false, true] {
        assert_eq!(
            like(&edge, &ann.token, &post.id.to_string(), on)
                .await
                .status(),
            200
        );
    }
    let refused = like(&edge, &ann.token, &post.id.to_string(), false).await;
    retry_after(&refused);
    let problem = assert_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("at most 3 likes and unlikes per minute")),
        "{problem}"
    );

    // The refused unlike did nothing, and the budget is per user.
    let resp = like(&edge, &bob.token, &post.id.to_string(), true).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("like body");
    assert_eq!(body["likes"], 2, "ann's like stands and bob's counts");
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn sessions_over_the_per_address_limit_get_429_and_create_no_user(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_with(rt, &redis, &[("sessions_per_minute", "2")]).await else {
        return;
    };
    sign_in(&edge, "ann").await;
    sign_in(&edge, "bob").await;
    let refused = edge
        .client()
        .post(edge.url("/api/session"))
        .json(&serde_json::json!({ "name": "cy" }))
        .send()
        .await
        .expect("send");
    retry_after(&refused);
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    let mut conn = redis.conn();
    let users: u64 = redis::cmd("GET")
        .arg(likes_core::keys::USER_SEQ)
        .query(&mut conn)
        .expect("GET user seq");
    assert_eq!(users, 2, "the refused sign-in made no user");
}

/// A sign-in that arrives with `X-Forwarded-For: forwarded_for`, as through a proxy.
async fn sign_in_forwarded(edge: &TestEdge, name: &str, forwarded_for: &str) -> StatusCode {
    edge.client()
        .post(edge.url("/api/session"))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .expect("send")
        .status()
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let vars = [
        ("sessions_per_minute", "1"),
        ("trusted_proxies", "127.0.0.0/8, ::1"),
    ];
    let Some(edge) = TestEdge::app_with(rt, &redis, &vars).await else {
        return;
    };
    assert_eq!(
        sign_in_forwarded(&edge, "ann", "203.0.113.1").await,
        StatusCode::CREATED
    );
    // What a client writes left of the proxy's entry does not make it somebody else.
    assert_eq!(
        sign_in_forwarded(&edge, "bob", "203.0.113.1, 203.0.113.2").await,
        StatusCode::CREATED
    );
    assert_eq!(
        sign_in_forwarded(&edge, "cy", "203.0.113.2, 203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "203.0.113.1's budget is spent"
    );
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_buys_no_budget(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_with(rt, &redis, &[("sessions_per_minute", "1")]).await else {
        return;
    };
    assert_eq!(
        sign_in_forwarded(&edge, "ann", "203.0.113.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        sign_in_forwarded(&edge, "bob", "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS,
        "with no trusted proxy, every sign-in counts against the peer's address"
    );
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn a_new_user_on_the_same_address_shares_the_address_upload_limit(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_with(rt, &redis, &[("address_uploads_per_minute", "1")]).await
    else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    new_post(&edge, &ann.token, 1).await;
    // A fresh session does not buy a fresh budget.
    let bob = sign_in(&edge, "bob").await;
    let refused = upload(&edge, &bob.token, small_jpeg(2), None).await;
    retry_after(&refused);
    let problem = assert_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("uploads from one address")),
        "{problem}"
    );
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn the_published_dev_secret_works_only_in_dev_mode(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let dev = likes_core::session::DEV_SECRET;
    let Some(edge) =
        TestEdge::app_with(rt, &redis, &[("session_secret", dev), ("dev_mode", "true")]).await
    else {
        return;
    };
    let ann = sign_in(&edge, "ann").await;
    let me = edge
        .client()
        .get(edge.url("/api/me"))
        .bearer_auth(&ann.token)
        .send()
        .await
        .expect("send");
    assert_eq!(me.status(), 200);
}

/// Spin has no start-up hook, so there each component refuses a weak secret per request: a 500
/// problem (the log says why), no token issued, and no token signed with it accepted.
#[tokio::test]
async fn under_spin_a_weak_or_public_secret_signs_and_accepts_nothing() {
    let redis = TestRedis::start();
    for secret in ["short", likes_core::session::DEV_SECRET] {
        let Some(edge) =
            TestEdge::app_with(Runtime::Spin, &redis, &[("session_secret", secret)]).await
        else {
            return;
        };
        let resp = edge
            .client()
            .post(edge.url("/api/session"))
            .json(&serde_json::json!({ "name": "eve" }))
            .send()
            .await
            .expect("send");
        assert_problem(resp, StatusCode::INTERNAL_SERVER_ERROR).await;
        let user = likes_core::UserId::new(1).expect("id");
        let forged = likes_core::session::issue(secret.as_bytes(), user, "eve", 1, 1 << 40);
        let resp = edge
            .client()
            .get(edge.url("/api/me"))
            .bearer_auth(&forged)
            .send()
            .await
            .expect("send");
        assert_problem(resp, StatusCode::INTERNAL_SERVER_ERROR).await;
    }
}

/// Our host checks the secret before it serves anything, and says why in one line.
#[test]
fn the_host_refuses_to_start_with_a_weak_or_public_secret() {
    for secret in ["short", likes_core::session::DEV_SECRET] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-host"))
            .arg("--manifest")
            .arg(workspace_root().join("spin.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--variable", &format!("session_secret={secret}")])
            .output()
            .expect("run edge-host");
        assert!(!out.status.success(), "started with {secret:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = if secret == "short" {
            "at least 32"
        } else {
            "dev_mode=true"
        };
        assert!(stderr.contains(line), "{stderr}");
    }
}
