//! Raw payloads: one encoded value, kept as bytes until someone needs it typed.

use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{DecodeError, EncodeError, Format};

/// One encoded value (JSON text or MessagePack bytes), kept raw.
///
/// Routing a message never parses its payload: a handler decodes it into the type it wants with
/// [`RawPayload::decode`], and a publication splices it into every delivery without re-parsing.
/// A payload sent to a connection of the other format is transcoded once ([`RawPayload::to_format`]).
/// Cloning is cheap (the bytes are shared).
///
/// ```
/// use switchboard_protocol::{Format, RawPayload};
/// let p = RawPayload::json(&serde_json::json!({"a": 1})).unwrap();
/// let m = p.to_format(Format::MsgPack).unwrap();
/// let v: serde_json::Value = m.decode().unwrap();
/// assert_eq!(v["a"], 1);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RawPayload {
    format: Format,
    bytes: Bytes,
}

impl RawPayload {
    /// `null`.
    #[must_use]
    pub const fn null() -> Self {
        Self { format: Format::Json, bytes: Bytes::from_static(b"null") }
    }

    /// A payload from bytes that hold exactly one valid value of `format`. The caller vouches
    /// for the bytes (decoders and [`MapWriter`] do); invalid bytes make later decoding fail,
    /// never panic.
    #[must_use]
    pub const fn from_raw(format: Format, bytes: Bytes) -> Self {
        Self { format, bytes }
    }

    /// Encodes a value as JSON.
    ///
    /// # Errors
    /// When the value cannot be serialized (a map with non-string keys, a failing `Serialize`).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, EncodeError> {
        Self::encode(Format::Json, value)
    }

    /// Encodes a value in `format`.
    ///
    /// # Errors
    /// When the value cannot be serialized in that format.
    pub fn encode<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<Self, EncodeError> {
        let mut out = BytesMut::with_capacity(64).writer();
        match format {
            Format::Json => {
                let _splice = Splice::begin();
                serde_json::to_writer(&mut out, value)?;
            }
            Format::MsgPack => value.serialize(&mut msgpack_serializer(&mut out))?,
        }
        Ok(Self { format, bytes: out.into_inner().freeze() })
    }

    /// Parses JSON text into a payload (validating it).
    ///
    /// # Errors
    /// When the text is not one JSON value.
    pub fn from_json_text(text: &str) -> Result<Self, DecodeError> {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|_| DecodeError::Syntax("JSON"))?;
        Ok(Self { format: Format::Json, bytes: Bytes::copy_from_slice(text.as_bytes()) })
    }

    /// Decodes the payload into `T`.
    ///
    /// # Errors
    /// [`DecodeError::Payload`] says why, in words fit for a `BAD_REQUEST` reply.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        match self.format {
            Format::Json => serde_json::from_slice(&self.bytes).map_err(|e| {
                // serde_json appends " at line 1 column N": the position helps nobody here.
                let text = e.to_string();
                let text = text.split(" at line ").next().unwrap_or_default();
                DecodeError::Payload(text.to_owned())
            }),
            Format::MsgPack => T::deserialize(&mut msgpack_deserializer(&self.bytes))
                .map_err(|e| DecodeError::Payload(e.to_string())),
        }
    }

    /// The format the bytes are in.
    #[must_use]
    pub const fn format(&self) -> Format {
        self.format
    }

    /// The encoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, shared.
    #[must_use]
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Whether the payload is `null` (or MessagePack nil).
    #[must_use]
    pub fn is_null(&self) -> bool {
        match self.format {
            Format::Json => self.bytes.trim_ascii() == b"null",
            Format::MsgPack => self.bytes[..] == [0xc0],
        }
    }

    /// The same value in `format`: a cheap clone when it already is, else a transcoding.
    ///
    /// # Errors
    /// When the value has no equivalent in the other format (a MessagePack map whose keys are
    /// not strings, for JSON).
    pub fn to_format(&self, format: Format) -> Result<Self, EncodeError> {
        if self.format == format {
            return Ok(self.clone());
        }
        let mut out = BytesMut::with_capacity(self.bytes.len() + 8).writer();
        match (self.format, format) {
            (Format::Json, Format::MsgPack) => {
                let mut de = serde_json::Deserializer::from_slice(&self.bytes);
                serde_transcode::transcode(&mut de, &mut msgpack_serializer(&mut out))?;
            }
            _ => {
                let mut de = msgpack_deserializer(&self.bytes);
                let mut ser = serde_json::Serializer::new(&mut out);
                serde_transcode::transcode(&mut de, &mut ser)?;
            }
        }
        Ok(Self { format, bytes: out.into_inner().freeze() })
    }

    pub(crate) fn write_as(&self, format: Format, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.format == format {
            out.extend_from_slice(&self.bytes);
        } else {
            out.extend_from_slice(&self.to_format(format)?.bytes);
        }
        Ok(())
    }
}

