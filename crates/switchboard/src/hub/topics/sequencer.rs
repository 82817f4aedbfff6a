//! The sequencer: releases a topic's publications to this node's subscribers in `seq` order.
//! A pure state machine (no lock, no I/O); `publish.rs` drives it and checks the gaps it
//! reports.

use std::sync::Arc;

use super::record::Record;

/// Releases a topic's publications in `seq` order (see the module documentation).
#[derive(Default)]
pub(crate) struct Sequencer {
    /// The stream being delivered; `None` until the first subscription read the position.
    pub(super) epoch: Option<Arc<str>>,
    /// The next `seq` to release.
    pub(super) next: u64,
    /// Publications that came early (or before the position was known), unordered.
    pub(super) held: Vec<(Arc<str>, u64, Record)>,
    /// Whether a gap check is scheduled.
    pub(super) checking: bool,
    /// The stream restarted (a new epoch) and its first release is still to come: that one tells
    /// the subscribers (`Out::restart`).
    restarted: bool,
}

/// A publication released, in order.
pub(crate) struct Out {
    /// Its stream.
    pub(crate) epoch: Arc<str>,
    pub(crate) seq: u64,
    pub(crate) record: Record,
    /// The first one released since the stream restarted while subscribers were live: every
    /// subscriber learns the new epoch with it (protocol §5).
    pub(crate) restart: bool,
}

/// What a sequencer decided: publications to release now, in order, and whether to schedule a
/// gap check (for `(epoch, seq)`, the publication waited for).
pub(crate) type Released = (Vec<Out>, Option<(Arc<str>, u64)>);

impl Sequencer {
    /// Starts the stream at `epoch` (what the first subscription was told), releasing from `next`.
    pub(crate) fn start(&mut self, epoch: &Arc<str>, next: u64) -> Released {
        self.epoch = Some(epoch.clone());
        self.next = next;
        self.release()
    }

    /// A publication arrives.
    pub(crate) fn push(&mut self, epoch: &Arc<str>, seq: u64, record: Record) -> Released {
        let Some(current) = self.epoch.clone() else {
            self.held.push((epoch.clone(), seq, record));
            return (Vec::new(), None);
        };
        if current != *epoch {
            // The stream restarted (history lost or expired): what is held of the old stream
            // goes out in order, and the new one starts at 1, announced.
            let mut old = std::mem::take(&mut self.held);
            old.sort_by_key(|(_, seq, _)| *seq);
            let mut out: Vec<_> = old
                .into_iter()
                .filter(|(e, _, _)| *e == current)
                .map(|(epoch, seq, record)| Out { epoch, seq, record, restart: false })
                .collect();
            self.held.push((epoch.clone(), seq, record));
            self.restarted = true;
            let (more, check) = self.start(epoch, 1);
            out.extend(more);
            return (out, check);
        }
        if seq < self.next {
            return (Vec::new(), None);
        }
        if seq == self.next && self.held.is_empty() && !self.restarted {
            // The usual case: the next one, nothing held.
            self.next += 1;
            return (vec![Out { epoch: current, seq, record, restart: false }], None);
        }
        self.held.push((epoch.clone(), seq, record));
        self.release()
    }

    /// Releases what follows `next` without a gap; drops what is older or of another stream.
    pub(crate) fn release(&mut self) -> Released {
        let Some(epoch) = self.epoch.clone() else { return (Vec::new(), None) };
        self.held.retain(|(e, seq, _)| *e == epoch && *seq >= self.next);
        self.held.sort_by_key(|(_, seq, _)| std::cmp::Reverse(*seq));
        let mut out = Vec::new();
        while let Some((_, seq, _)) = self.held.last() {
            if *seq > self.next {
                break;
            }
            let (epoch, seq, record) = self.held.pop().expect("a last element");
            if seq == self.next {
                let restart = std::mem::take(&mut self.restarted);
                out.push(Out { epoch, seq, record, restart });
                self.next += 1;
            }
        }
        let check = (!self.held.is_empty() && !self.checking).then(|| {
            self.checking = true;
            (epoch, self.next)
        });
        (out, check)
    }

