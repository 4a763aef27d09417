//! Socket.IO v5 packets: `<type>[<namespace>,][<ack id>][<JSON data>]`, the text of an
//! Engine.IO message after its `4`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

use crate::{Error, Frame};

/// The Socket.IO packet types a text frame can carry (binary events and acks excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: join a namespace (client, with optional auth data) or joined (server, `{"sid"}`).
    Connect = 0,
    /// `1`: leave a namespace, or be made to.
    Disconnect = 1,
    /// `2`: `["name", args…]`, with an ack id when the sender wants an answer.
    Event = 2,
    /// `3`: the answer to the event of the same ack id: `[args…]`.
    Ack = 3,
    /// `4`: the server refused a connect: `{"message": …}` or whatever its middleware sent.
    ConnectError = 4,
}

/// One Socket.IO packet, borrowed from its frame. `data` is the raw JSON text; it is read by
/// [`Packet::read_event`], [`Packet::read_ack`] or [`Packet::read_data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub kind: PacketType,
    /// `/` unless the packet names another.
    pub namespace: &'a str,
    pub id: Option<u64>,
    pub data: Option<&'a str>,
}

/// JSON's insignificant whitespace.
const JSON_WS: [char; 4] = [' ', '\t', '\n', '\r'];

impl<'a> Packet<'a> {
    /// Joins namespace `/`, with `auth` (a JSON object's text) as `io(url, { auth })` sends it.
    pub fn connect(auth: Option<&'a str>) -> Self {
        Self {
            kind: PacketType::Connect,
            namespace: "/",
            id: None,
            data: auth,
        }
    }

    /// An event on namespace `/`: `array` is the JSON text of `["name", args…]`; with `id`, the
    /// receiver answers with an ack of that id.
    pub fn event(id: Option<u64>, array: &'a str) -> Self {
        Self {
            kind: PacketType::Event,
            namespace: "/",
            id,
            data: Some(array),
        }
    }

    /// The ack `id` on namespace `/`: `array` is the JSON text of `[args…]`.
    pub fn ack(id: u64, array: &'a str) -> Self {
        Self {
            kind: PacketType::Ack,
            namespace: "/",
            id: Some(id),
            data: Some(array),
        }
    }

    /// Decodes a packet (an Engine.IO message without its `4`). The data is checked by its
    /// first byte against what the type allows; its JSON is read by the accessors, so a
    /// frame costs one JSON pass.
    pub fn decode(text: &'a str) -> Result<Self, Error> {
        let Some(&byte) = text.as_bytes().first() else {
            return Err(Error::Empty);
        };
        let kind = match byte {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' | b'6' => return Err(Error::Binary),
            _ => return Err(Error::PacketType(text.chars().next().unwrap_or_default())),
        };
        // Every split below is at an ASCII byte, hence at a char boundary.
        let mut rest = text.get(1..).unwrap_or_default();
        let mut namespace = "/";
        if rest.starts_with('/') {
            // As socket.io-parser reads it: up to the first `,`, or the end.
            (namespace, rest) = rest.split_once(',').unwrap_or((rest, ""));
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = match rest.get(..digits) {
            Some("") | None => None,
            Some(d) => Some(d.parse().map_err(|_| Error::Id("beyond u64"))?),
        };
        let data = rest.get(digits..).filter(|d| !d.is_empty());
        let first = data.and_then(|d| d.bytes().next());
        let fits = match kind {
            PacketType::Connect => matches!(first, None | Some(b'{')),
            PacketType::Disconnect => first.is_none(),
            PacketType::Event | PacketType::Ack => first == Some(b'['),
            PacketType::ConnectError => matches!(first, Some(b'{' | b'"')),
        };
        if !fits {
            return Err(Error::Payload(kind));
        }
        match (kind, id) {
            (PacketType::Ack, None) => Err(Error::Id("an ack needs one")),
            (PacketType::Event | PacketType::Ack, _) | (_, None) => Ok(Self {
                kind,
                namespace,
                id,
                data,
            }),
            _ => Err(Error::Id("only events and acks have one")),
        }
    }

    /// The WebSocket text frame carrying this packet (Engine.IO message, `4…`).
    pub fn to_frame(&self) -> String {
        let len = 2 + self.namespace.len() + 20 + self.data.map_or(0, str::len);
        let mut frame = String::with_capacity(len);
        // Writing to a String cannot fail.
        let _ = write!(frame, "{}", Frame::Message(*self));
        frame
    }

    /// The name of an event, read without its arguments (a hot loop can skip the events it
    /// does not want cheaply); borrowed unless it has escapes.
    pub fn event_name(&self) -> Result<Cow<'a, str>, Error> {
        self.expect(PacketType::Event)?;
        let body = self
            .data
            .unwrap_or_default()
            .strip_prefix('[')
            .ok_or(Error::Name("the data is not an array"))?
            .trim_start_matches(JSON_WS);
        let literal = body.strip_prefix('"').ok_or(Error::Name("not a string"))?;
        let bytes = literal.as_bytes();
        let (mut end, mut escaped) = (0, false);
        loop {
            match bytes.get(end) {
                None => return Err(Error::Name("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    end += 2;
                }
                Some(b) if *b < 0x20 => return Err(Error::Name("control character")),
                Some(_) => end += 1,
            }
        }
        // `end` is at the closing quote, an ASCII byte.
        let after = literal.get(end + 1..).unwrap_or_default();
        if !after.trim_start_matches(JSON_WS).starts_with([',', ']']) {
            return Err(Error::Name("not the first element of an array"));
        }
        if escaped {
            let quoted = body.get(..end + 2).unwrap_or_default();
            Ok(Cow::Owned(serde_json::from_str(quoted)?))
        } else {
            Ok(Cow::Borrowed(literal.get(..end).unwrap_or_default()))
        }
    }

    /// An event's name and first argument (`None` when it has none) in one JSON pass; further
    /// arguments are checked and skipped.
    pub fn read_event<T: Deserialize<'a>>(&self) -> Result<(Cow<'a, str>, Option<T>), Error> {
        self.expect(PacketType::Event)?;
        self.read_array(EventVisitor(PhantomData))
    }

