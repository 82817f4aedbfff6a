//! The two codecs, chosen by WebSocket subprotocol.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::{DecodeError, EncodeError, Id, MessageType, RawPayload, msgpack};

/// Subprotocol of the JSON codec (text frames).
pub const SUBPROTOCOL_JSON: &str = "switchboard.v1.json";
/// Subprotocol of the MessagePack codec (binary frames).
pub const SUBPROTOCOL_MSGPACK: &str = "switchboard.v1.msgpack";

/// The encoding of a connection's messages.
///
/// ```
/// use switchboard_protocol::Format;
/// assert_eq!(Format::from_subprotocol("switchboard.v1.msgpack"), Some(Format::MsgPack));
/// assert_eq!(Format::from_subprotocol("graphql-ws"), None);
/// assert!(Format::MsgPack.is_binary());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// UTF-8 JSON in text frames (`switchboard.v1.json`, the default).
    #[default]
    Json,
    /// MessagePack in binary frames (`switchboard.v1.msgpack`).
    MsgPack,
}

impl Format {
    /// Both formats, JSON first.
    pub const ALL: [Format; 2] = [Format::Json, Format::MsgPack];

    /// The format named by a subprotocol.
    #[must_use]
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        match name.trim() {
            SUBPROTOCOL_JSON => Some(Self::Json),
            SUBPROTOCOL_MSGPACK => Some(Self::MsgPack),
            _ => None,
        }
    }

    /// The subprotocol name.
    #[must_use]
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Self::Json => SUBPROTOCOL_JSON,
            Self::MsgPack => SUBPROTOCOL_MSGPACK,
        }
    }

    /// Whether messages travel in binary frames.
    #[must_use]
    pub const fn is_binary(self) -> bool {
        matches!(self, Self::MsgPack)
    }

    /// A short name for logs and errors.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::MsgPack => "MessagePack",
        }
    }

    /// Index of the format (0 JSON, 1 MessagePack), for per-format caches.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Decodes one frame's bytes. The payload shares `frame`'s memory.
    ///
    /// ```
    /// use switchboard_protocol::{DecodeError, Format};
    /// let m = Format::Json.decode(&br#"["~ping"]"#.to_vec().into()).unwrap();
    /// assert!(m.payload.is_null() && m.id.is_none());
    /// assert_eq!(Format::Json.decode(&b"{}".to_vec().into()).unwrap_err(), DecodeError::NotArray);
    /// assert_eq!(Format::Json.decode(&br#"["x",1,0]"#.to_vec().into()).unwrap_err(), DecodeError::BadId);
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] says what is wrong; its text is fit for a close reason.
    pub fn decode(self, frame: &Bytes) -> Result<Message, DecodeError> {
        match self {
            Self::Json => decode_json(frame),
            Self::MsgPack => msgpack::decode(frame),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One decoded message: `[type, payload, id]`.
#[derive(Clone, Debug)]
pub struct Message {
    /// The message type.
    pub kind: MessageType,
    /// The payload (`null` when absent), still encoded.
    pub payload: RawPayload,
    /// The request id; `None` for an event. An explicit `null` id counts as absent (JavaScript's
    /// `JSON.stringify([t, p, undefined])` writes one).
    pub id: Option<Id>,
}

/// Encodes `[kind, payload, id]` in `format`, splicing the payload's bytes (transcoding them once
/// if they are in the other format).
///
/// # Errors
/// When the payload has no equivalent in `format`.
pub fn encode(
    format: Format,
    kind: &str,
    payload: &RawPayload,
    id: Option<Id>,
) -> Result<Bytes, EncodeError> {
    if format == Format::Json
        && payload.format() == Format::Json
        && let Some(frame) = encode_json_plain(kind, payload, id)
    {
        return Ok(frame);
    }
    let mut out = BytesMut::with_capacity(kind.len() + payload.as_bytes().len() + 24);
    match format {
        Format::Json => {
            out.put_u8(b'[');
            serde_json::to_writer((&mut out).writer(), kind)?;
            out.put_u8(b',');
            payload.write_as(format, &mut out)?;
            if let Some(id) = id {
                out.put_u8(b',');
                put_decimal(&mut out, id.get());
            }
            out.put_u8(b']');
        }
        Format::MsgPack => {
            let mut w = (&mut out).writer();
            let _ = rmp::encode::write_array_len(&mut w, if id.is_some() { 3 } else { 2 });
            let _ = rmp::encode::write_str(&mut w, kind);
            payload.write_as(format, &mut out)?;
            if let Some(id) = id {
                let _ = rmp::encode::write_uint(&mut (&mut out).writer(), id.get());
            }
        }
    }
    Ok(out.freeze())
}

/// Encodes `[kind, value, id]` in `format`, serializing `value` directly.
///
/// # Errors
/// When the value cannot be serialized.
pub fn encode_value<T: Serialize + ?Sized>(
    format: Format,
    kind: &str,
    value: &T,
    id: Option<Id>,
) -> Result<Bytes, EncodeError> {
    encode(format, kind, &RawPayload::encode(format, value)?, id)
}

/// [`encode`] to JSON of a JSON payload whose type needs no escaping (every type the server
/// sends, and almost every application's): the frame written straight into one buffer of its
/// exact size. Exact, so that `Bytes` takes the buffer as it is: a `Vec` with spare capacity
/// costs `Bytes` a second allocation (its shared header). `None` when the type needs escaping.
fn encode_json_plain(kind: &str, payload: &RawPayload, id: Option<Id>) -> Option<Bytes> {
    if kind.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return None;
    }
    let mut digits = [0u8; 20];
    let id = id.map_or(&[][..], |id| decimal(id.get(), &mut digits));
    let payload = payload.as_bytes();
    let len = kind.len() + payload.len() + id.len() + usize::from(!id.is_empty()) + 5;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"[\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",");
    out.extend_from_slice(payload);
    if !id.is_empty() {
        out.push(b',');
        out.extend_from_slice(id);
    }
    out.push(b']');
    debug_assert_eq!(out.len(), len);
    Some(Bytes::from(out))
}

/// Writes `v` in decimal (no allocation: ids are written on every reply).
fn put_decimal(out: &mut BytesMut, v: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(v, &mut digits));
}

