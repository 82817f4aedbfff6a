//! Shared golden vectors: `tests/golden/vectors.json` at the workspace root, read by the Rust
//! and TypeScript clients alike.
//!
//! Each case is `{name, message, json, msgpack_hex}`: `message` is the message `[type, payload,
//! id?]` as JSON, `json` the exact text of its JSON frame, `msgpack_hex` the hex of its exact
//! MessagePack frame (maps with string keys in the order shown, smallest integer encodings,
//! floats as float 64).
//!
//! The file is generated from the protocol's typed payloads (`switchboard_protocol::wire`) by
//! [`generate`]; regenerate it with
//! `SWITCHBOARD_WRITE_GOLDEN=1 cargo test -p switchboard-client --test golden`.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchboard_protocol::wire::{
    Bye, Delivery, DirectDelivery, DirectMessage, DmSender, DmTarget, Hello, InfoRequest, Origin, Peer,
    PeerChange, Peers, PresenceDiff, Published, Refresh, Status, StreamPosition, Subscribe, Subscribed,
    Unsubscribe, Unsubscribed, Welcome, Who,
};
use switchboard_protocol::{ErrorBody, Format, Id, RawPayload, encode};

fn vectors_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/vectors.json")
}

/// One generated case: the payload encoded in each format from the same typed value.
struct Generated {
    name: &'static str,
    kind: &'static str,
    json: RawPayload,
    msgpack: RawPayload,
    id: Option<u64>,
}

fn case<T: Serialize>(name: &'static str, kind: &'static str, value: &T, id: Option<u64>) -> Generated {
    Generated {
        name,
        kind,
        json: RawPayload::encode(Format::Json, value).unwrap(),
        msgpack: RawPayload::encode(Format::MsgPack, value).unwrap(),
        id,
    }
}

fn p(v: &Value) -> RawPayload {
    RawPayload::json(v).unwrap()
}

fn alice_peer() -> Peer {
    Peer {
        conn: "c1".into(),
        user: Some("alice".into()),
        alias: Some("alice".into()),
        available: true,
        public: p(&json!({"since": "fixture"})),
    }
}