impl Default for RawPayload {
    fn default() -> Self {
        Self::null()
    }
}

impl std::fmt::Debug for RawPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.format {
            Format::Json => write!(f, "{}", String::from_utf8_lossy(&self.bytes)),
            Format::MsgPack => write!(f, "msgpack({} bytes)", self.bytes.len()),
        }
    }
}

thread_local! {
    /// Set while [`RawPayload::encode`] runs `serde_json`'s serializer (see [`Splice`]).
    static SPLICE: Cell<bool> = const { Cell::new(false) };
}

/// While alive, JSON payloads serialized on this thread are spliced as raw JSON: [`RawPayload::encode`]
/// holds one around its own `serde_json` serializer, which writes a `RawValue` as-is. Other
/// serializers never see the raw-value token (they transcode), and the previous state comes back
/// on drop (nested encodes, panics).
struct Splice(bool);

impl Splice {
    fn begin() -> Self {
        Self(SPLICE.with(|s| s.replace(true)))
    }
}

impl Drop for Splice {
    fn drop(&mut self) {
        SPLICE.with(|s| s.set(self.0));
    }
}

/// Serializing a payload into any serde serializer transcodes its bytes (used for rare
/// structured messages; the hot paths splice the bytes with [`MapWriter`] instead). Inside
/// [`RawPayload::json`] / [`RawPayload::encode`] to JSON, a JSON payload is copied as it is, not
/// re-parsed (so `RawPayload::json(&payload)` or a struct holding payloads costs a copy).
impl Serialize for RawPayload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        if self.format == Format::Json
            && SPLICE.with(Cell::get)
            && let Ok(text) = std::str::from_utf8(&self.bytes)
        {
            // `serde_json`'s own raw-value protocol: a struct with this name and field is written
            // verbatim.
            let mut raw = s.serialize_struct(RAW_TOKEN, 1)?;
            raw.serialize_field(RAW_TOKEN, text)?;
            return raw.end();
        }
        match self.format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_slice(&self.bytes);
                serde_transcode::transcode(&mut de, s)
            }
            Format::MsgPack => {
                let mut de = msgpack_deserializer(&self.bytes);
                serde_transcode::transcode(&mut de, s)
            }
        }
        .map_err(|e| S::Error::custom(e.to_string()))
    }
}

/// Deserializing a payload from any serde deserializer captures the value as JSON. From
/// `serde_json` (e.g. a field of a [`RawPayload::decode`]d struct) the value's text is copied as it
/// is, not re-parsed; from other deserializers it is transcoded.
impl<'de> Deserialize<'de> for RawPayload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `serde_json` answers this name with the raw text (`visit_map`, see `PayloadVisitor`);
        // every other deserializer with `visit_newtype_struct`, or as `deserialize_any` would.
        d.deserialize_newtype_struct(RAW_TOKEN, PayloadVisitor)
    }
}

/// `serde_json`'s raw-value token (`serde_json::value::RawValue` is (de)serialized through it).
const RAW_TOKEN: &str = "$serde_json::private::RawValue";

/// The first key of a map: `serde_json`'s raw-value token, or a real key.
enum Key {
    Raw,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(if v == RAW_TOKEN { Key::Raw } else { Key::Other(v.to_owned()) })
            }
        }
        d.deserialize_str(V)
    }
}

/// A string's bytes, moved when the deserializer gives it away, else copied once.
struct Text(Bytes);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Bytes::copy_from_slice(v.as_bytes())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(Bytes::from(v.into_bytes())))
            }
        }
        d.deserialize_str(V)
    }
}

