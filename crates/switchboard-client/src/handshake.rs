//! Identification, as steps without I/O: what each frame that arrives before the welcome
//! means. The connection task sends `~hello` (with a fresh identity from the provider), then
//! feeds every frame to [`step`] until the welcome, or the refusal that stops the client.

use switchboard_protocol::wire::{Bye, Welcome, types};
use switchboard_protocol::{ErrorBody, Id, Message, RawPayload, codes};

use crate::error::ConnectionError;

/// What a frame received during identification asks of the connection task.
#[derive(Debug)]
pub(crate) enum Step {
    /// Identified.
    Welcome(Welcome),
    /// Not identified: refused (`~err` to `~hello`, classified by
    /// [`ConnectionError::is_fatal`]), or a welcome that does not decode.
    Failed(ConnectionError),
    /// The server's `~challenge`: answer it with the challenge handler.
    Challenge { id: Id, quest: RawPayload },
    /// `~ping`: answer `~ok`.
    Ping(Id),
    /// The server's `~bye` (a close follows).
    Bye(Option<Bye>),
    /// Anything else, which does not belong before the welcome.
    Ignore,
}

/// The meaning of one message received while waiting for the reply to `~hello` `hello_id`.
pub(crate) fn step(hello_id: Id, msg: Message) -> Step {
    match (msg.kind.as_str(), msg.id) {
        (types::OK, Some(id)) if id == hello_id => match msg.payload.decode::<Welcome>() {
            Ok(welcome) => Step::Welcome(welcome),
            Err(e) => Step::Failed(ConnectionError::Network(format!("undecodable welcome: {e}"))),
        },
        (types::ERR, Some(id)) if id == hello_id => Step::Failed(refusal(&msg.payload)),
        (types::CHALLENGE, Some(id)) => Step::Challenge { id, quest: msg.payload },
        (types::PING, Some(id)) => Step::Ping(id),
        (types::BYE, _) => Step::Bye(msg.payload.decode().ok()),
        (kind, _) => {
            tracing::debug!(kind, "frame before the welcome ignored");
            Step::Ignore
        }
    }
}

/// A `~err` to `~hello`, with the server's code and message. An undecodable one counts as
/// `FAILED`, which is retried.
fn refusal(payload: &RawPayload) -> ConnectionError {
    let body = payload
        .decode::<ErrorBody>()
        .unwrap_or_else(|e| ErrorBody::new(codes::FAILED, format!("undecodable refusal: {e}")));
    ConnectionError::Refused { code: body.code, message: body.message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::Format;

    fn msg(json: &str) -> Message {
        Format::Json.decode(&bytes::Bytes::from(json.to_owned())).unwrap()
    }

    #[test]
    fn the_reply_to_hello_decides() {
        let hello = Id::new(3).unwrap();
        let welcome = r#"["~ok",{"conn":"c","user":"u","ns":"main","data":null,"heartbeat":5000},3]"#;
        assert!(matches!(step(hello, msg(welcome)), Step::Welcome(w) if w.conn == "c"));
        let refused = r#"["~err",{"code":"NOT_AUTHORIZED","message":"bad password"},3]"#;
        let Step::Failed(e) = step(hello, msg(refused)) else { panic!() };
        assert_eq!(
            e,
            ConnectionError::Refused { code: "NOT_AUTHORIZED".into(), message: "bad password".into() }
        );
        assert!(e.is_fatal());
        let busy = r#"["~err",{"code":"UNAVAILABLE","message":"try later"},3]"#;
        assert!(matches!(step(hello, msg(busy)), Step::Failed(e) if !e.is_fatal()));
        let garbled = r#"["~err","what",3]"#;
        assert!(matches!(step(hello, msg(garbled)), Step::Failed(e) if e.code() == "FAILED"));
        // A reply to another id is not the welcome.
        assert!(matches!(step(hello, msg(r#"["~ok",null,4]"#)), Step::Ignore));
    }

    #[test]
    fn challenges_pings_and_byes_are_passed_on() {
        let hello = Id::new(1).unwrap();
        let challenge = step(hello, msg(r#"["~challenge",{"nonce":"ab"},9]"#));
        assert!(matches!(challenge, Step::Challenge { id, .. } if id.get() == 9));
        assert!(matches!(step(hello, msg(r#"["~ping",null,2]"#)), Step::Ping(id) if id.get() == 2));
        let bye = step(hello, msg(r#"["~bye",{"code":4000,"reason":"moving"}]"#));
        assert!(matches!(bye, Step::Bye(Some(b)) if b.code == 4000));
    }
}