/// `v` in decimal, in the end of `digits`.
fn decimal(mut v: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &digits[i..]
}

fn decode_json(frame: &Bytes) -> Result<Message, DecodeError> {
    match decode_json_plain(frame) {
        Some(msg) => Ok(msg),
        None => decode_json_any(frame),
    }
}

/// The shape clients send (`JSON.stringify` of `[type, payload, id]` or `[type, payload]`): an
/// ASCII frame, no whitespace around the envelope's parts, a type without escapes, a plain
/// decimal id. Read by hand, and only the payload goes through `serde_json` (validated, not
/// kept). `None` for anything else, valid or not: [`decode_json_any`] decides, with the same
/// result it would have given.
///
/// The id is found from the end: a payload is one JSON value, so a top-level `,digits]` after it
/// can only be the id; when the split is wrong (`["a",1,2,3]`), the "payload" (`1,2`) is not one
/// value and the general path takes over.
fn decode_json_plain(frame: &Bytes) -> Option<Message> {
    let bytes = frame.as_ref();
    // ASCII: UTF-8 without a second look (the payload's strings are skipped, not checked).
    if !bytes.is_ascii() {
        return None;
    }
    let rest = bytes.strip_prefix(b"[\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    let name = std::str::from_utf8(&rest[..end]).ok()?;
    let body = rest[end..].strip_prefix(b"\",")?.strip_suffix(b"]")?;
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (value, id) = match body.len().checked_sub(digits + 1).map(|at| (at, body[at])) {
        Some((at, b',')) if digits > 0 => {
            let text = &body[at + 1..];
            if text[0] == b'0' || digits > 16 {
                return None;
            }
            let id = text.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
            (&body[..at], Some(Id::new(id)?))
        }
        _ => (body, None),
    };
    serde_json::from_slice::<IgnoredAny>(value).ok()?;
    let value = value.trim_ascii();
    let kind = MessageType::new(name)?;
    let start = value.as_ptr() as usize - bytes.as_ptr() as usize;
    let payload = RawPayload::from_raw(crate::Format::Json, frame.slice(start..start + value.len()));
    Some(Message { kind, payload, id })
}

/// Any JSON frame, through `serde_json` (what [`decode_json_plain`] does not take).
fn decode_json_any(frame: &Bytes) -> Result<Message, DecodeError> {
    let failure = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(frame);
    let parsed = de.deserialize_seq(EnvelopeVisitor { failure: &failure }).and_then(|env| {
        de.end()?;
        Ok(env)
    });
    let (kind, payload, id) = match parsed {
        Ok(env) => env,
        Err(e) if e.is_syntax() || e.is_eof() || e.is_io() => return Err(DecodeError::Syntax("JSON")),
        Err(_) => return Err(failure.take().unwrap_or(DecodeError::NotArray)),
    };
    let payload = match payload {
        Some(raw) => {
            let start = raw.get().as_ptr() as usize - frame.as_ptr() as usize;
            RawPayload::from_raw(crate::Format::Json, frame.slice(start..start + raw.get().len()))
        }
        None => RawPayload::null(),
    };
    Ok(Message { kind, payload, id })
}

type Envelope<'a> = (MessageType, Option<&'a RawValue>, Option<Id>);