/// Every reserved message shape of protocol.md, and application messages.
fn generate() -> Vec<Generated> {
    let lobby = || "chat/lobby".to_owned();
    vec![
        // Handshake (section 3).
        case(
            "hello",
            "~hello",
            &Hello {
                ns: Some("main".into()),
                identity: Some(p(&json!({"password": "pw-alice", "user": "alice"}))),
                meta: Some(p(&json!({"device": "cli"}))),
            },
            Some(1),
        ),
        case("hello.defaults", "~hello", &Hello::default(), Some(1)),
        case("challenge", "~challenge", &json!({"nonce": "9f86d081884c7d65"}), Some(1)),
        case("challenge.answer", "~ok", &"5d41402abc4b2a76b9719d911017c592", Some(1)),
        case(
            "welcome",
            "~ok",
            &Welcome {
                conn: "c1".into(),
                user: Some("alice".into()),
                ns: "main".into(),
                data: p(&json!({"hello": "alice"})),
                heartbeat: 25000,
            },
            Some(1),
        ),
        case(
            "welcome.anonymous",
            "~ok",
            &Welcome {
                conn: "c2".into(),
                user: None,
                ns: "public".into(),
                data: RawPayload::null(),
                heartbeat: 5000,
            },
            Some(1),
        ),
        case(
            "err.not_authorized",
            "~err",
            &ErrorBody::new("NOT_AUTHORIZED", "identification refused"),
            Some(1),
        ),
        case(
            "err.already_identified",
            "~err",
            &ErrorBody::new("ALREADY_IDENTIFIED", "already identified"),
            Some(2),
        ),
        // Replies and pushes (sections 2 and 4).
        case("ok.null", "~ok", &(), Some(7)),
        case(
            "err.push_with_data",
            "~err",
            &ErrorBody::new("NOT_FOUND", "no handler for nope").with_data(p(&json!({"type": "nope"}))),
            None,
        ),
        case("err.timeout", "~err", &ErrorBody::new("TIMEOUT", "the peer did not answer in time"), Some(9)),
        // Liveness, info, leaving (section 7).
        case("ping", "~ping", &(), Some(2)),
        case("info", "~info", &InfoRequest { detail: true }, Some(13)),
        case("refresh", "~refresh", &Refresh { identity: p(&json!({"token": "t2"})) }, Some(14)),
        case(
            "bye.jump",
            "~bye",
            &Bye {
                code: 4000,
                reason: "rebalancing".into(),
                jump: Some("ws://other.example:8080/ws".into()),
            },
            None,
        ),
        case("bye", "~bye", &Bye { code: 1001, reason: "shutting down".into(), jump: None }, None),
        // Topics (section 5).
        case("sub", "~sub", &Subscribe { topic: lobby(), since: None }, Some(3)),
        case(
            "sub.since",
            "~sub",
            &Subscribe { topic: lobby(), since: Some(StreamPosition { epoch: "e1".into(), seq: 42 }) },
            Some(4),
        ),
        case(
            "subscribed",
            "~ok",
            &Subscribed { topic: lobby(), epoch: "e1".into(), seq: 42, recovered: true },
            Some(4),
        ),
        case("unsub.topic", "~unsub", &Unsubscribe { topic: Some(lobby()), prefix: None }, None),
        case(
            "unsub.prefix",
            "~unsub",
            &Unsubscribe { topic: None, prefix: Some("todo/list1".into()) },
            Some(5),
        ),
        case("unsub.all", "~unsub", &Unsubscribe::default(), Some(6)),
        case("unsubscribed", "~ok", &Unsubscribed { topics: vec![lobby(), "chat/side".into()] }, Some(5)),
        case(
            "pub",
            "~pub",
            &switchboard_protocol::wire::Publish {
                topic: lobby(),
                event: Some("say".into()),
                data: p(&json!({"text": "hi"})),
                echo: true,
                key: None,
            },
            Some(6),
        ),
        case(
            "pub.minimal",
            "~pub",
            &switchboard_protocol::wire::Publish {
                topic: lobby(),
                event: None,
                data: p(&json!(1)),
                echo: false,
                key: None,
            },
            Some(7),
        ),
        case("published", "~ok", &Published { seq: 43 }, Some(6)),
        case(
            "msg",
            "~msg",
            &Delivery {
                topic: lobby(),
                event: Some("say".into()),
                data: p(&json!({"text": "hi"})),
                seq: 43,
                from: Some(Origin { conn: "c1".into(), user: Some("alice".into()) }),
                epoch: None,
            },
            None,
        ),
        case(
            "msg.from_server",
            "~msg",
            &Delivery {
                topic: "todo/list1/item1".into(),
                event: None,
                data: p(&json!({"done": true})),
                seq: 1,
                from: None,
                epoch: None,
            },
            None,
        ),
        case(
            "msg.acknowledged",
            "~msg",
            &Delivery {
                topic: "acked/x".into(),
                event: None,
                data: p(&json!("important")),
                seq: 300,
                from: None,
                epoch: None,
            },
            Some(11),
        ),
        // Users, presence, direct messages (section 6).
        case(
            "status.alias",
            "~status",
            &Status { alias: Some(Some("ally".into())), available: None },
            Some(7),
        ),
        case("status.clear_alias", "~status", &Status { alias: Some(None), available: Some(false) }, Some(8)),
        case("who", "~who", &Who::default(), Some(9)),
        case("who.topic", "~who", &Who { topic: Some(lobby()) }, Some(10)),
        case(
            "peers",
            "~ok",
            &Peers {
                peers: vec![
                    alice_peer(),
                    Peer {
                        conn: "c2".into(),
                        user: None,
                        alias: None,
                        available: false,
                        public: RawPayload::null(),
                    },
                ],
            },
            Some(9),
        ),
        case("peer", "~peer", &PeerChange { peer: alice_peer(), online: true }, None),
        case("peer.offline", "~peer", &PeerChange { peer: alice_peer(), online: false }, None),
        case(
            "presence",
            "~presence",
            &PresenceDiff { topic: lobby(), joins: vec![alice_peer()], leaves: vec![] },
            None,
        ),
        case(
            "dm.to_conn",
            "~dm",
            &DirectMessage { to: DmTarget::Conn("c2".into()), data: p(&json!("psst")) },
            Some(12),
        ),
        case(
            "dm.to_alias",
            "~dm",
            &DirectMessage { to: DmTarget::Alias("bob".into()), data: p(&json!({"text": "hi bob"})) },
            Some(12),
        ),
        case(
            "dm.delivery",
            "~dm",
            &DirectDelivery {
                from: DmSender { conn: "c1".into(), user: Some("alice".into()), alias: Some("alice".into()) },
                data: p(&json!({"text": "hi bob"})),
            },
            None,
        ),
        // Application messages (keys sorted: that is how a serde_json value serializes).
        case("app.request", "add", &json!({"a": 1, "b": 2}), Some(7)),
        case("app.reply_float", "~ok", &3.5, Some(7)),
        case("app.event", "chat.typing", &json!({"room": "lobby"}), None),
        case("app.event_null", "status", &(), None),
        case("app.acknowledged_event", "note", &json!({"n": 1}), Some(17)),
        case("app.error", "~err", &ErrorBody::new("TEAPOT", "I'm a teapot"), Some(16)),
        case(
            "app.scalars_max_id",
            "echo",
            &json!([
                0,
                1,
                127,
                128,
                255,
                256,
                65535,
                65536,
                4294967295_u64,
                4294967296_u64,
                -1,
                -32,
                -33,
                -128,
                -129,
                -32768,
                -32769,
                -2147483648_i64,
                -2147483649_i64,
                0.25,
                -1.5e300,
                true,
                false,
                null,
                "",
                "ü✓ \"quoted\" \\ \n"
            ]),
            Some(9007199254740991),
        ),
        case(
            "app.sizes",
            "echo",
            &json!({
                "array16": (0..16).collect::<Vec<u32>>(),
                "str8": "x".repeat(32),
                "str16": "y".repeat(256),
                "map16": (0..16).map(|i| (format!("k{i:02}"), json!(i))).collect::<serde_json::Map<_, _>>(),
            }),
            Some(18),
        ),
        case(
            "app.nested",
            "tell",
            &json!({"payload": {"a": [{"b": {}}, []]}, "type": "note", "user": "bob"}),
            Some(15),
        ),
    ]
}