    /// Gives up on the gap before the first held publication.
    pub(crate) fn skip_gap(&mut self) -> Released {
        if let Some(first) = self.held.iter().map(|(_, seq, _)| *seq).min() {
            self.next = first;
        }
        self.release()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::topics::record::record_of as record;

    fn seqs(released: &Released) -> Vec<u64> {
        released.0.iter().map(|out| out.seq).collect()
    }

    fn restarts(released: &Released) -> Vec<bool> {
        released.0.iter().map(|out| out.restart).collect()
    }

    #[test]
    fn holds_until_the_position_is_known_then_releases_in_order() {
        let e: Arc<str> = Arc::from("e1");
        let mut s = Sequencer::default();
        assert!(seqs(&s.push(&e, 7, record(7))).is_empty());
        assert!(seqs(&s.push(&e, 5, record(5))).is_empty());
        // The subscription covered up to 5: 6 is awaited, 7 stays held, a check is scheduled.
        let r = s.start(&e, 6);
        assert!(seqs(&r).is_empty());
        assert_eq!(r.1, Some((e.clone(), 6)));
        assert_eq!(seqs(&s.push(&e, 6, record(6))), [6, 7]);
        assert_eq!(seqs(&s.push(&e, 8, record(8))), [8]);
    }

    #[test]
    fn out_of_order_and_duplicates() {
        let e: Arc<str> = Arc::from("e1");
        let mut s = Sequencer::default();
        s.start(&e, 1);
        assert_eq!(seqs(&s.push(&e, 1, record(1))), [1]);
        let r = s.push(&e, 3, record(3));
        assert!(seqs(&r).is_empty());
        assert_eq!(r.1, Some((e.clone(), 2)), "a gap check for 2");
        // Only one check at a time.
        assert_eq!(s.push(&e, 4, record(4)).1, None);
        assert_eq!(seqs(&s.push(&e, 2, record(2))), [2, 3, 4]);
        assert!(seqs(&s.push(&e, 3, record(3))).is_empty(), "a duplicate is dropped");
    }

    #[test]
    fn a_new_epoch_flushes_the_old_stream_and_starts_at_one() {
        let e1: Arc<str> = Arc::from("e1");
        let e2: Arc<str> = Arc::from("e2");
        let mut s = Sequencer::default();
        s.start(&e1, 10);
        assert!(seqs(&s.push(&e1, 12, record(12))).is_empty());
        let r = s.push(&e2, 1, record(1));
        assert_eq!(seqs(&r), [12, 1]);
        assert_eq!(restarts(&r), [false, true], "the new stream's first release tells the subscribers");
        let r = s.push(&e2, 2, record(2));
        assert_eq!((seqs(&r), restarts(&r)), (vec![2], vec![false]));
    }

    #[test]
    fn skipping_a_gap_releases_what_follows() {
        let e: Arc<str> = Arc::from("e1");
        let mut s = Sequencer::default();
        s.start(&e, 1);
        s.push(&e, 4, record(4));
        s.push(&e, 5, record(5));
        assert_eq!(seqs(&s.skip_gap()), [4, 5]);
        assert_eq!(seqs(&s.push(&e, 6, record(6))), [6]);
    }

    #[test]
    fn a_restart_is_announced_by_the_first_release_of_the_new_stream_even_if_it_comes_late() {
        let e1: Arc<str> = Arc::from("e1");
        let e2: Arc<str> = Arc::from("e2");
        let mut s = Sequencer::default();
        s.start(&e1, 5);
        // The new stream's 2 comes before its 1: nothing is released yet.
        let r = s.push(&e2, 2, record(2));
        assert!(seqs(&r).is_empty());
        assert_eq!(r.1, Some((e2.clone(), 1)), "a gap check for 1");
        let r = s.push(&e2, 1, record(1));
        assert_eq!((seqs(&r), restarts(&r)), (vec![1, 2], vec![true, false]));
        assert!(r.0.iter().all(|out| out.epoch == e2));
    }
}
