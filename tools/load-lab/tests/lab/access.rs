//! Who may drive the lab: only pages on the allowed origins (checked on every request before
//! any Engine.IO handshake, WebSocket and long-polling alike), only connections that present
//! the lab key, and only runs within the caps. None of this needs the real system: a run that
//! is refused never starts, and the one run these tests start aims at nothing.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;

use reqwest::StatusCode;
use testkit::socketio::Refused;

use super::*;

/// A lab with runs enabled and the default caps, aimed at ports where nothing listens.
async fn offline_lab() -> Lab {
    let target = likes_load::Config {
        edge: format!("http://127.0.0.1:{}", free_port()),
        hub: None,
        redis: format!("redis://127.0.0.1:{}", free_port()),
        database_url: None,
        sync_metrics: None,
        ..likes_load::Config::default()
    };
    let mut config = new_config(target);
    config.enabled = true;
    lab_with(config).await
}

fn with(origin: Option<&str>, auth: Option<Value>) -> Options {
    Options {
        origin: origin.map(str::to_owned),
        auth,
    }
}

/// A 403 `application/problem+json` with every RFC 9457 member.
fn assert_forbidden(status: u16, content_type: Option<&str>, body: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(content_type, Some("application/problem+json"), "{body}");
    let p: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(p["type"], "/problems/forbidden", "{p}");
    assert_eq!(p["title"], "Forbidden", "{p}");
    assert_eq!(p["status"], 403, "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
}

async fn assert_forbidden_response(r: reqwest::Response) {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.text().await.expect("body");
    assert_forbidden(status, content_type.as_deref(), &body);
}

/// A lab that nobody managed to drive: idle, nothing ever run.
async fn assert_untouched(lab: &Lab) {
    let mut c = lab.client().await;
    let s = state(&mut c).await;
    assert!(!s.running && s.run.is_none() && s.last.is_none(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_from_a_foreign_origin_is_refused_before_the_handshake() {
    let lab = offline_lab().await;
    let key = Some(json!({ "key": lab.key.expose() }));
    for origin in [
        "http://evil.example",
        "null",
        "http://localhost:3000.evil.example",
        "http://127.0.0.1:3001",
        "https://127.0.0.1:3000",
    ] {
        // Even with the right key: a foreign page must not get as far as the key check.
        match Client::connect_with(lab.addr, &with(Some(origin), key.clone())).await {
            Err(Refused::Http {
                status,
                content_type,
                body,
            }) => assert_forbidden(status, content_type.as_deref(), &body),
            Err(other) => panic!("{origin}: refused the wrong way: {other:?}"),
            Ok(_) => panic!("{origin}: a foreign origin connected"),
        }
    }
    // The app's own origins (the defaults, which `cargo xtask up` serves) connect.
    for origin in ["http://127.0.0.1:3000", "http://localhost:3000"] {
        let mut c = Client::connect_with(lab.addr, &with(Some(origin), key.clone()))
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e:?}"));
        assert!(state(&mut c).await.enabled);
    }
    assert_untouched(&lab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_from_a_foreign_origin_is_refused_before_the_handshake() {
    let lab = offline_lab().await;
    let url = format!("http://{}/socket.io/?EIO=4&transport=polling", lab.addr);
    let http = reqwest::Client::new();
    for origin in ["http://evil.example", "null"] {
        let open = http.get(&url).header("origin", origin).send().await;
        assert_forbidden_response(open.expect("handshake")).await;
        let connect = http
            .post(&url)
            .header("origin", origin)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(format!("40{}", json!({ "key": lab.key.expose() })))
            .send()
            .await;
        assert_forbidden_response(connect.expect("post")).await;
        let preflight = http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await;
        assert_forbidden_response(preflight.expect("preflight")).await;
    }
    // The app's origin gets the handshake, with CORS for it.
    let ok = http
        .get(&url)
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .expect("handshake");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:3000")
    );
    assert!(ok.text().await.expect("body").starts_with("0{"));
    // No `Origin` (not a browser): the handshake goes on; the key still decides.
    let plain = http.get(&url).send().await.expect("handshake");
    assert_eq!(plain.status(), StatusCode::OK);
    assert_untouched(&lab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_the_right_key_gets_no_control() {
    let lab = offline_lab().await;
    let key = lab.key.expose();
    let wrong_auth = [
        None,
        Some(json!({})),
        Some(json!({ "key": "" })),
        Some(json!({ "key": "0".repeat(key.len()) })),
        Some(json!({ "key": &key[..key.len() - 1] })),
        Some(json!({ "key": format!("{key}0") })),
        Some(json!({ "key": 12345 })),
        Some(json!({ "token": key })),
        Some(json!(key)),
    ];
    for auth in wrong_auth {
        let (data, mut client) =
            match Client::connect_with(lab.addr, &with(None, auth.clone())).await {
                Err(Refused::Connect { data, client }) => (data, client),
                other => panic!(
                    "{auth:?}: not refused with a connect_error: {:?}",
                    other.err()
                ),
            };
        assert!(
            data["message"].as_str().is_some_and(|m| m.contains("key")),
            "{data}"
        );
        // The socket never joined: its events reach no handler and nothing is acknowledged (the
        // server may even close the connection on an event for a namespace it never joined).
        for event in [lab::START, lab::STOP] {
            let answer = client
                .try_emit_ack(event, tiny_run(1.0), Duration::from_millis(500))
                .await;
            assert_eq!(answer, None, "{auth:?} {event}");
        }
        assert!(client.take(lab::STATE).is_empty(), "{auth:?}");
    }
    assert_untouched(&lab).await;
}

/// The `\x1e`-separated packets of one long-polling answer, without Engine.IO pings.
async fn poll(http: &reqwest::Client, url: &str) -> Vec<String> {
    let body = http
        .get(url)
        .send()
        .await
        .expect("poll")
        .text()
        .await
        .expect("poll body");
    body.split('\x1e')
        .filter(|p| *p != "2")
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_polling_too_only_the_key_connects() {
    let lab = offline_lab().await;
    let base = format!("http://{}/socket.io/?EIO=4&transport=polling", lab.addr);
    let http = reqwest::Client::new();
    for (auth, admitted) in [
        (
            json!({ "key": "not-the-key-not-the-key-not-the-key" }),
            false,
        ),
        (json!({ "key": lab.key.expose() }), true),
    ] {
        let open = poll(&http, &base).await;
        let open: Value = serde_json::from_str(open[0].trim_start_matches('0')).expect("open");
        let url = format!("{base}&sid={}", open["sid"].as_str().expect("sid"));
        let sent = http
            .post(&url)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(format!("40{auth}"))
            .send()
            .await
            .expect("connect packet");
        assert_eq!(sent.status(), StatusCode::OK);
        let mut packets = poll(&http, &url).await;
        if packets.is_empty() {
            packets = poll(&http, &url).await;
        }
        if admitted {
            assert!(packets[0].starts_with("40{"), "{auth}: {packets:?}");
            // The state may come in the next answer.
            let state = format!("42[\"{}\"", lab::STATE);
            if !packets.iter().any(|p| p.starts_with(&state)) {
                packets.extend(poll(&http, &url).await);
            }
            assert!(packets.iter().any(|p| p.starts_with(&state)), "{packets:?}");
        } else {
            assert!(packets[0].starts_with("44{"), "{packets:?}");
            assert!(packets[0].contains("key"), "{packets:?}");
        }
    }
    assert_untouched(&lab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_key_a_page_controls_the_lab() {
    let lab = offline_lab().await;
    let mut c = lab.client().await;
    assert!(state(&mut c).await.enabled);
    assert_eq!(
        error_title(c.emit_ack(lab::STOP, json!({})).await),
        "Nothing to stop"
    );
    let started = ack(c.emit_ack(lab::START, tiny_run(1.0)).await);
    assert!(started.ok, "{started:?}");
    // Nothing listens where it aims, so the run ends in an error verdict, for every page.
    let verdict = done(&mut c, Duration::from_secs(60)).await;
    assert_eq!(verdict.outcome, Outcome::Error, "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cap_refuses_an_oversized_run_and_nothing_starts() {
    let lab = offline_lab().await;
    let mut c = lab.client().await;
    let _ = state(&mut c).await;
    let cases = [
        (
            json!({ "posts": 4_294_967_295u32 }),
            "Too many posts",
            "--max-posts",
        ),
        (json!({ "rate": 1e300 }), "Rate too high", "--max-rate"),
        (
            json!({ "duration_secs": 1e15 }),
            "Run too long",
            "--max-duration-secs",
        ),
        (
            json!({ "ramp_secs": 1e300 }),
            "Run too long",
            "--max-duration-secs",
        ),
        (
            json!({ "sockets": u64::MAX }),
            "Too many sockets",
            "--max-sockets",
        ),
        (
            json!({ "users": 1_000_001 }),
            "Too many users",
            "--max-users",
        ),
        (json!({ "rate": -1 }), "Invalid settings", "rate"),
        (
            json!({ "duration_secs": -0.5 }),
            "Invalid settings",
            "duration_secs",
        ),
    ];
    for (req, title, named) in cases {
        let a = ack(c.emit_ack(lab::START, req.clone()).await);
        assert!(!a.ok && a.run.is_none(), "{req}: {a:?}");
        let e = a.error.expect("an error");
        assert_eq!(e.title, title, "{req}");
        assert!(e.detail.contains(named), "{req}: {}", e.detail);
    }
    // JSON's own out-of-range number is refused the same way, not dropped.
    let huge = c.emit_raw_ack(r#"["lab:start",{"rate":1e400}]"#).await;
    assert_eq!(error_title(huge), "Invalid settings");
    assert!(
        c.events_for(lab::PROGRESS, Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert_untouched(&lab).await;
}

/// The real binary with `args` and `env`, and where it listens.
fn binary(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> (Proc, SocketAddr) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_load-lab"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("LAB_KEY")
        .env_remove("LAB_ALLOWED_ORIGINS")
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawning load-lab");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    (Proc(child), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_checks_origins_key_and_caps_from_its_flags() {
    let key = LabKey::generate().expect("a key");
    let (_lab, addr) = binary(
        &["--enable-lab", "--max-posts", "10", "--max-rate", "50"],
        &[("LAB_KEY", key.expose())],
        Stdio::null(),
    );
    ready(&format!("http://{addr}/healthz")).await;
    let auth = Some(json!({ "key": key.expose() }));
    let foreign =
        Client::connect_with(addr, &with(Some("http://evil.example"), auth.clone())).await;
    assert!(
        matches!(foreign, Err(Refused::Http { status: 403, .. })),
        "{:?}",
        foreign.err()
    );
    let keyless = Client::connect_with(addr, &with(Some("http://127.0.0.1:3000"), None)).await;
    assert!(
        matches!(keyless, Err(Refused::Connect { .. })),
        "{:?}",
        keyless.err()
    );
    let mut c = Client::connect_with(addr, &with(Some("http://127.0.0.1:3000"), auth))
        .await
        .expect("the app's origin with the key");
    let _ = state(&mut c).await;
    let posts = ack(c.emit_ack(lab::START, json!({ "posts": 11 })).await);
    let e = posts.error.expect("refused");
    assert_eq!(e.title, "Too many posts");
    assert!(e.detail.contains("(10)"), "{}", e.detail);
    assert_eq!(
        error_title(
            c.emit_ack(lab::START, json!({ "posts": 10, "rate": 51 }))
                .await
        ),
        "Rate too high"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_key_the_binary_makes_one_and_requires_it() {
    let (mut lab, addr) = binary(&[], &[], Stdio::piped());
    let stderr = lab.0.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("key=") {
                let key: String = line[at + 4..]
                    .trim_start_matches('"')
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .collect();
                let _ = tx.send(key);
            }
        }
    });
    let key = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the generated key in the log");
    assert_eq!(key.len(), 64, "{key}");
    ready(&format!("http://{addr}/healthz")).await;
    let keyless = Client::connect_with(addr, &Options::default()).await;
    assert!(matches!(keyless, Err(Refused::Connect { .. })));
    let mut c = keyed(addr, &key).await;
    assert!(!state(&mut c).await.enabled);
}