/// Writes the cases, one field a line, the message spliced as its JSON frame.
fn render(cases: &[Generated]) -> String {
    let mut out = String::from("[\n");
    for (i, c) in cases.iter().enumerate() {
        let id = c.id.map(|v| Id::new(v).unwrap());
        let json = encode(Format::Json, c.kind, &c.json, id).unwrap();
        let msgpack = encode(Format::MsgPack, c.kind, &c.msgpack, id).unwrap();
        let json = std::str::from_utf8(&json).unwrap();
        out.push_str("  {\n");
        out.push_str(&format!("    \"name\": {},\n", serde_json::to_string(c.name).unwrap()));
        out.push_str(&format!("    \"message\": {json},\n"));
        out.push_str(&format!("    \"json\": {},\n", serde_json::to_string(json).unwrap()));
        out.push_str(&format!("    \"msgpack_hex\": \"{}\"\n", hex::encode(&msgpack)));
        out.push_str(if i + 1 == cases.len() { "  }\n" } else { "  },\n" });
    }
    out.push_str("]\n");
    out
}

#[derive(serde::Deserialize)]
struct FileCase {
    name: String,
    message: Box<RawValue>,
    json: String,
    msgpack_hex: String,
}

fn read_file() -> Vec<FileCase> {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Same content as the generator's (parsed, so formatting does not matter).
#[test]
fn the_vectors_file_is_what_the_wire_types_produce() {
    let generated = generate();
    let text = render(&generated);
    if std::env::var_os("SWITCHBOARD_WRITE_GOLDEN").is_some() {
        let path = vectors_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let expected: Vec<FileCase> = serde_json::from_str(&text).unwrap();
    let actual = read_file();
    let key = |c: &FileCase| {
        (
            c.name.clone(),
            serde_json::from_str::<Value>(c.message.get()).unwrap(),
            c.json.clone(),
            c.msgpack_hex.clone(),
        )
    };
    assert_eq!(actual.len(), expected.len(), "regenerate with SWITCHBOARD_WRITE_GOLDEN=1");
    for (a, e) in actual.iter().zip(&expected) {
        assert_eq!(key(a), key(e), "case {} differs: regenerate with SWITCHBOARD_WRITE_GOLDEN=1", e.name);
    }
    // Both encodings come from the same typed value; they must agree with each other.
    for c in &generated {
        assert_eq!(c.json.to_format(Format::MsgPack).unwrap(), c.msgpack, "{}", c.name);
    }
}

/// The protocol crate decodes every frame into the message, and encodes the message into
/// exactly those bytes, in both formats.
#[test]
fn every_vector_decodes_and_encodes_exactly() {
    let cases = read_file();
    assert!(cases.len() >= 40);
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name.clone()), "duplicate name {}", c.name);
        let parts: Vec<Box<RawValue>> = serde_json::from_str(c.message.get()).unwrap();
        assert!((2..=3).contains(&parts.len()), "{}", c.name);
        let kind: String = serde_json::from_str(parts[0].get()).unwrap();
        let raw_payload = parts[1].get();
        let payload_value: Value = serde_json::from_str(raw_payload).unwrap();
        let id = parts.get(2).map(|r| Id::new(serde_json::from_str::<u64>(r.get()).unwrap()).unwrap());

        // JSON: decode, then encode back to the same text.
        let json_frame = bytes::Bytes::from(c.json.clone().into_bytes());
        let msg = Format::Json.decode(&json_frame).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(msg.kind.as_str(), kind, "{}", c.name);
        assert_eq!(msg.id, id, "{}", c.name);
        assert_eq!(msg.payload.decode::<Value>().unwrap(), payload_value, "{}", c.name);
        let payload = RawPayload::from_json_text(raw_payload).unwrap();
        let encoded = encode(Format::Json, &kind, &payload, id).unwrap();
        assert_eq!(std::str::from_utf8(&encoded).unwrap(), c.json, "{}", c.name);

        // MessagePack: decode, then encode back to the same bytes.
        let mp_frame = bytes::Bytes::from(hex::decode(&c.msgpack_hex).unwrap());
        let msg = Format::MsgPack.decode(&mp_frame).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(msg.kind.as_str(), kind, "{}", c.name);
        assert_eq!(msg.id, id, "{}", c.name);
        assert_eq!(msg.payload.decode::<Value>().unwrap(), payload_value, "{}", c.name);
        let mp_payload = payload.to_format(Format::MsgPack).unwrap();
        let encoded = encode(Format::MsgPack, &kind, &mp_payload, id).unwrap();
        assert_eq!(hex::encode(&encoded), c.msgpack_hex, "{}", c.name);
        // A MessagePack payload re-encoded as JSON is the JSON frame.
        let back = encode(Format::Json, &kind, &msg.payload, id).unwrap();
        assert_eq!(std::str::from_utf8(&back).unwrap(), c.json, "{}", c.name);
    }
}

/// Spot checks of the MessagePack rules the TypeScript encoder must follow.
#[test]
fn msgpack_rules_are_visible_in_the_vectors() {
    let cases = read_file();
    let hex_of = |name: &str| cases.iter().find(|c| c.name == name).unwrap().msgpack_hex.clone();
    // ["~ping", nil, 2]: fixarray 3, fixstr 5, nil, positive fixint.
    assert_eq!(hex_of("ping"), "93a57e70696e67c002");
    // The largest id is a uint 64.
    assert!(hex_of("app.scalars_max_id").ends_with("cf001fffffffffffff"));
    // Maps keep the order of the JSON text: "topic" first in a ~sub.
    assert!(hex_of("sub").starts_with("93a47e73756281a5746f706963"));
}