    /// An ack's first argument (`None` for `[]`); further arguments are checked and skipped.
    pub fn read_ack<T: Deserialize<'a>>(&self) -> Result<Option<T>, Error> {
        self.expect(PacketType::Ack)?;
        self.read_array(FirstVisitor(PhantomData))
    }

    /// The whole data as `T`, for any type of packet: a connect's `{"sid"}`, a connect_error's
    /// reason. No data reads as JSON `null`, which `Option<T>` takes as `None`.
    pub fn read_data<T: Deserialize<'a>>(&self) -> Result<T, Error> {
        Ok(serde_json::from_str(self.data.unwrap_or("null"))?)
    }

    fn expect(&self, kind: PacketType) -> Result<(), Error> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(Error::Kind {
                expected: kind,
                found: self.kind,
            })
        }
    }

    fn read_array<V: Visitor<'a>>(&self, visitor: V) -> Result<V::Value, Error> {
        let mut json = serde_json::Deserializer::from_str(self.data.unwrap_or_default());
        let value = de::Deserializer::deserialize_seq(&mut json, visitor)?;
        json.end()?;
        Ok(value)
    }
}

/// Encodes the packet, without the Engine.IO `4` ([`Packet::to_frame`] adds it). The data is
/// written as given: it must be the JSON its type allows, or the text will not decode.
impl fmt::Display for Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char(char::from(b'0' + self.kind as u8))?;
        if self.namespace != "/" && !self.namespace.is_empty() {
            write!(f, "{},", self.namespace)?;
        }
        if let Some(id) = self.id {
            write!(f, "{id}")?;
        }
        f.write_str(self.data.unwrap_or_default())
    }
}

/// An event name, borrowed from the frame unless JSON escapes forced a copy.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

/// Reads `["name", first, rest…]`.
struct EventVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for EventVisitor<T> {
    type Value = (Cow<'de, str>, Option<T>);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an event: ["name", args…]"#)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Name(name) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let first = seq.next_element()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok((name, first))
    }
}

