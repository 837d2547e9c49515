//! The scheduling queue: an active heap (priority, then arrival), a backoff heap (1s doubling
//! to 10s per failed attempt) and an unschedulable set that is flushed back when the cluster
//! changes (or after five minutes), like upstream's PriorityQueue.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::snapshot::SchedPod;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    sched: Arc<SchedPod>,
    attempts: u32,
    state: State,
    seq: u64,
    backoff_until: Instant,
    unschedulable_since: Instant,
    /// Failure depended on other pods (affinity/spread): retry on pod adds too.
    pod_dependent: bool,
    /// Move-cycle counter when the pod was popped.
    popped_cycle: u64,
}

/// A pod handed out for a scheduling attempt.
#[derive(Debug, Clone)]
pub struct Popped {
    pub pod: Arc<Pod>,
    pub sched: Arc<SchedPod>,
    pub attempts: u32,
}

#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    move_cycle: u64,
}

fn backoff_for(attempts: u32) -> Duration {
    let d = INITIAL_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(10));
    d.min(MAX_BACKOFF)
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Queue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    pub fn state(&self, uid: &str) -> Option<State> {
        self.entries.get(uid).map(|e| e.state)
    }

    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    fn push_active(&mut self, uid: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(uid) {
            e.state = State::Active;
            e.seq = seq;
            self.active
                .push((e.sched.info.priority, Reverse(seq), uid.to_string()));
        }
    }

    fn push_backoff_or_active(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.backoff_until > now {
            self.seq += 1;
            e.state = State::Backoff;
            e.seq = self.seq;
            self.backoff
                .push(Reverse((e.backoff_until, self.seq, uid.to_string())));
        } else {
            self.push_active(uid);
        }
    }

    /// Adds a new pending pod or updates a known one. An update that changes the spec or
    /// labels of an unschedulable pod makes it schedulable again.
    pub fn add_or_update(&mut self, pod: Arc<Pod>, now: Instant) {
        let uid = uid_of(&pod);
        match self.entries.get_mut(&uid) {
            None => {
                let sched = Arc::new(SchedPod::from_pod(&pod));
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        pod,
                        sched,
                        attempts: 0,
                        state: State::Active,
                        seq: 0,
                        backoff_until: now,
                        unschedulable_since: now,
                        pod_dependent: false,
                        popped_cycle: 0,
                    },
                );
                self.push_active(&uid);
            }
            Some(e) => {
                let changed =
                    e.pod.spec != pod.spec || e.pod.metadata.labels != pod.metadata.labels;
                if changed {
                    e.sched = Arc::new(SchedPod::from_pod(&pod));
                } else if e
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.nominated_node_name.as_ref())
                    != pod
                        .status
                        .as_ref()
                        .and_then(|s| s.nominated_node_name.as_ref())
                {
                    let mut s = (*e.sched).clone();
                    s.nominated_node = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.nominated_node_name.clone())
                        .filter(|n| !n.is_empty());
                    e.sched = Arc::new(s);
                }
                e.pod = pod;
                if changed && e.state == State::Unschedulable {
                    self.push_backoff_or_active(&uid, now);
                }
            }
        }
    }

    /// The compiled form of a queued pod.
    pub fn sched(&self, uid: &str) -> Option<&Arc<SchedPod>> {
        self.entries.get(uid).map(|e| &e.sched)
    }

    /// Drops queued pods for which `keep` is false (after a relist).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries
            .retain(|u, e| e.state == State::InFlight || keep(u));
    }

    pub fn remove(&mut self, uid: &str) -> Option<Arc<Pod>> {
        self.entries.remove(uid).map(|e| e.pod)
    }

    /// Pops the highest-priority active pod and marks it in flight.
    pub fn pop(&mut self) -> Option<Popped> {
        while let Some((_, Reverse(seq), uid)) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&uid) else {
                continue;
            };
            if e.state != State::Active || e.seq != seq {
                continue;
            }
            e.state = State::InFlight;
            e.popped_cycle = self.move_cycle;
            return Some(Popped {
                pod: e.pod.clone(),
                sched: e.sched.clone(),
                attempts: e.attempts,
            });
        }
        None
    }

    /// The attempt found no node: park the pod as unschedulable (or in backoff when the
    /// cluster changed while it was being scheduled).
    pub fn unschedulable(&mut self, uid: &str, pod_dependent: bool, now: Instant) {
        let cycle = self.move_cycle;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.attempts += 1;
        e.backoff_until = now + backoff_for(e.attempts);
        e.pod_dependent = pod_dependent;
        if e.popped_cycle != cycle {
            self.push_backoff_or_active(uid, now);
        } else {
            e.state = State::Unschedulable;
            e.unschedulable_since = now;
        }
    }

    /// The attempt failed with an error (e.g. binding failed): retry after backoff.
    pub fn backoff(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.attempts += 1;
        e.backoff_until = now + backoff_for(e.attempts);
        self.push_backoff_or_active(uid, now);
    }

    /// A pod was assumed onto a node: it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// A cluster change: unschedulable pods go back to active (or backoff). With
    /// `pod_dependent_only`, only those whose failure depended on other pods.
    pub fn move_all(&mut self, now: Instant, pod_dependent_only: bool) {
        self.move_cycle += 1;
        let uids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.state == State::Unschedulable && (!pod_dependent_only || e.pod_dependent)
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uid in uids {
            self.push_backoff_or_active(&uid, now);
        }
    }

    /// Moves expired backoffs to active and long-unschedulable pods back.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((at, seq, uid))) = self.backoff.peek().cloned() {
            if at > now {
                break;
            }
            self.backoff.pop();
            if self
                .entries
                .get(&uid)
                .is_some_and(|e| e.state == State::Backoff && e.seq == seq)
            {
                self.push_active(&uid);
            }
        }
    }

    /// Moves pods unschedulable for longer than [`MAX_UNSCHEDULABLE`] back.
    pub fn flush_stale(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.state == State::Unschedulable && now - e.unschedulable_since >= MAX_UNSCHEDULABLE
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uid in stale {
            self.push_backoff_or_active(&uid, now);
        }
    }

    /// When the next backoff expires.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(uid: &str, prio: i32) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.uid = Some(uid.into());
        p.metadata.name = Some(uid.into());
        p.spec = Some(PodSpec {
            priority: Some(prio),
            ..Default::default()
        });
        Arc::new(p)
    }

    #[tokio::test(start_paused = true)]
    async fn priority_then_fifo() {
        let mut q = Queue::default();
        let now = Instant::now();
        q.add_or_update(pod("a", 0), now);
        q.add_or_update(pod("b", 10), now);
        q.add_or_update(pod("c", 0), now);
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.pod.metadata.uid.clone().unwrap())
            .collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_moves_on_cluster_event_with_backoff() {
        let mut q = Queue::default();
        q.add_or_update(pod("a", 0), Instant::now());
        q.pop().unwrap();
        q.unschedulable("a", false, Instant::now());
        assert_eq!(q.state("a"), Some(State::Unschedulable));
        assert!(q.pop().is_none());
        // Cluster event before the 1s backoff expires: goes to backoff first.
        q.move_all(Instant::now(), false);
        assert_eq!(q.state("a"), Some(State::Backoff));
        tokio::time::advance(Duration::from_millis(1001)).await;
        q.flush(Instant::now());
        assert_eq!(q.state("a"), Some(State::Active));
        assert!(q.pop().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_and_caps() {
        assert_eq!(backoff_for(1), Duration::from_secs(1));
        assert_eq!(backoff_for(2), Duration::from_secs(2));
        assert_eq!(backoff_for(4), Duration::from_secs(8));
        assert_eq!(backoff_for(9), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn event_during_flight_skips_unschedulable() {
        let mut q = Queue::default();
        q.add_or_update(pod("a", 0), Instant::now());
        q.pop().unwrap();
        q.move_all(Instant::now(), false);
        q.unschedulable("a", false, Instant::now());
        assert_eq!(q.state("a"), Some(State::Backoff));
    }

    #[tokio::test(start_paused = true)]
    async fn stale_unschedulable_flushed_after_five_minutes() {
        let mut q = Queue::default();
        q.add_or_update(pod("a", 0), Instant::now());
        q.pop().unwrap();
        q.unschedulable("a", false, Instant::now());
        tokio::time::advance(MAX_UNSCHEDULABLE).await;
        q.flush_stale(Instant::now());
        assert_eq!(q.state("a"), Some(State::Active));
    }
}
