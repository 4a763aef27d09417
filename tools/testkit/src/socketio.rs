//! A minimal Socket.IO v4 client for tests (the realtime hub's and the load lab's) over raw
//! Engine.IO v4 WebSocket frames: enough to connect to namespace `/`, emit with acks, and
//! collect events. The frames are [`sio_wire`]'s; this module is the socket around them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sio_wire::{Frame, PONG, Packet, PacketType};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How [`Client::connect_with`] connects: the `Origin` header a browser page would send and
/// the Socket.IO auth payload (`io(url, { auth })`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub origin: Option<String>,
    pub auth: Option<Value>,
}

/// Why [`Client::connect_with`] did not join namespace `/`.
pub enum Refused {
    /// The WebSocket handshake got an HTTP answer other than 101.
    Http {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    /// The server sent Socket.IO's `connect_error` (`44{…}`, its data here); the Engine.IO
    /// connection is still open, so a test can check that what it sends there goes nowhere.
    Connect { data: Value, client: Box<Client> },
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http { status, body, .. } => write!(f, "HTTP {status}: {body}"),
            Self::Connect { data, .. } => write!(f, "connect_error {data}"),
        }
    }
}

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
        Self::connect_with(addr, &Options::default())
            .await
            .expect("socket.io connect")
    }

    /// Connects over WebSocket with `options` and joins namespace `/`, or says how the server
    /// refused (an HTTP status on the handshake, or a `connect_error`).
    pub async fn connect_with(addr: SocketAddr, options: &Options) -> Result<Self, Refused> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let mut request = url.into_client_request().expect("a websocket request");
        if let Some(origin) = &options.origin {
            request.headers_mut().insert(
                "origin",
                HeaderValue::from_str(origin).expect("an origin header"),
            );
        }
        let ws = match connect_async(request).await {
            Ok((ws, _)) => ws,
            Err(tungstenite::Error::Http(response)) => {
                return Err(Refused::Http {
                    status: response.status().as_u16(),
                    content_type: response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                        .into_owned(),
                });
            }
            Err(e) => panic!("websocket handshake: {e}"),
        };
        let mut c = Self {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            acks: HashMap::new(),
            closed: false,
        };
        let open = c.recv_frame().await.expect("engine.io open packet");
        assert!(
            matches!(Frame::decode(&open), Ok(Frame::Open(_))),
            "expected an open packet, got {open}"
        );
        let auth = options.auth.as_ref().map(Value::to_string);
        c.send_frame(&Packet::connect(auth.as_deref()).to_frame())
            .await;
        let answer = c.recv_frame().await.expect("socket.io connect packet");
        match Frame::decode(&answer).ok().and_then(Frame::packet) {
            Some(p) if p.kind == PacketType::ConnectError => {
                let data = p.read_data().expect("connect_error json");
                Err(Refused::Connect {
                    data,
                    client: Box::new(c),
                })
            }
            Some(p) if p.kind == PacketType::Connect => Ok(c),
            _ => panic!("expected a connect packet, got {answer}"),
        }
    }

    pub async fn send_frame(&mut self, frame: &str) {
        self.try_send_frame(frame).await.expect("send frame");
    }

    /// Sends a text frame the server may refuse by closing the connection while it is still
    /// being written (a frame over its size limit): the error is the caller's to judge.
    pub async fn try_send_frame(&mut self, frame: &str) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::Text(frame.to_owned().into())).await
    }

    /// The next text frame, answering pings on the way; `None` once the connection closed.
    async fn recv_frame(&mut self) -> Option<String> {
        while !self.closed {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let t = t.to_string();
                    if matches!(Frame::decode(&t), Ok(Frame::Ping(_))) {
                        // A ping read after the server dropped the connection (e.g. one sent
                        // before it refused an oversized frame): the failed pong means closed.
                        if self.try_send_frame(PONG).await.is_err() {
                            self.closed = true;
                        }
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
        let packet = match Frame::decode(&frame) {
            Ok(Frame::Message(packet)) => packet,
            Ok(_) => return true,
            // A server that breaks the protocol is the test's failure, not a frame to skip.
            Err(e) => panic!("malformed frame {frame}: {e}"),
        };
        match packet.kind {
            PacketType::Disconnect => {
                self.closed = true;
                return false;
            }
            PacketType::Event => {
                let (name, data) = packet.read_event::<Value>().expect("event json");
                self.events
                    .push_back((name.into_owned(), data.unwrap_or_default()));
            }
            PacketType::Ack => {
                let data = packet.read_ack::<Value>().expect("ack json");
                // An ack always has an id (`Packet::decode` checks).
                let id = packet.id.unwrap_or_default();
                self.acks.insert(id, data.unwrap_or_default());
            }
            PacketType::Connect | PacketType::ConnectError => {}
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
        self.send_frame(&Packet::event(Some(id), array).to_frame())
            .await;
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

    /// Emits `event` with `data` and returns its ack if one comes within `wait`; `None` when
    /// the server ignores it or closes the connection.
    pub async fn try_emit_ack(
        &mut self,
        event: &str,
        data: Value,
        wait: Duration,
    ) -> Option<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let array = json!([event, data]).to_string();
        let frame = Packet::event(Some(id), &array).to_frame();
        if self.ws.send(Message::Text(frame.into())).await.is_err() {
            // Closed by the server: certainly no ack.
            self.closed = true;
            return None;
        }
        let deadline = Instant::now() + wait;
        loop {
            if let Some(v) = self.acks.remove(&id) {
                return Some(v);
            }
            match tokio::time::timeout_at(deadline, self.pump()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
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
