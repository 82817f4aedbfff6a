//! The application's side: handlers and their extractors, identify hooks, filters, namespaces
//! and topic rules. Describes what the server does; running it is `session`'s.
//!
//! Order inside: `accept` (what an identify hook answers) ← `handler` (the extractor family and
//! handler traits) ← `extract` (the built-in extractors) ← `topic` (topic rules) ←
//! `namespace`.

pub(crate) mod accept;
pub(crate) mod extract;
pub(crate) mod handler;
pub(crate) mod namespace;
pub(crate) mod topic;
