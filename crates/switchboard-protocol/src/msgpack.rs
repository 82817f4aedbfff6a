//! MessagePack frame decoding: the envelope is read by hand so that the payload can be sliced
//! out of the frame without being parsed into a value.

use bytes::Bytes;

use crate::{DecodeError, Format, Id, Message, MessageType, RawPayload};

const SYNTAX: DecodeError = DecodeError::Syntax("MessagePack");

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(SYNTAX)?;
        self.pos += 1;
        Ok(b)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        let end = self.pos.checked_add(n).ok_or(SYNTAX)?;
        let bytes = self.buf.get(self.pos..end).ok_or(SYNTAX)?;
        self.pos = end;
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn skip(&mut self, n: u64) -> Result<(), DecodeError> {
        let n = usize::try_from(n).map_err(|_| SYNTAX)?;
        let end = self.pos.checked_add(n).ok_or(SYNTAX)?;
        if end > self.buf.len() {
            return Err(SYNTAX);
        }
        self.pos = end;
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Skips one complete value, iteratively (no recursion, so no stack overflow on deep input).
    fn skip_value(&mut self) -> Result<(), DecodeError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.byte()?;
            let more: u64 = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
                0x80..=0x8f => 2 * u64::from(m & 0x0f),
                0x90..=0x9f => u64::from(m & 0x0f),
                0xa0..=0xbf => {
                    self.skip(u64::from(m & 0x1f))?;
                    0
                }
                0xc4 | 0xd9 => {
                    let n = self.be(1)?;
                    self.skip(n)?;
                    0
                }
                0xc5 | 0xda => {
                    let n = self.be(2)?;
                    self.skip(n)?;
                    0
                }
                0xc6 | 0xdb => {
                    let n = self.be(4)?;
                    self.skip(n)?;
                    0
                }
                0xc7 => {
                    let n = self.be(1)?;
                    self.skip(n + 1)?;
                    0
                }
                0xc8 => {
                    let n = self.be(2)?;
                    self.skip(n + 1)?;
                    0
                }
                0xc9 => {
                    let n = self.be(4)?;
                    self.skip(n + 1)?;
                    0
                }
                0xca => self.skip(4).map(|()| 0)?,
                0xcb => self.skip(8).map(|()| 0)?,
                0xcc | 0xd0 => self.skip(1).map(|()| 0)?,
                0xcd | 0xd1 => self.skip(2).map(|()| 0)?,
                0xce | 0xd2 => self.skip(4).map(|()| 0)?,
                0xcf | 0xd3 => self.skip(8).map(|()| 0)?,
                0xd4 => self.skip(2).map(|()| 0)?,
                0xd5 => self.skip(3).map(|()| 0)?,
                0xd6 => self.skip(5).map(|()| 0)?,
                0xd7 => self.skip(9).map(|()| 0)?,
                0xd8 => self.skip(17).map(|()| 0)?,
                0xdc => self.be(2)?,
                0xdd => self.be(4)?,
                0xde => 2 * self.be(2)?,
                0xdf => 2 * self.be(4)?,
                0xc1 => return Err(SYNTAX),
            };
            pending = pending.checked_add(more).ok_or(SYNTAX)?;
            // Every pending value takes at least one byte: fail early on absurd lengths.
            if pending > self.remaining() as u64 {
                return Err(SYNTAX);
            }
        }
        Ok(())
    }
}

