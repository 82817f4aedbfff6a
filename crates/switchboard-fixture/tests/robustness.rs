//! Conformance: robustness — 1,000 malformed frames do not disturb other connections
//! (protocol.md §2: "never crashes … never affects other connections because of one
//! connection's input").
//!
//! Readings of protocol.md used here:
//! - Each malformed frame closes its connection (4501, or 1009 for the oversized ones), so
//!   the 1,000 frames are spread over many short connections, two at a time, some anonymous
//!   and some identified (each as its own user, so that `conn_per_user` never evicts one).
//!   Some connections send three malformed frames back to back; only the first one counts
//!   for the close code, but all of them are counted in the 1,000. The two extra frames are
//!   always small ones: a large frame pipelined behind a malformed one is the subject of
//!   `close_frame_survives_pipelined_frames`, kept apart so that a failure says which
//!   property broke.
//! - `close_frame_survives_pipelined_frames`: a client may pipeline frames; when one of them
//!   is malformed, the close code 4501 must still reach the client even though the server
//!   has unread input at that moment (likewise 1009 for an oversized frame, whose tail is
//!   unread) (RFC 6455 closing handshake: the server sends its Close
//!   and keeps reading until the client's Close). Other connections' traffic (a `shout`
//!   loop) runs meanwhile, as in real life.
//! - Meanwhile a well-behaved client keeps sending requests; every one must be answered
//!   correctly, and it must have done at least 50 of them (it keeps going until both
//!   attackers are done and it has done 50, so this is not a timing condition).

mod common;

use common::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio_tungstenite::tungstenite::Message;

const FRAMES: usize = 1000;
const WORKERS: usize = 2;

/// The i-th malformed frame and the close code it must cause.
fn bad_frame(i: usize) -> (Message, u16) {
    let t = |s: String| Message::Text(s.into());
    match i % 14 {
        0 => (t("garbage".into()), 4501),
        1 => (t(format!("{{\"n\": {i}}}")), 4501),
        2 => (t("[]".into()), 4501),
        3 => (t(format!("[{i}, null, 1]")), 4501),
        4 => (t(r#"["", null, 1]"#.into()), 4501),
        5 => (t(r#"["echo", null, 0]"#.into()), 4501),
        6 => (t(r#"["echo", null, -5]"#.into()), 4501),
        7 => (t(r#"["echo", null, 1.25]"#.into()), 4501),
        8 => (t(r#"["echo", null, "7"]"#.into()), 4501),
        9 => (t(r#"["echo", null, 1, "extra"]"#.into()), 4501),
        10 => (Message::Binary(vec![0x93, 0xa4, b'e', b'c', b'h', b'o', 0xc0, 0x01].into()), 4501),
        11 => (t(format!(r#"["{}"]"#, "y".repeat(200))), 4501),
        12 => (t("[\"echo\", {\"unterminated\": ".into()), 4501),
        _ => (t(format!(r#"["echo","{}",1]"#, "z".repeat(70_000))), 1009),
    }
}

#[tokio::test]
async fn thousand_malformed_frames_do_not_disturb_a_well_behaved_client() {
    let fx = Fixture::start();
    let mut good = Client::user(&fx, "good").await;
    let sent = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));

    let mut attackers = Vec::new();
    for w in 0..WORKERS {
        let url = fx.url();
        let sent = Arc::clone(&sent);
        let done = Arc::clone(&done);
        attackers.push(tokio::spawn(async move {
            let mut conn_no = 0usize;
            let mut failures = Vec::new();
            loop {
                let i = sent.fetch_add(1, Ordering::SeqCst);
                if i >= FRAMES {
                    break;
                }
                conn_no += 1;
                let mut c = try_connect(&url, &[]).await.expect("attacker connect");
                if conn_no.is_multiple_of(3) {
                    c.identify(&format!("attacker-{w}-{conn_no}")).await;
                }
                let (frame, code) = bad_frame(i);
                // An oversized frame may be cut short by the server: the close is what counts.
                c.send_frame_lossy(frame).await;
                // Every 5th connection sends two more malformed frames right away.
                if conn_no.is_multiple_of(5) && code == 4501 {
                    for _ in 0..2 {
                        let j = sent.fetch_add(1, Ordering::SeqCst);
                        // Never the large one (kind 13) as an extra: see the module doc.
                        let (f, _) = bad_frame(if j % 14 == 13 { j + 1 } else { j });
                        // The server may already have closed: a failed write is fine here.
                        c.send_frame_lossy(f).await;
                    }
                }
                match c.try_close_within(WAIT).await {
                    Ok((got, reason)) if got == code && !reason.is_empty() => {}
                    Ok((got, reason)) => failures
                        .push(format!("frame {i}: closed {got} {reason:?}, expected {code} with a reason")),
                    Err(e) => failures.push(format!("frame {i}: {e}")),
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
            failures
        }));
    }

    let mut n = 0u64;
    while done.load(Ordering::SeqCst) < WORKERS || n < 50 {
        n += 1;
        if n.is_multiple_of(2) {
            assert_eq!(good.ok("echo", json!({"n": n})).await, json!({"n": n}));
        } else {
            assert_eq!(num(&good.ok("add", json!({"a": n, "b": 1})).await), (n + 1) as f64);
        }
    }

    let mut failures = Vec::new();
    for a in attackers {
        failures.extend(a.await.expect("attacker task"));
    }
    assert!(sent.load(Ordering::SeqCst) >= FRAMES);
    // The server still works for everyone.
    good.sync().await;
    let mut late = Client::user(&fx, "late").await;
    assert_eq!(late.ok("whoami", json!(null)).await["user"], "late");
    assert!(
        failures.is_empty(),
        "{} of the malformed frames did not get the right close:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_frame_survives_pipelined_frames() {
    let fx = Fixture::start();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loader = Client::user(&fx, "loader").await;
    let stop2 = Arc::clone(&stop);
    let noise = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop2.load(Ordering::SeqCst) {
            loader.ok("shout", json!({"type": "noise", "payload": n})).await;
            n += 1;
        }
        n
    });
    // A valid (under 64 KiB) request pipelined right behind the malformed frame.
    let big = format!(r#"["echo","{}",2]"#, "p".repeat(60_000));
    let mut failures = Vec::new();
    // And, on every third connection, a lone oversized frame (its tail is unread input too).
    let over = format!(r#"["echo","{}",3]"#, "o".repeat(70_000));
    for k in 0..300 {
        let mut c = try_connect(&fx.url(), &[]).await.expect("connect");
        c.identify(&format!("pipeliner{k}")).await;
        let (what, want) = if k % 3 == 2 {
            c.send_frame_lossy(Message::Text(over.clone().into())).await;
            ("oversized frame", 1009)
        } else {
            c.send_text("not a message").await;
            c.send_frame_lossy(Message::Text(big.clone().into())).await;
            ("malformed + pipelined", 4501)
        };
        match c.try_close_within(WAIT).await {
            Ok((code, _)) if code == want => {}
            Ok((code, reason)) => failures.push(format!("connection {k} ({what}): closed {code} {reason:?}")),
            Err(e) => {
                failures.push(format!("connection {k} ({what}): {}", e.chars().take(160).collect::<String>()))
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let shouts = noise.await.expect("noise task");
    assert!(shouts > 0, "the noise loop never ran");
    assert!(
        failures.is_empty(),
        "{} of 300 connections did not get their close code:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
