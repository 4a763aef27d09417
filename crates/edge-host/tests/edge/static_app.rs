//! The static app component, on both runtimes: MIME types, cache policy, SPA fallback, and
//! path traversal (sent as raw bytes, because HTTP clients normalise `..` before sending).

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rstest::rstest;

use crate::support::{Runtime, TestEdge, TestRedis, fixture};

/// `fixtures/static.toml` on `rt` (`None`: skipped, see [`TestEdge::start_on`]).
async fn site(rt: Runtime) -> Option<TestEdge> {
    TestEdge::start_on(rt, &fixture("static.toml"), &[]).await
}

/// Sends `GET <raw_path>` exactly as written and returns (status, body).
async fn raw_get(edge: &TestEdge, raw_path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(edge.addr())
        .await
        .expect("connect");
    let request =
        format!("GET {raw_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn files_are_served_with_their_type_and_cache_policy(#[case] rt: Runtime) {
    let Some(edge) = site(rt).await else {
        return;
    };
    let cases = [
        ("/", "text/html; charset=utf-8", "no-cache", "shell"),
        (
            "/assets/app-3f9a1c2e.wasm",
            "application/wasm",
            "public, max-age=31536000, immutable",
            "asm",
        ),
        (
            "/assets/app.js",
            "text/javascript; charset=utf-8",
            "public, max-age=300",
            "console.log",
        ),
        (
            "/assets/style.css",
            "text/css; charset=utf-8",
            "public, max-age=300",
            "body",
        ),
        ("/sub/", "text/html; charset=utf-8", "no-cache", "sub"),
    ];
    for (path, mime, cache, body) in cases {
        let resp = edge.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert_eq!(header("content-type"), mime, "{path}");
        assert_eq!(header("cache-control"), cache, "{path}");
        let text = String::from_utf8_lossy(&resp.bytes().await.expect("body")).into_owned();
        assert!(text.contains(body), "{path}: {text}");
    }
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn app_routes_get_the_shell_and_missing_assets_are_404(#[case] rt: Runtime) {
    let Some(edge) = site(rt).await else {
        return;
    };
    for route in ["/p/42", "/upload", "/feed/top"] {
        let resp = edge.get(route).await;
        assert_eq!(resp.status(), StatusCode::OK, "{route}");
        assert!(
            resp.text().await.expect("text").contains("shell"),
            "{route} serves index.html"
        );
    }
    // Missing assets, and API paths no component claims, are 404s rather than the shell.
    for missing in ["/assets/missing.js", "/api", "/api/", "/api/nope/deeper"] {
        let resp = edge.get(missing).await;
        crate::support::expect_problem(resp, 404).await;
    }
    let resp = edge
        .client()
        .post(edge.url("/"))
        .send()
        .await
        .expect("send");
    crate::support::expect_problem(resp, 405).await;
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn traversal_never_leaves_the_mount(#[case] rt: Runtime) {
    let Some(edge) = site(rt).await else {
        return;
    };
    for attempt in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/assets/%00.js",
    ] {
        let (status, text) = raw_get(&edge, attempt).await;
        assert!(status == 404 || status == 400, "{attempt}: status {status}");
        assert!(
            !text.contains("TOP SECRET") && !text.contains("root:"),
            "{attempt} leaked: {text}"
        );
    }
}

#[rstest]
#[case::host(Runtime::Host)]
#[case::spin(Runtime::Spin)]
#[tokio::test]
async fn the_real_manifest_serves_the_app_beside_the_api(#[case] rt: Runtime) {
    let redis = TestRedis::start();
    let Some(edge) = TestEdge::app_on(rt, &redis).await else {
        return;
    };
    let home = edge.get("/").await;
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.text().await.expect("text").contains("<html"));
    let deep = edge.get("/p/7").await;
    assert_eq!(deep.status(), StatusCode::OK);
    let api = edge.get("/api/health").await;
    assert_eq!(
        api.status(),
        StatusCode::OK,
        "API routes win over the app's wildcard"
    );
}
