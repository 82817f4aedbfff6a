//! Presence against the real fixture: the directory, topic presence, `~status`, direct
//! messages.

mod common;

use common::{Fixture, builder, connect, wait_state, within};
use serde_json::{Value, json};
use switchboard_client::testing::Faults;
use switchboard_client::{DmTarget, Format, PeerMap, State, SubscribeOptions, TopicEvent};

fn aliases(peers: &PeerMap) -> Vec<String> {
    let mut a: Vec<String> = peers.values().filter_map(|p| p.alias.clone()).collect();
    a.sort();
    a
}

#[tokio::test]
async fn the_directory_follows_connections_and_status_changes() {
    common::init_tracing();
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let mut dir = within(alice.directory()).await.unwrap();
    assert_eq!(aliases(&dir.snapshot()), ["alice"]);
    let me = dir.get(&alice.welcome().unwrap().conn).unwrap();
    assert_eq!(me.public.decode::<Value>().unwrap(), json!({"since": "fixture"}));
    assert_eq!(within(alice.who()).await.unwrap().len(), 1);

    let bob = connect(&fx, "bob", Format::MsgPack).await;
    within(dir.wait_for(|p| aliases(p) == ["alice", "bob"])).await.unwrap();

    within(bob.set_alias(Some("bee"))).await.unwrap();
    within(dir.wait_for(|p| aliases(p) == ["alice", "bee"])).await.unwrap();

    // Unavailable connections leave the directory; available again, they come back.
    within(bob.set_available(false)).await.unwrap();
    within(dir.wait_for(|p| aliases(p) == ["alice"])).await.unwrap();
    within(bob.set_available(true)).await.unwrap();
    within(dir.wait_for(|p| aliases(p) == ["alice", "bee"])).await.unwrap();

    bob.close().await;
    within(dir.wait_for(|p| aliases(p) == ["alice"])).await.unwrap();
}

#[tokio::test]
async fn topic_presence_is_loaded_then_kept_in_sync() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::MsgPack).await;
    let bob = connect(&fx, "bob", Format::Json).await;
    let opts = || SubscribeOptions::new().presence(true);
    let mut room = within(alice.subscribe_with("chat/presence", opts())).await.unwrap();
    let mut here = room.presence().unwrap().clone();
    assert_eq!(aliases(&here.snapshot()), ["alice"]);

    let bobs = within(bob.subscribe_with("chat/presence", opts())).await.unwrap();
    assert_eq!(aliases(&bobs.presence().unwrap().snapshot()), ["alice", "bob"]);
    within(here.wait_for(|p| aliases(p) == ["alice", "bob"])).await.unwrap();
    // The diffs, in order: alice's own join may come first (she is a subscriber by then).
    let joined =
        within(next_diff(&mut room, |d| d.joins.iter().any(|p| p.alias.as_deref() == Some("bob")))).await;
    assert!(joined.leaves.is_empty());
    assert_eq!(within(alice.who_in("chat/presence")).await.unwrap().len(), 2);

    within(bobs.unsubscribe()).await;
    within(here.wait_for(|p| aliases(p) == ["alice"])).await.unwrap();
    let left = within(next_diff(&mut room, |d| !d.leaves.is_empty())).await;
    assert_eq!(left.leaves[0].alias.as_deref(), Some("bob"));
}

async fn next_diff(
    sub: &mut switchboard_client::Subscription,
    pred: impl Fn(&switchboard_client::PresenceDiff) -> bool,
) -> switchboard_client::PresenceDiff {
    loop {
        match sub.recv().await.expect("subscription ended") {
            TopicEvent::Presence(diff) if pred(&diff) => return diff,
            TopicEvent::Presence(_) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn direct_messages_by_alias_and_by_connection() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let bob = connect(&fx, "bob", Format::MsgPack).await;
    let mut bob_dms = bob.direct_messages();

    within(alice.send_dm(DmTarget::Alias("bob".into()), &json!({"text": "hi"}))).await.unwrap();
    let dm = within(bob_dms.recv()).await.unwrap();
    assert_eq!(dm.from.alias.as_deref(), Some("alice"));
    assert_eq!(dm.from.conn, alice.welcome().unwrap().conn);
    assert_eq!(dm.data.decode::<Value>().unwrap(), json!({"text": "hi"}));

    let bob_conn = bob.welcome().unwrap().conn;
    within(alice.send_dm(DmTarget::Conn(bob_conn), &"by conn")).await.unwrap();
    assert_eq!(within(bob_dms.recv()).await.unwrap().data.decode::<String>().unwrap(), "by conn");

    let unknown = within(alice.send_dm(DmTarget::Alias("nobody".into()), &1)).await.unwrap_err();
    assert_eq!(unknown.code(), "NOT_FOUND");
    within(bob.set_available(false)).await.unwrap();
    let unavailable = within(alice.send_dm(DmTarget::Alias("bob".into()), &1)).await.unwrap_err();
    assert_eq!(unavailable.code(), "UNAVAILABLE");
}

#[tokio::test]
async fn status_and_directory_are_restored_after_a_reconnection() {
    let fx = Fixture::start();
    let faults = Faults::new();
    let alice = within(builder(&fx, "alice").faults(&faults).connect()).await.unwrap();
    within(alice.set_alias(Some("ally"))).await.unwrap();
    let mut dir = within(alice.directory()).await.unwrap();
    within(dir.wait_for(|p| aliases(p) == ["ally"])).await.unwrap();

    faults.drop_link();
    wait_state(&alice, |s| !s.is_ready()).await;
    wait_state(&alice, State::is_ready).await;
    // The new connection starts with the identify hook's alias; the client applies its own.
    let conn = alice.welcome().unwrap().conn;
    within(dir.wait_for(|p| aliases(p) == ["ally"] && p.contains_key(&conn))).await.unwrap();
    let names: Vec<_> = within(alice.who()).await.unwrap().into_iter().filter_map(|p| p.alias).collect();
    assert_eq!(names, ["ally"]);
}
