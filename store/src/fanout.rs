//! Shared helpers for in-process watch fan-out: prefix helpers and a subscriber that
//! never blocks the publisher.
//!
//! Publishers (the SQLite writer thread, the watch cache's dispatcher) offer batches to
//! each subscriber with `try_send`. One channel slot is always kept free so that, when a
//! watcher falls behind and its channel is full, the stream can still be ended with
//! `Err(Compacted)`: the API server turns that into `410 Gone` and the client re-lists.
//! Buffering without bound instead would let one stuck client grow memory forever, which
//! is exactly what etcd and the kube-apiserver cacher avoid by dropping slow watchers.

use crate::{Event, Result, StoreError};
use tokio::sync::mpsc;

/// Default channel capacity (in batches) of a watch stream.
pub const DEFAULT_WATCH_CAPACITY: usize = 1024;

/// The exclusive upper bound of the key range covered by `prefix`, as bytes; `None`
/// when the prefix is empty (the whole keyspace).
pub fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// One watcher: the events it wants and the channel it reads.
pub struct Subscriber {
    pub prefix: String,
    /// Only events with a revision greater than this are delivered.
    pub after: i64,
    pub tx: mpsc::Sender<Result<Vec<Event>>>,
}

/// What happened to a subscriber after an offer.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Still healthy.
    Alive,
    /// Receiver gone or overflowed (and told so); drop the subscriber.
    Gone,
}

impl Subscriber {
    pub fn wants(&self, ev: &Event) -> bool {
        ev.revision() > self.after && ev.key().starts_with(&self.prefix)
    }

    /// Offer events (in revision order); only the ones this subscriber wants are sent.
    pub fn offer(&mut self, events: &[Event]) -> Offer {
        if self.tx.is_closed() {
            return Offer::Gone;
        }
        let batch: Vec<Event> = events.iter().filter(|e| self.wants(e)).cloned().collect();
        self.offer_owned(batch)
    }

    /// Offer an already filtered batch.
    pub fn offer_owned(&mut self, batch: Vec<Event>) -> Offer {
        let Some(last) = batch.last().map(Event::revision) else {
            return Offer::Alive;
        };
        let first = batch[0].revision();
        if self.tx.capacity() > 1 {
            match self.tx.try_send(Ok(batch)) {
                Ok(()) => {
                    self.after = last;
                    Offer::Alive
                }
                Err(_) => Offer::Gone,
            }
        } else {
            self.overflow(first - 1);
            Offer::Gone
        }
    }

    /// End the stream with `Compacted`: the watcher missed events after `revision`.
    pub fn overflow(&self, revision: i64) {
        tracing::debug!(prefix = %self.prefix, revision, "watcher too slow, ending stream");
        let _ = self.tx.try_send(Err(StoreError::Compacted {
            compacted: revision,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyValue;

    fn ev(key: &str, rev: i64) -> Event {
        Event::Create {
            kv: KeyValue {
                key: key.into(),
                value: Default::default(),
                create_revision: rev,
                mod_revision: rev,
            },
        }
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(""), None);
    }

    #[test]
    fn slow_subscriber_gets_compacted() {
        let (tx, mut rx) = mpsc::channel(3);
        let mut s = Subscriber {
            prefix: "/a/".into(),
            after: 0,
            tx,
        };
        assert_eq!(s.offer(&[ev("/a/1", 1), ev("/b/1", 2)]), Offer::Alive);
        assert_eq!(s.offer(&[ev("/b/2", 3)]), Offer::Alive);
        assert_eq!(s.offer(&[ev("/a/2", 4)]), Offer::Alive);
        assert_eq!(s.offer(&[ev("/a/3", 5)]), Offer::Gone);
        assert_eq!(rx.try_recv().unwrap().unwrap().len(), 1);
        assert_eq!(rx.try_recv().unwrap().unwrap()[0].revision(), 4);
        assert!(matches!(
            rx.try_recv().unwrap(),
            Err(StoreError::Compacted { compacted: 4 })
        ));
    }
}
