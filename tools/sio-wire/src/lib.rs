//! The client side of the Socket.IO wire format, for the tools that speak it over raw WebSocket
//! text frames (testkit's test client, the load generator, the hub's bench): Engine.IO v4
//! frames ([`Frame`]) and the Socket.IO v5 packets their messages carry ([`Packet`]).
//!
//! Pure functions, no transport: decoding borrows from the frame's `&str` and checks a payload
//! by its first byte only, so the JSON is read once, by whichever accessor the caller picks
//! ([`Packet::read_event`], [`Packet::read_ack`], [`Packet::read_data`]). Binary packets and
//! the polling transport are left out: no client here uses them.
//!
//! ```text
//! 0{"sid":…,"pingInterval":…}  open          2 / 3        ping / pong
//! 40  40{auth}  40{"sid":…}    connect       44{…}        connect_error
//! 42["name",arg]  42<id>[…]    event         43<id>[…]    ack
//! 41                           disconnect    1            close
//! ```
//! A namespace other than `/` goes before the id: `42/admin,7["name"]`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod packet;

pub use packet::{Packet, PacketType};

/// The Engine.IO ping frame a server sends every ping interval.
pub const PING: &str = "2";
/// The answer to [`PING`]; a server that gets none within its ping timeout closes the socket.
pub const PONG: &str = "3";

