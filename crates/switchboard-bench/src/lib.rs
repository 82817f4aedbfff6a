//! Shared parts of the Switchboard benchmarks (issue #7): the dialects the load generator speaks
//! (`bench/DIALECTS.md`), Engine.IO v4 framing, JWT tokens, `/proc` readings, statistics, the JSON
//! result lines and the SVG chart.
//!
//! The binaries: `switchboard-bench` (load generator and orchestrator), `bench-reference` (the
//! floor: raw tokio + WebSocket), `bench-switchboard` (the framework, used as a user would) and
//! `bench-outbox` (S11, the standalone server's PostgreSQL outbox, on its own).

pub mod client;
pub mod clock;
pub mod doc;
pub mod eio;
pub mod events;
pub mod jwt;
pub mod lean;
pub mod outbox;
pub mod procfs;
pub mod report;
pub mod scenarios;
pub mod svg;
pub mod targets;
pub mod tls;
pub mod worker;
