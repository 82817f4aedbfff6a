//! Topics on this node: who is subscribed, how a publication is numbered, ordered and fanned
//! out, how a subscription recovers what it missed.
//!
//! Order inside: `settings` (what a topic name's pattern says) · `record` (a publication as
//! history keeps it) · `sequencer` (puts publications in `seq` order: **where a publication gets
//! sequenced** for this node's subscribers) ← `table` (the topics and their state) ← `deliver`
//! (the fan-out, held by a cork) ← `publish` (numbering by history, the sequencer, gaps) ←
//! `subscribe` · `history` (reading what a topic keeps) · `positions` (checking that nothing was
//! missed).
//!
//! A publication is appended to history (which assigns its sequence number), then passes the
//! topic's sequencer to the local subscribers, and goes to the other nodes.

pub(crate) mod deliver;
pub(crate) mod history;
pub(crate) mod positions;
pub(crate) mod publish;
pub(crate) mod record;
pub(crate) mod sequencer;
pub(crate) mod settings;
pub(crate) mod subscribe;
pub(crate) mod table;
