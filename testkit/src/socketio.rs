//! A minimal Socket.IO v4 client for tests (the realtime hub's and the load lab's) over raw
//! Engine.IO v4 WebSocket frames: enough to connect to namespace `/`, emit with acks, and
//! collect events. Frames: `0{…}` open, `2`/`3` ping/pong,
//! `40` connect, `42[…]` event, `42<id>[…]` event wanting an ack, `43<id>[…]` ack.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// One Socket.IO connection on namespace `/`.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: VecDeque<(String, Value)>,
    acks: HashMap<u64, Value>,
    closed: bool,
}

impl Client {
    /// Connects over WebSocket and joins namespace `/`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = connect_async(url).await.expect("websocket handshake");
        let mut c = Self {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            acks: HashMap::new(),
            closed: false,
        };
        let open = c.recv_frame().await.expect("engine.io open packet");
        assert!(open.starts_with('0'), "expected an open packet, got {open}");
        c.send_frame("40").await;
        let connected = c.recv_frame().await.expect("socket.io connect packet");
        assert!(
            connected.starts_with("40"),
            "expected a connect packet, got {connected}"
        );
        c
    }

    pub async fn send_frame(&mut self, frame: &str) {
        self.ws
            .send(Message::Text(frame.to_owned().into()))
            .await
            .expect("send frame");
    }

    /// The next text frame, answering pings on the way; `None` once the connection closed.
    async fn recv_frame(&mut self) -> Option<String> {
        while !self.closed {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let t = t.to_string();
                    if t == "2" {
                        self.send_frame("3").await;
                        continue;
                    }
                    return Some(t);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => self.closed = true,
                Some(Ok(_)) => {}
            }
        }
        None
    }

    /// Reads one frame and files it as an event or an ack. False once closed.
    async fn pump(&mut self) -> bool {
        let Some(frame) = self.recv_frame().await else {
            return false;
        };
        if frame.starts_with("41") {
            self.closed = true;
            return false;
        }
        if let Some(rest) = frame.strip_prefix("42") {
            let body = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let v: Value = serde_json::from_str(body).expect("event json");
            let name = v[0].as_str().expect("event name").to_owned();
            self.events.push_back((name, v[1].clone()));
        } else if let Some(rest) = frame.strip_prefix("43") {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let body = &rest[digits.len()..];
            let v: Value = serde_json::from_str(body).expect("ack json");
            self.acks
                .insert(digits.parse().expect("ack id"), v[0].clone());
        }
        true
    }

    /// Emits `event` with `data` and waits (5 s at most) for its ack.
    pub async fn emit_ack(&mut self, event: &str, data: Value) -> Value {
        let body = json!([event, data]).to_string();
        self.emit_raw_ack(&body).await
    }

    /// Emits a raw event array (e.g. a malformed payload) and waits for its ack.
    pub async fn emit_raw_ack(&mut self, array: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&format!("42{id}{array}")).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = self.acks.remove(&id) {
                return v;
            }
            match tokio::time::timeout_at(deadline, self.pump()).await {
                Ok(true) => {}
                Ok(false) => panic!("connection closed while waiting for ack {id}"),
                Err(_) => panic!("no ack {id} within 5 s"),
            }
        }
    }

    /// The next `name` event within `wait`.
    pub async fn next_event(&mut self, name: &str, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(pos) = self.events.iter().position(|(n, _)| n == name) {
                return self.events.remove(pos).map(|(_, v)| v);
            }
            match tokio::time::timeout_at(deadline, self.pump()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
        }
    }

    /// The `name` events received so far, without waiting for more.
    pub fn take(&mut self, name: &str) -> Vec<Value> {
        let (matching, rest): (Vec<_>, Vec<_>) =
            self.events.drain(..).partition(|(n, _)| n == name);
        self.events = rest.into();
        matching.into_iter().map(|(_, v)| v).collect()
    }

    /// Every `name` event received during `wait`.
    pub async fn events_for(&mut self, name: &str, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        while let Ok(true) = tokio::time::timeout_at(deadline, self.pump()).await {}
        self.take(name)
    }

    /// Waits until the server closes the connection; true if it did within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.pump()).await {
                Ok(true) => {}
                Ok(false) => return true,
                Err(_) => return false,
            }
        }
    }
}