fn json_value<E: serde::de::Error>(value: &serde_json::Value) -> Result<RawPayload, E> {
    serde_json::to_vec(value)
        .map(|bytes| RawPayload { format: Format::Json, bytes: Bytes::from(bytes) })
        .map_err(E::custom)
}

/// Builds a payload from whatever a deserializer offers: raw JSON text from `serde_json`, a
/// transcoding otherwise.
struct PayloadVisitor;

impl<'de> serde::de::Visitor<'de> for PayloadVisitor {
    type Value = RawPayload;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<RawPayload, D::Error> {
        use serde::de::Error;
        let mut out = Vec::with_capacity(32);
        let mut ser = serde_json::Serializer::new(&mut out);
        serde_transcode::transcode(d, &mut ser).map_err(|e| D::Error::custom(e.to_string()))?;
        Ok(RawPayload { format: Format::Json, bytes: Bytes::from(out) })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawPayload, A::Error> {
        use serde::de::value::MapAccessDeserializer;
        let key = match map.next_key::<Key>()? {
            None => return Ok(RawPayload { format: Format::Json, bytes: Bytes::from_static(b"{}") }),
            // `serde_json`'s raw value: its text.
            Some(Key::Raw) => {
                return Ok(RawPayload { format: Format::Json, bytes: map.next_value::<Text>()?.0 });
            }
            Some(Key::Other(key)) => key,
        };
        // A map from a deserializer that forwards newtypes to `deserialize_any`.
        let first = map.next_value::<serde_json::Value>()?;
        let mut rest = serde_json::Map::deserialize(MapAccessDeserializer::new(map))?;
        rest.insert(key, first);
        json_value(&serde_json::Value::Object(rest))
    }

    // The rest: deserializers that forward newtypes to `deserialize_any`.
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawPayload, E> {
        json_value(&v.into())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawPayload, E> {
        json_value(&v.into())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawPayload, E> {
        json_value(&v.into())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawPayload, E> {
        json_value(&v.into())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPayload, E> {
        json_value(&v.into())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<RawPayload, E> {
        Ok(RawPayload::null())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<RawPayload, E> {
        Ok(RawPayload::null())
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<RawPayload, D::Error> {
        RawPayload::deserialize(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawPayload, A::Error> {
        json_value(&serde_json::Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?)
    }
}

/// MessagePack decoding with the same nesting limit as serde_json (128), so that deep input is
/// an error rather than a stack overflow on a small thread stack.
fn msgpack_deserializer(bytes: &[u8]) -> rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'_, [u8]>> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(128);
    de
}

pub(crate) fn msgpack_serializer<W: std::io::Write>(
    out: W,
) -> rmp_serde::Serializer<W, rmp_serde::config::StructMapConfig<rmp_serde::config::DefaultConfig>> {
    rmp_serde::Serializer::new(out).with_struct_map()
}

/// Builds a map payload field by field, splicing raw payloads without re-parsing them.
///
/// This is how the hot messages (`~msg` deliveries, presence diffs) are encoded once per format.
///
/// ```
/// use switchboard_protocol::{Format, MapWriter, RawPayload};
/// let data = RawPayload::json(&[1, 2]).unwrap();
/// let mut w = MapWriter::new(Format::Json, 2);
/// w.field("topic", "chat/a").unwrap();
/// w.raw("data", &data).unwrap();
/// assert_eq!(w.finish().as_bytes(), br#"{"topic":"chat/a","data":[1,2]}"#);
/// ```
#[derive(Debug)]
pub struct MapWriter {
    format: Format,
    out: BytesMut,
    declared: u32,
    written: u32,
}

impl MapWriter {
    /// Starts a map of exactly `len` entries.
    #[must_use]
    pub fn new(format: Format, len: u32) -> Self {
        let mut out = BytesMut::with_capacity(128);
        match format {
            Format::Json => out.put_u8(b'{'),
            Format::MsgPack => {
                // Writing into a BytesMut cannot fail.
                let _ = rmp::encode::write_map_len(&mut (&mut out).writer(), len);
            }
        }
        Self { format, out, declared: len, written: 0 }
    }

    fn key(&mut self, key: &str) {
        self.written += 1;
        match self.format {
            Format::Json => {
                if self.written > 1 {
                    self.out.put_u8(b',');
                }
                let _ = serde_json::to_writer((&mut self.out).writer(), key);
                self.out.put_u8(b':');
            }
            Format::MsgPack => {
                let _ = rmp::encode::write_str(&mut (&mut self.out).writer(), key);
            }
        }
    }

    /// Adds an entry whose value is serialized.
    ///
    /// # Errors
    /// When the value cannot be serialized.
    pub fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<&mut Self, EncodeError> {
        self.key(key);
        let w = (&mut self.out).writer();
        match self.format {
            Format::Json => serde_json::to_writer(w, value)?,
            Format::MsgPack => value.serialize(&mut msgpack_serializer(w))?,
        }
        Ok(self)
    }

    /// Adds an entry whose value is a raw payload, spliced as is (or transcoded once if it is in
    /// the other format).
    ///
    /// # Errors
    /// When the payload has no equivalent in this format.
    pub fn raw(&mut self, key: &str, payload: &RawPayload) -> Result<&mut Self, EncodeError> {
        self.key(key);
        payload.write_as(self.format, &mut self.out)?;
        Ok(self)
    }

    /// The finished map.
    ///
    /// # Panics
    /// In debug builds, when the number of entries differs from the declared length.
    #[must_use]
    pub fn finish(mut self) -> RawPayload {
        debug_assert_eq!(self.declared, self.written, "MapWriter: declared and written lengths differ");
        if self.format == Format::Json {
            self.out.put_u8(b'}');
        }
        RawPayload { format: self.format, bytes: self.out.freeze() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Tell {
        user: String,
        data: RawPayload,
        #[serde(default)]
        more: Option<RawPayload>,
    }

    #[test]
    fn a_json_payload_field_keeps_its_text() {
        let frame =
            RawPayload::from_json_text(r#"{"user":"u1","data":{"a": [1, "\u0041"]},"more":null}"#).unwrap();
        let t: Tell = frame.decode().unwrap();
        assert_eq!(t.data.as_bytes(), br#"{"a": [1, "\u0041"]}"#);
        assert_eq!(t.more, None);
        // From a `serde_json::Value`, from MessagePack: transcoded, same value.
        let v: serde_json::Value = frame.decode().unwrap();
        let t: Tell = serde_json::from_value(v).unwrap();
        assert_eq!(t.data.decode::<serde_json::Value>().unwrap(), serde_json::json!({"a": [1, "A"]}));
        let m = frame.to_format(Format::MsgPack).unwrap();
        let t: Tell = m.decode().unwrap();
        assert_eq!(t.data.as_bytes(), br#"{"a":[1,"A"]}"#);
        // From a deserializer that forwards newtypes to `deserialize_any`.
        use serde::de::IntoDeserializer;
        let p = RawPayload::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer("x"))
            .unwrap();
        assert_eq!(p.as_bytes(), br#""x""#);
    }

    #[test]
    fn encoding_to_json_splices_json_payloads() {
        let data = RawPayload::from_json_text(r#"{"b": 2}"#).unwrap();
        assert_eq!(RawPayload::json(&data).unwrap().as_bytes(), br#"{"b": 2}"#);
        let more = RawPayload::json(&[1, 2]).unwrap().to_format(Format::MsgPack).unwrap();
        let t = Tell { user: "u".into(), data: data.clone(), more: Some(more) };
        assert_eq!(RawPayload::json(&t).unwrap().as_bytes(), br#"{"user":"u","data":{"b": 2},"more":[1,2]}"#);
        // Other serializers transcode, also when called from inside a JSON encoding.
        let m = RawPayload::encode(Format::MsgPack, &t).unwrap();
        assert_eq!(m.decode::<serde_json::Value>().unwrap()["data"], serde_json::json!({"b": 2}));
        assert_eq!(serde_json::to_value(&data).unwrap(), serde_json::json!({"b": 2}));
        assert_eq!(serde_json::to_string(&data).unwrap(), r#"{"b":2}"#);
    }
}
