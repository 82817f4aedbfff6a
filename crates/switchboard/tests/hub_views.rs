//! What the hub lets an application read (stats, presence, directory), groups joined at
//! identification, and presence following `~status`.

mod common;

use common::{Client, serve};
use serde_json::json;
use switchboard::{Accept, Error, Namespace, Payload, Server, TopicOptions};

async fn identify(Payload(user): Payload<String>) -> Result<Accept, Error> {
    Ok(Accept::user(user.clone()).alias(user.clone()).join([format!("inbox/{user}"), "bad topic".to_owned()]))
}

fn ns() -> Namespace {
    Namespace::new("main")
        .identify(identify)
        .topic("room/{r}", TopicOptions::new().presence(true).clients_publish())
        .topic("inbox/{u}", TopicOptions::new().server_joins_only())
}

#[tokio::test]
async fn hub_views_groups_and_status_presence() {
    let board = Server::new().namespace(ns()).build().await.unwrap();
    let addr = serve(&board).await;
    let hub = board.hub();
    let mut ada = Client::connect(addr).await;
    ada.call("~hello", json!({"identity": "ada"})).await.unwrap();
    let (mut bob, _) = {
        let mut c = Client::connect(addr).await;
        let w = c.call("~hello", json!({"identity": "bob"})).await.unwrap();
        (c, w)
    };

    // Groups from Accept::join are joined right after the welcome (the invalid one skipped).
    hub.publish("inbox/ada", None, &"for ada").await.unwrap();
    assert_eq!(ada.expect(|m| m[0] == "~msg").await[1]["data"], "for ada");

    ada.call("~sub", json!({"topic": "room/a"})).await.unwrap();
    bob.call("~sub", json!({"topic": "room/a"})).await.unwrap();
    let present: Vec<_> = hub.presence("room/a").await.unwrap().into_iter().map(|p| p.alias).collect();
    assert_eq!(present, [Some("ada".to_owned()), Some("bob".to_owned())]);
    assert_eq!(hub.directory().await.unwrap().len(), 2);

    // Going unavailable is a presence change for the topic's subscribers: old out, new in.
    ada.call("~status", json!({"available": false})).await.unwrap();
    let diff = bob.expect(|m| m[0] == "~presence" && !m[1]["leaves"].as_array().unwrap().is_empty()).await;
    assert_eq!(diff[1]["leaves"][0]["available"], true);
    assert_eq!(diff[1]["joins"][0]["available"], false);
    assert_eq!(hub.directory().await.unwrap().len(), 1, "unavailable connections leave the directory");

    let stats = hub.stats();
    assert_eq!((stats.connections, stats.users), (2, 2));
    assert_eq!(stats.messages_in, 5, "two ~hello, two ~sub, one ~status: {stats:?}");
    assert!(stats.messages_out >= 5, "{stats:?}");
    assert_eq!(stats.connections_total, 2);
}