/// One Engine.IO v4 packet: the whole of a WebSocket text frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `0{…}`: the server's handshake, first on every connection.
    Open(Open<'a>),
    /// `1`: the other side is closing the transport.
    Close,
    /// `2…`: a heartbeat, answered with a pong carrying the same data. The server's heartbeat
    /// pings carry none (`probe` belongs to the polling → WebSocket upgrade), so [`PONG`] does.
    Ping(&'a str),
    /// `3…`: the answer to a ping.
    Pong(&'a str),
    /// `4…`: a Socket.IO packet.
    Message(Packet<'a>),
    /// `5`: a transport upgrade (polling clients only).
    Upgrade,
    /// `6`: nothing; flushes a polling cycle.
    Noop,
}

/// The handshake of an Engine.IO connection (`0{…}`). `upgrades` is not kept: a WebSocket-only
/// client has nothing to upgrade to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open<'a> {
    pub sid: Cow<'a, str>,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long after a ping the server waits for the pong before it closes the connection.
    pub ping_timeout: Duration,
    /// The largest packet the server accepts, in bytes, if it says.
    pub max_payload: Option<u64>,
}

/// The open packet's JSON, in Engine.IO's field names.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenJson<'a> {
    #[serde(borrow)]
    sid: Cow<'a, str>,
    ping_interval: u64,
    ping_timeout: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_payload: Option<u64>,
}

/// Why a frame, or the part of it asked for, is not what the protocol allows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("empty frame or packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    EngineType(char),
    #[error("unknown Socket.IO packet type {0:?}")]
    PacketType(char),
    #[error("binary Socket.IO packets are not supported")]
    Binary,
    #[error("a {0} packet carries no data")]
    Trailing(&'static str),
    #[error("ack id: {0}")]
    Id(&'static str),
    #[error("payload not allowed in a {0:?} packet")]
    Payload(PacketType),
    #[error("expected a {expected:?} packet, got {found:?}")]
    Kind {
        expected: PacketType,
        found: PacketType,
    },
    #[error("event name: {0}")]
    Name(&'static str),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl<'a> Frame<'a> {
    /// Decodes one WebSocket text frame, borrowing from it (only an open packet's JSON is
    /// parsed here; it comes once per connection).
    pub fn decode(frame: &'a str) -> Result<Self, Error> {
        let Some(&kind) = frame.as_bytes().first() else {
            return Err(Error::Empty);
        };
        // Only ASCII digits are accepted below, so byte 1 is a char boundary whenever used.
        let rest = frame.get(1..).unwrap_or_default();
        let bare = |frame: Frame<'a>, name| {
            if rest.is_empty() {
                Ok(frame)
            } else {
                Err(Error::Trailing(name))
            }
        };
        match kind {
            b'0' => {
                let open: OpenJson<'a> = serde_json::from_str(rest)?;
                Ok(Self::Open(Open {
                    sid: open.sid,
                    ping_interval: Duration::from_millis(open.ping_interval),
                    ping_timeout: Duration::from_millis(open.ping_timeout),
                    max_payload: open.max_payload,
                }))
            }
            b'1' => bare(Self::Close, "close"),
            b'2' => Ok(Self::Ping(rest)),
            b'3' => Ok(Self::Pong(rest)),
            b'4' => Packet::decode(rest).map(Self::Message),
            b'5' => bare(Self::Upgrade, "upgrade"),
            b'6' => bare(Self::Noop, "noop"),
            _ => Err(Error::EngineType(frame.chars().next().unwrap_or_default())),
        }
    }

    /// The Socket.IO packet of a message frame; `None` for every other frame.
    pub fn packet(self) -> Option<Packet<'a>> {
        match self {
            Self::Message(p) => Some(p),
            _ => None,
        }
    }
}

/// Encodes the frame as the text a WebSocket carries.
impl fmt::Display for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(open) => {
                let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                let json = serde_json::to_string(&OpenJson {
                    sid: Cow::Borrowed(&open.sid),
                    ping_interval: millis(open.ping_interval),
                    ping_timeout: millis(open.ping_timeout),
                    max_payload: open.max_payload,
                })
                .map_err(|_| fmt::Error)?;
                write!(f, "0{json}")
            }
            Self::Close => f.write_str("1"),
            Self::Ping(data) => write!(f, "2{data}"),
            Self::Pong(data) => write!(f, "3{data}"),
            Self::Message(packet) => write!(f, "4{packet}"),
            Self::Upgrade => f.write_str("5"),
            Self::Noop => f.write_str("6"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_packet_of_a_real_server_decodes_and_round_trips() {
        let frame = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let Ok(Frame::Open(open)) = Frame::decode(frame) else {
            panic!("not an open packet");
        };
        assert!(matches!(open.sid, Cow::Borrowed("lv_VI97HAXpY6yYWAAAC")));
        assert_eq!(open.ping_interval, Duration::from_secs(25));
        assert_eq!(open.ping_timeout, Duration::from_secs(20));
        assert_eq!(open.max_payload, Some(1_000_000));
        let again = Frame::Open(open.clone()).to_string();
        assert_eq!(
            again,
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        assert_eq!(Frame::decode(&again).expect("decodes"), Frame::Open(open));
    }

    #[test]
    fn every_frame_kind_round_trips() {
        for text in [
            "1",
            PING,
            PONG,
            "2probe",
            "3probe",
            "5",
            "6",
            "40",
            r#"40{"sid":"abc"}"#,
            r#"40{"key":"k"}"#,
            "41",
            r#"42["likes:updated",{"post_id":"p_1","likes":3}]"#,
            r#"4217["subscribe",{"posts":["p_1"]}]"#,
            r#"431[{"counts":{"p_1":3}}]"#,
            r#"44{"message":"refused"}"#,
            r#"42/admin,3["x",1]"#,
            "41/admin,",
        ] {
            let frame = Frame::decode(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(frame.to_string(), text);
        }
        assert_eq!(Frame::decode(PING).expect("ping"), Frame::Ping(""));
        assert_eq!(Frame::decode(PONG).expect("pong"), Frame::Pong(""));
    }

    #[test]
    fn malformed_frames_are_errors() {
        for text in [
            "",
            "7",
            "x",
            "é",
            "0",
            "0{}",
            r#"0{"sid":1,"pingInterval":1,"pingTimeout":1}"#,
            r#"0{"sid":"a","pingInterval":-1,"pingTimeout":1}"#,
            "1x",
            "5x",
            "6 ",
            "4",
            "4x",
        ] {
            assert!(Frame::decode(text).is_err(), "{text:?} decoded");
        }
    }

    #[test]
    fn only_message_frames_have_a_packet() {
        assert_eq!(Frame::decode(PING).expect("ping").packet(), None);
        let packet = Frame::decode("41").expect("disconnect").packet();
        assert_eq!(packet.map(|p| p.kind), Some(PacketType::Disconnect));
    }
}