pub(crate) fn decode(frame: &Bytes) -> Result<Message, DecodeError> {
    let mut c = Cursor { buf: frame, pos: 0 };
    let len = match c.byte()? {
        m @ 0x90..=0x9f => u64::from(m & 0x0f),
        0xdc => c.be(2)?,
        0xdd => c.be(4)?,
        _ => {
            c.pos = 0;
            c.skip_value()?;
            return Err(DecodeError::NotArray);
        }
    };
    if !(1..=3).contains(&len) {
        return Err(DecodeError::NotArray);
    }
    let kind_len = match c.byte()? {
        m @ 0xa0..=0xbf => u64::from(m & 0x1f),
        0xd9 => c.be(1)?,
        0xda => c.be(2)?,
        0xdb => c.be(4)?,
        _ => return Err(DecodeError::BadType),
    };
    let start = c.pos;
    c.skip(kind_len)?;
    let kind = std::str::from_utf8(&frame[start..c.pos]).map_err(|_| DecodeError::BadType)?;
    let kind = MessageType::new(kind).ok_or(DecodeError::BadType)?;
    let payload = if len >= 2 {
        let start = c.pos;
        c.skip_value()?;
        RawPayload::from_raw(Format::MsgPack, frame.slice(start..c.pos))
    } else {
        RawPayload::null()
    };
    let id = if len == 3 { read_id(&mut c)? } else { None };
    if c.remaining() != 0 {
        return Err(SYNTAX);
    }
    Ok(Message { kind, payload, id })
}

fn read_id(c: &mut Cursor<'_>) -> Result<Option<Id>, DecodeError> {
    let value: i128 = match c.byte()? {
        0xc0 => return Ok(None),
        m @ 0x00..=0x7f => i128::from(m),
        0xcc => i128::from(c.be(1)?),
        0xcd => i128::from(c.be(2)?),
        0xce => i128::from(c.be(4)?),
        0xcf => i128::from(c.be(8)?),
        0xd0 => i128::from(c.be(1)? as u8 as i8),
        0xd1 => i128::from(c.be(2)? as u16 as i16),
        0xd2 => i128::from(c.be(4)? as u32 as i32),
        0xd3 => i128::from(c.be(8)? as i64),
        0xe0..=0xff => -1,
        _ => return Err(DecodeError::BadId),
    };
    let value = u64::try_from(value).map_err(|_| DecodeError::BadId)?;
    Id::new(value).map(Some).ok_or(DecodeError::BadId)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(v: &serde_json::Value) -> Bytes {
        Bytes::from(rmp_serde::to_vec(v).unwrap())
    }

    #[test]
    fn envelope() {
        let m = decode(&mp(&serde_json::json!(["add", {"a": 1, "b": [2, 3]}, 4]))).unwrap();
        assert_eq!(m.kind.as_str(), "add");
        assert_eq!(m.id, Id::new(4));
        let v: serde_json::Value = m.payload.decode().unwrap();
        assert_eq!(v, serde_json::json!({"a": 1, "b": [2, 3]}));
        assert!(decode(&mp(&serde_json::json!(["x"]))).unwrap().payload.is_null());
        assert_eq!(decode(&mp(&serde_json::json!([]))).unwrap_err(), DecodeError::NotArray);
        assert_eq!(decode(&mp(&serde_json::json!({"a": 1}))).unwrap_err(), DecodeError::NotArray);
        assert_eq!(decode(&mp(&serde_json::json!([1]))).unwrap_err(), DecodeError::BadType);
        assert_eq!(decode(&mp(&serde_json::json!(["x", 1, "y"]))).unwrap_err(), DecodeError::BadId);
        assert_eq!(decode(&mp(&serde_json::json!(["x", 1, 0]))).unwrap_err(), DecodeError::BadId);
        assert_eq!(decode(&mp(&serde_json::json!(["x", 1, 2, 3]))).unwrap_err(), DecodeError::NotArray);
        assert_eq!(decode(&Bytes::from_static(&[0x92, 0xa1, b'x'])).unwrap_err(), SYNTAX);
        assert_eq!(decode(&Bytes::from_static(&[0x91, 0xa1, b'x', 0x00])).unwrap_err(), SYNTAX);
        assert_eq!(
            decode(&Bytes::from_static(&[0x92, 0xa1, b'x', 0xdd, 0xff, 0xff, 0xff, 0xff])).unwrap_err(),
            SYNTAX
        );
    }
}
