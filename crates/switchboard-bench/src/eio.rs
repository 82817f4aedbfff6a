//! Engine.IO v4 / Socket.IO v5 framing over WebSocket, as much as the bench needs.
//!
//! Engine.IO packet types are one digit: `0` open, `2` ping, `3` pong, `4` message. A Socket.IO
//! packet rides in a message: `40` connect, `42[...]` event, `43<ack>[...]` ack, with the ack id
//! (decimal) between the type and the JSON array.

/// A parsed server → client frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0{...}`: the handshake (JSON text).
    Open(&'a str),
    /// `2`: ping; answer `3`.
    Ping,
    /// `40{...}` or `40`: namespace connected.
    Connected,
    /// `42[...]`: an event (the JSON array).
    Event(&'a str),
    /// `43<ack>[...]`: an acknowledgement.
    Ack(u64, &'a str),
    /// Anything else.
    Other(&'a str),
}

/// Parses one text frame.
pub fn parse(frame: &str) -> Packet<'_> {
    let b = frame.as_bytes();
    match (b.first(), b.get(1)) {
        (Some(b'0'), _) => Packet::Open(&frame[1..]),
        (Some(b'2'), None) => Packet::Ping,
        (Some(b'4'), Some(b'0')) => Packet::Connected,
        (Some(b'4'), Some(b'2')) => Packet::Event(&frame[2..]),
        (Some(b'4'), Some(b'3')) => {
            let rest = &frame[2..];
            let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            match rest[..end].parse() {
                Ok(ack) => Packet::Ack(ack, &rest[end..]),
                Err(_) => Packet::Other(frame),
            }
        }
        _ => Packet::Other(frame),
    }
}

/// `42<ack>["<event>","<a>",…]` with string arguments (the bench's are plain ASCII, no escaping
/// needed; quotes and backslashes are escaped anyway).
pub fn event(ack: Option<u64>, event: &str, args: &[&str]) -> String {
    let mut s = String::with_capacity(16 + event.len() + args.iter().map(|a| a.len() + 3).sum::<usize>());
    s.push_str("42");
    if let Some(ack) = ack {
        s.push_str(&ack.to_string());
    }
    s.push('[');
    push_str(&mut s, event);
    for a in args {
        s.push(',');
        push_str(&mut s, a);
    }
    s.push(']');
    s
}

/// Appends a JSON string.
fn push_str(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_frames() {
        assert_eq!(
            parse(r#"0{"sid":"x","pingInterval":25000}"#),
            Packet::Open(r#"{"sid":"x","pingInterval":25000}"#)
        );
        assert_eq!(parse("2"), Packet::Ping);
        assert_eq!(parse(r#"40{"sid":"y"}"#), Packet::Connected);
        assert_eq!(parse("40"), Packet::Connected);
        assert_eq!(parse(r##"42["m","#0000000001#xx"]"##), Packet::Event(r##"["m","#0000000001#xx"]"##));
        assert_eq!(parse(r#"4317["hi"]"#), Packet::Ack(17, r#"["hi"]"#));
        assert_eq!(parse("43[]"), Packet::Other("43[]"));
        assert_eq!(parse("6"), Packet::Other("6"));
    }

    #[test]
    fn writes_events() {
        assert_eq!(event(Some(3), "sub", &["t"]), r#"423["sub","t"]"#);
        assert_eq!(event(None, "pub", &["t", "a\"b"]), r#"42["pub","t","a\"b"]"#);
    }
}
