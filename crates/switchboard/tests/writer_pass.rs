//! A client's publications fanned out to many subscribers of `Switchboard::serve` are written by
//! writer passes (a few tasks for all of them) rather than by each subscriber's task. They must
//! arrive complete and in order, interleaved correctly with what the subscribers' own tasks
//! write meanwhile (pongs, replies), and be counted.

mod common;

use std::time::Duration;

use common::{Client, main_ns, serve};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard::{Server, TopicOptions};
use tokio_tungstenite::tungstenite::Message;

/// More than one pass's worth of connections.
const SUBSCRIBERS: usize = 150;
const PUBLICATIONS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_deliver_everything_in_order_beside_the_connections_own_writes() {
    let board = Server::new()
        .namespace(main_ns().topic("feed/{x}", TopicOptions::new().clients_publish()))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;

    let mut subscribers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let (mut c, _) = Client::identified(addr, &format!("s{i}")).await;
        c.call("~sub", json!({"topic": "feed/a"})).await.unwrap();
        subscribers.push(c);
    }
    let (mut publisher, _) = Client::identified(addr, "publisher").await;
    let before = board.hub().stats().messages_out;

    // Each subscriber reads everything; every third one also pings and sends requests while the
    // publications come, so that its own task writes to the socket between the passes.
    let readers: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let busy = i % 3 == 0;
                let (mut seq, mut pongs, mut replies, mut asked) = (0u64, 0, 0, 0);
                while seq < PUBLICATIONS || (busy && (pongs < 5 || replies < asked)) {
                    if busy && asked < 5 && seq >= asked * 40 {
                        c.ws.send(Message::Ping(vec![asked as u8; 4].into())).await.unwrap();
                        c.send(json!(["~ping", {}, 1000 + asked])).await;
                        asked += 1;
                    }
                    let msg = tokio::time::timeout(Duration::from_secs(10), c.ws.next())
                        .await
                        .expect("a publication, pong or reply in time")
                        .expect("open")
                        .expect("well-formed frames");
                    match msg {
                        Message::Pong(p) => {
                            assert_eq!(&p[..], &[pongs as u8; 4], "pongs in order, intact");
                            pongs += 1;
                        }
                        Message::Text(t) => {
                            let v: Value = serde_json::from_str(&t).unwrap();
                            if v[0] == "~msg" {
                                seq += 1;
                                assert_eq!(v[1]["seq"], seq, "subscriber {i}: in order, none missing");
                                assert_eq!(v[1]["data"], seq);
                            } else {
                                replies += 1;
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                seq
            })
        })
        .collect();

    // Bursts from a client: each read batch's fan-out is one set of passes.
    for n in 1..=PUBLICATIONS {
        publisher.send(json!(["~pub", {"topic": "feed/a", "data": n}, n])).await;
        if n % 10 == 0 {
            publisher.expect(|m| m[0] == "~ok" && m[2] == json!(n)).await;
        }
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), PUBLICATIONS);
    }
    // Counted like any other message sent (the replies to the publisher and to the pings come
    // on top).
    let sent = board.hub().stats().messages_out - before;
    let deliveries = SUBSCRIBERS as u64 * PUBLICATIONS;
    assert!(sent >= deliveries, "{sent} messages counted for {deliveries} deliveries");
}
