//! Runnable examples of Switchboard live next to this crate (`examples/*.rs`; run one with
//! `cargo run -p switchboard-examples --example NAME`). The library itself holds no code: it
//! pulls in the guides of `docs/` so that `cargo test -p switchboard-examples --doc` compiles
//! every Rust snippet in them.

#[doc = include_str!("../../README.md")]
pub mod readme {}

#[doc = include_str!("../../docs/getting-started.md")]
pub mod getting_started {}

#[doc = include_str!("../../docs/topics.md")]
pub mod topics {}

#[doc = include_str!("../../docs/cluster.md")]
pub mod cluster {}

#[doc = include_str!("../../docs/events.md")]
pub mod events {}