/// Reads `[first, rest…]`.
struct FirstVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for FirstVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of arguments")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let first = seq.next_element()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn packet(text: &str) -> Packet<'_> {
        Packet::decode(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn built_packets_round_trip_through_their_frames() {
        let auth = json!({"key": "k"}).to_string();
        let array = json!(["subscribe", {"posts": ["p_1"]}]).to_string();
        for (built, frame) in [
            (Packet::connect(None), "40".to_owned()),
            (Packet::connect(Some(&auth)), format!("40{auth}")),
            (Packet::event(None, &array), format!("42{array}")),
            (Packet::event(Some(12), &array), format!("4212{array}")),
            (Packet::ack(1, "[]"), "431[]".to_owned()),
        ] {
            assert_eq!(built.to_frame(), frame);
            assert_eq!(
                Frame::decode(&frame).expect("decodes"),
                Frame::Message(built)
            );
        }
        let other = Packet {
            namespace: "/admin",
            ..Packet::event(Some(3), "[\"x\"]")
        };
        assert_eq!(other.to_frame(), r#"42/admin,3["x"]"#);
        assert_eq!(packet(&other.to_string()), other);
    }

    #[test]
    fn headers_decode_to_namespace_id_and_data() {
        assert_eq!(
            packet(r#"2/chat,41["a"]"#),
            Packet {
                kind: PacketType::Event,
                namespace: "/chat",
                id: Some(41),
                data: Some(r#"["a"]"#),
            }
        );
        // A namespace with nothing after it runs to the end, as in socket.io-parser.
        assert_eq!(packet("0/chat").namespace, "/chat");
        assert_eq!(packet("1/chat,").namespace, "/chat");
        assert_eq!(packet(r#"4"nope""#).data, Some(r#""nope""#));
        assert_eq!(packet("3007[]").id, Some(7));
    }

    #[test]
    fn malformed_packets_are_errors() {
        for text in [
            "",
            "7",
            "-",
            "é",
            "51-[]",
            "6",
            "0[]",
            "01",
            "1{}",
            "11",
            "2",
            "2{}",
            "2x",
            "212",
            "3[]",
            "31",
            "31{}",
            "4",
            "4[]",
            "41{}",
            "2/chat",
            "299999999999999999999[\"x\"]",
        ] {
            assert!(Packet::decode(text).is_err(), "{text:?} decoded");
        }
    }

    #[test]
    fn event_names_are_read_without_the_arguments() {
        let name = |text: &'static str| packet(text).event_name();
        assert!(matches!(
            name(r#"2["likes:updated",{"post_id":"p_1"}]"#),
            Ok(Cow::Borrowed("likes:updated"))
        ));
        assert!(matches!(name(r#"2[ "x" ]"#), Ok(Cow::Borrowed("x"))));
        // The arguments are not read: that is the accessors' job.
        assert!(matches!(name(r#"2["x",garbage"#), Ok(Cow::Borrowed("x"))));
        let escaped = name(r#"2["a\"b\u00e9",1]"#).expect("escaped name");
        assert!(matches!(escaped, Cow::Owned(_)));
        assert_eq!(escaped, "a\"bé");
        for bad in [
            "2[]",
            "2[1]",
            r#"2["x"#,
            r#"2["x\"]"#,
            r#"2["x"1]"#,
            "2[\"a\nb\"]",
            r#"2["\q"]"#,
        ] {
            assert!(packet(bad).event_name().is_err(), "{bad}");
        }
        let ack = packet("31[]");
        assert!(matches!(
            ack.event_name(),
            Err(Error::Kind {
                expected: PacketType::Event,
                found: PacketType::Ack
            })
        ));
    }

    #[test]
    fn events_give_their_name_and_first_argument() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Update<'a> {
            post_id: &'a str,
            likes: u64,
        }
        let p = packet(r#"2["likes:updated",{"post_id":"p_1","likes":3}]"#);
        let (name, update) = p.read_event::<Update<'_>>().expect("event");
        assert!(matches!(name, Cow::Borrowed("likes:updated")));
        assert_eq!(
            update,
            Some(Update {
                post_id: "p_1",
                likes: 3
            })
        );
        let (name, arg) = packet(r#"2["ping"]"#)
            .read_event::<Value>()
            .expect("no args");
        assert_eq!((name.as_ref(), arg), ("ping", None));
        let (_, arg) = packet(r#"2["x",1,{"y":[2]}]"#)
            .read_event::<u64>()
            .expect("more args");
        assert_eq!(arg, Some(1));
        for bad in [
            r#"2["x",1,]"#,
            r#"2["x",{]"#,
            r#"2[1,2]"#,
            r#"2["x"]]"#,
            "2[]",
        ] {
            assert!(packet(bad).read_event::<Value>().is_err(), "{bad}");
        }
        assert!(
            packet(r#"2["x","not a number"]"#)
                .read_event::<u64>()
                .is_err()
        );
        assert!(packet("31[]").read_event::<Value>().is_err());
    }

    #[test]
    fn acks_give_their_first_argument() {
        let p = packet(r#"31[{"counts":{"p_1":3}},"extra"]"#);
        assert_eq!(
            p.read_ack::<Value>().expect("ack"),
            Some(json!({"counts": {"p_1": 3}}))
        );
        assert_eq!(packet("31[]").read_ack::<Value>().expect("empty"), None);
        assert!(packet("31[{]").read_ack::<Value>().is_err());
        assert!(packet(r#"2["x"]"#).read_ack::<Value>().is_err());
    }

    #[test]
    fn data_parses_whole_and_absent_data_is_null() {
        let refused = packet(r#"4{"message":"no key"}"#);
        assert_eq!(
            refused.read_data::<Value>().expect("data"),
            json!({"message": "no key"})
        );
        assert_eq!(
            packet("0").read_data::<Option<Value>>().expect("none"),
            None
        );
        assert!(packet("0{").read_data::<Value>().is_err());
    }

    /// Every short text over the protocol's alphabet, and every prefix of real frames, decodes
    /// to a packet or an error, and so do the accessors on what decodes.
    #[test]
    fn no_text_makes_decoding_panic() {
        let alphabet: Vec<char> = "0123456/,[]{}\"\\ x-é".chars().collect();
        let mut texts = vec![String::new()];
        let mut level = vec![String::new()];
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(level.iter().cloned());
        }
        for real in [
            r#"42/admin,12["a\"é",{"b":[1,2]}]"#,
            r#"431[{"counts":{"p_1":3}}]"#,
            r#"0{"sid":"s","pingInterval":1,"pingTimeout":2,"maxPayload":3}"#,
        ] {
            texts.extend(real.char_indices().map(|(i, _)| real[..i].to_owned()));
        }
        for text in &texts {
            for prefixed in [format!("4{text}"), text.clone()] {
                if let Ok(Frame::Message(p)) = Frame::decode(&prefixed) {
                    let _ = p.event_name();
                    let _ = p.read_event::<Value>();
                    let _ = p.read_ack::<Value>();
                    let _ = p.read_data::<Value>();
                    let _ = p.to_frame();
                }
            }
        }
    }
}
