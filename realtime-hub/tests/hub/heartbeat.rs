//! The Engine.IO heartbeat (run by the hub's patched engineioxide, see `vendor/README.md`): the
//! hub pings every client, keeps the ones that answer and closes the ones that stop.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testkit::TestRedis;
use testkit::socketio::Client;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::support::Hub;

const PING_INTERVAL: Duration = Duration::from_millis(200);
const PING_TIMEOUT: Duration = Duration::from_millis(300);

async fn start_hub(redis: &TestRedis) -> Hub {
    Hub::start(&redis.url_as(testkit::Role::Hub), |c| {
        c.ping_interval = PING_INTERVAL;
        c.ping_timeout = PING_TIMEOUT;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_pings_stays_connected() {
    let redis = TestRedis::start();
    let hub = start_hub(&redis).await;
    let mut c = Client::connect(hub.addr).await;
    // Many ping rounds; the test client answers each ping while it waits.
    assert!(
        !c.closed_within(6 * (PING_INTERVAL + PING_TIMEOUT)).await,
        "a client answering pings was disconnected"
    );
    let ack = c.emit_ack("subscribe", json!({"posts": ["p_1"]})).await;
    assert_eq!(ack, json!({"counts": {"p_1": 0}}));
    assert_eq!(hub.metric("realtime_hub_sockets").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_disconnected() {
    let redis = TestRedis::start();
    let hub = start_hub(&redis).await;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", hub.addr);
    let (mut ws, _) = connect_async(url).await.expect("websocket handshake");

    let open = next_text(&mut ws).await.expect("open packet");
    let handshake: Value = serde_json::from_str(&open[1..]).expect("open packet JSON");
    assert_eq!(handshake["pingInterval"], json!(200));
    assert_eq!(handshake["pingTimeout"], json!(300));
    ws.send(Message::Text("40".into())).await.expect("connect");
    // The first ping goes out as the session opens, so it may come before the connect reply.
    let mut pinged = None;
    loop {
        let frame = next_text(&mut ws).await.expect("connect packet");
        if frame == "2" {
            pinged.get_or_insert_with(tokio::time::Instant::now);
        } else {
            assert!(frame.starts_with("40"), "got {frame}");
            break;
        }
    }

    // The hub pings; this client never answers.
    let pinged = match pinged {
        Some(at) => at,
        None => {
            let ping = tokio::time::timeout(4 * PING_INTERVAL, next_text(&mut ws))
                .await
                .expect("a ping within the interval")
                .expect("connection open at the first ping");
            assert_eq!(ping, "2");
            tokio::time::Instant::now()
        }
    };

    // Nothing but a close (or more pings) may follow; the connection ends after the timeout.
    let ended = tokio::time::timeout(10 * PING_TIMEOUT, async {
        while let Some(frame) = next_text(&mut ws).await {
            assert!(frame == "2" || frame == "1", "unexpected frame {frame}");
        }
    })
    .await;
    assert!(ended.is_ok(), "the silent client was never disconnected");
    assert!(
        pinged.elapsed() >= PING_TIMEOUT - Duration::from_millis(50),
        "disconnected {:?} after the ping, before the {PING_TIMEOUT:?} timeout",
        pinged.elapsed()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.metric("realtime_hub_sockets").await != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the socket is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next text frame; `None` once the connection is closed or broken.
async fn next_text<S>(ws: &mut S) -> Option<String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
