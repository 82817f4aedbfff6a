//! The numbers of RFC 6455 framing that both directions use.

pub(super) const OP_CONTINUATION: u8 = 0x0;
pub(super) const OP_TEXT: u8 = 0x1;
pub(super) const OP_BINARY: u8 = 0x2;
pub(super) const OP_CLOSE: u8 = 0x8;
pub(super) const OP_PING: u8 = 0x9;
pub(super) const OP_PONG: u8 = 0xA;

/// Close code for a violation of RFC 6455.
pub(crate) const PROTOCOL_ERROR: u16 = 1002;
/// Close code for data inconsistent with its type (invalid UTF-8 in a close reason).
pub(crate) const INVALID_DATA: u16 = 1007;

/// The opcode of a data frame.
pub(super) fn data_opcode(binary: bool) -> u8 {
    if binary { OP_BINARY } else { OP_TEXT }
}
