//! Raw payloads: one encoded value, kept as bytes until someone needs it typed.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{DecodeError, EncodeError, Format};

/// One encoded value (JSON text or MessagePack bytes), kept raw.
///
/// Routing a message never parses its payload: a handler decodes it into the type it wants with
/// [`Payload::decode`], and a publication splices it into every delivery without re-parsing.
/// A payload sent to a connection of the other format is transcoded once ([`Payload::to_format`]).
/// Cloning is cheap (the bytes are shared).
///
/// ```
/// use switchboard_protocol::{Format, Payload};
/// let p = Payload::json(&serde_json::json!({"a": 1})).unwrap();
/// let m = p.to_format(Format::MsgPack).unwrap();
/// let v: serde_json::Value = m.decode().unwrap();
/// assert_eq!(v["a"], 1);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    format: Format,
    bytes: Bytes,
}

impl Payload {
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
            Format::Json => serde_json::to_writer(&mut out, value)?,
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

impl Default for Payload {
    fn default() -> Self {
        Self::null()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.format {
            Format::Json => write!(f, "{}", String::from_utf8_lossy(&self.bytes)),
            Format::MsgPack => write!(f, "msgpack({} bytes)", self.bytes.len()),
        }
    }
}

/// Serializing a payload into any serde serializer transcodes its bytes (used for rare
/// structured messages; the hot paths splice the bytes with [`MapWriter`] instead).
impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
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

/// Deserializing a payload from any serde deserializer captures the value as JSON.
impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut out = Vec::with_capacity(32);
        let mut ser = serde_json::Serializer::new(&mut out);
        serde_transcode::transcode(d, &mut ser).map_err(|e| D::Error::custom(e.to_string()))?;
        Ok(Self { format: Format::Json, bytes: Bytes::from(out) })
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
/// use switchboard_protocol::{Format, MapWriter, Payload};
/// let data = Payload::json(&[1, 2]).unwrap();
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
    pub fn raw(&mut self, key: &str, payload: &Payload) -> Result<&mut Self, EncodeError> {
        self.key(key);
        payload.write_as(self.format, &mut self.out)?;
        Ok(self)
    }

    /// The finished map.
    ///
    /// # Panics
    /// In debug builds, when the number of entries differs from the declared length.
    #[must_use]
    pub fn finish(mut self) -> Payload {
        debug_assert_eq!(self.declared, self.written, "MapWriter: declared and written lengths differ");
        if self.format == Format::Json {
            self.out.put_u8(b'}');
        }
        Payload { format: self.format, bytes: self.out.freeze() }
    }
}