struct EnvelopeVisitor<'c> {
    failure: &'c Cell<Option<DecodeError>>,
}

impl<'c> EnvelopeVisitor<'c> {
    fn fail<E: de::Error>(&self, e: DecodeError) -> E {
        self.failure.set(Some(e));
        E::custom("invalid message")
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of one to three elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let kind = match seq.next_element::<CowStr<'de>>() {
            Ok(Some(CowStr(name))) => {
                MessageType::new(&name).ok_or_else(|| self.fail(DecodeError::BadType))?
            }
            Ok(None) => return Err(self.fail(DecodeError::NotArray)),
            Err(e) => {
                self.failure.set(Some(DecodeError::BadType));
                return Err(e);
            }
        };
        let Some(payload) = seq.next_element::<&'de RawValue>()? else {
            return Ok((kind, None, None));
        };
        let id = match seq.next_element::<Option<u64>>() {
            Ok(id) => id.flatten(),
            Err(e) => {
                self.failure.set(Some(DecodeError::BadId));
                return Err(e);
            }
        };
        let id = match id {
            Some(v) => Some(Id::new(v).ok_or_else(|| self.fail(DecodeError::BadId))?),
            None => None,
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(self.fail(DecodeError::NotArray));
        }
        Ok((kind, Some(payload), id))
    }
}

struct CowStr<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Result<Message, DecodeError> {
        Format::Json.decode(&Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn json_shapes() {
        let m = json(r#" ["echo", {"x": [1,2]} , 5 ] "#).unwrap();
        assert_eq!(m.kind.as_str(), "echo");
        assert_eq!(m.payload.as_bytes(), br#"{"x": [1,2]}"#);
        assert_eq!(m.id, Id::new(5));
        assert!(json(r#"["a",null,null]"#).unwrap().id.is_none());
        assert_eq!(json(r#"["a\u0041"]"#).unwrap().kind.as_str(), "aA");
        assert_eq!(json("[]").unwrap_err(), DecodeError::NotArray);
        assert_eq!(json("[1]").unwrap_err(), DecodeError::BadType);
        assert_eq!(json(r#"[""]"#).unwrap_err(), DecodeError::BadType);
        assert_eq!(json(r#"["a",1,2,3]"#).unwrap_err(), DecodeError::NotArray);
        assert_eq!(json(r#"["a",1,"x"]"#).unwrap_err(), DecodeError::BadId);
        assert_eq!(json(r#"["a",1,-1]"#).unwrap_err(), DecodeError::BadId);
        assert_eq!(json(r#"["a",1,1.5]"#).unwrap_err(), DecodeError::BadId);
        assert_eq!(json(r#"["a",1,9007199254740992]"#).unwrap_err(), DecodeError::BadId);
        assert!(json(r#"["a",1,9007199254740991]"#).is_ok());
        assert_eq!(json(r#"["a",1"#).unwrap_err(), DecodeError::Syntax("JSON"));
        assert_eq!(json(r#"["a"] x"#).unwrap_err(), DecodeError::Syntax("JSON"));
        assert_eq!(json("\"a\"").unwrap_err(), DecodeError::NotArray);
        let long = format!(r#"["{}"]"#, "t".repeat(129));
        assert_eq!(json(&long).unwrap_err(), DecodeError::BadType);
    }

    /// What the hand-read shape gives, the general path gives too (and the hand-read shape
    /// declines, rather than errs, on anything else).
    fn same_as_general(s: &str) {
        let frame = Bytes::copy_from_slice(s.as_bytes());
        let general = decode_json_any(&frame);
        if let Some(plain) = decode_json_plain(&frame) {
            let general =
                general.unwrap_or_else(|e| panic!("{s}: plain path took what the general refused: {e}"));
            assert_eq!(plain.kind, general.kind, "{s}");
            assert_eq!(plain.payload, general.payload, "{s}");
            assert_eq!(plain.id, general.id, "{s}");
        }
    }

    #[test]
    fn the_plain_shape_reads_as_the_general_path() {
        for s in [
            r#"["echo","xxxx",12]"#,
            r#"["echo",{"a":[1,2],"b":"c,3"},7]"#,
            r#"["a",1,2,3]"#,
            r#"["a",[1,5]]"#,
            r#"["a",1,5]"#,
            r#"["a",-5]"#,
            r#"["a",1.5]"#,
            r#"["a",1e5]"#,
            r#"["a",x5]"#,
            r#"["a",,5]"#,
            r#"["a",]"#,
            r#"["a",1,05]"#,
            r#"["a",1,0]"#,
            r#"["a",1,9007199254740991]"#,
            r#"["a",1,9007199254740992]"#,
            r#"["a",1,99999999999999999999]"#,
            r#"["a",1,null]"#,
            r#"["a", 1 ,5]"#,
            r#"["a",1 ,5]"#,
            r#"["a\"b",1,5]"#,
            r#"["",1,5]"#,
            r#"["a","\u00e9",5]"#,
            r#"["a","é",5]"#,
            r#"["a","x"]"#,
            r#"["a",{"k":1}}"#,
            r#"["a",[[[]]],3]"#,
            r#"["a",[,3]"#,
            r#"["a",",3]"#,
        ] {
            same_as_general(s);
        }
        let long = format!(r#"["{}",1,2]"#, "t".repeat(129));
        same_as_general(&long);
        assert!(decode_json_plain(&Bytes::from_static(br#"["echo","xxxx",12]"#)).is_some());
    }

    proptest::proptest! {
        #[test]
        fn random_envelopes_read_as_the_general_path(s in r#"\["[a-z"\\]{0,3}",[\[\]{}",:0-9a-z. -]{0,12}(,[0-9n]{0,4})?\]?"#) {
            same_as_general(&s);
        }
    }

    #[test]
    fn plain_encoding_is_the_general_one() {
        let payload = RawPayload::json(&serde_json::json!({"k": "v"})).unwrap();
        for kind in ["~ok", "evt\"x", "a\u{1}b", "é"] {
            for id in [None, Id::new(1), Id::new(9_007_199_254_740_991)] {
                let frame = encode(Format::Json, kind, &payload, id).unwrap();
                let mut general = Vec::new();
                serde_json::to_writer(&mut general, &(kind, serde_json::json!({"k": "v"}), id)).unwrap();
                if id.is_none() {
                    general = serde_json::to_vec(&(kind, serde_json::json!({"k": "v"}))).unwrap();
                }
                assert_eq!(frame, general, "{kind} {id:?}");
            }
        }
    }

    #[test]
    fn ids_are_written_in_decimal() {
        for id in [1, 9, 10, 4_096, 9_007_199_254_740_991] {
            let frame = encode(Format::Json, "~ok", &RawPayload::null(), Id::new(id)).unwrap();
            assert_eq!(frame, format!(r#"["~ok",null,{id}]"#).as_bytes());
        }
    }

    #[test]
    fn encode_roundtrip_both_formats() {
        let payload = RawPayload::json(&serde_json::json!({"k": ["v", 1, true, null]})).unwrap();
        for format in Format::ALL {
            let frame = encode(format, "evt\"x", &payload, Id::new(9)).unwrap();
            let m = format.decode(&frame).unwrap();
            assert_eq!(m.kind.as_str(), "evt\"x");
            assert_eq!(m.id, Id::new(9));
            let v: serde_json::Value = m.payload.decode().unwrap();
            assert_eq!(v, serde_json::json!({"k": ["v", 1, true, null]}));
        }
    }
}
