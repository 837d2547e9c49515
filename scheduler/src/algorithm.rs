//! One scheduling attempt and preemption, as pure functions over the snapshot: filter nodes
//! (stopping after upstream's adaptive percentage of feasible nodes), score, pick the best
//! (random among ties); or, when nothing fits, find preemption victims.

use std::collections::HashMap;
use std::sync::Arc;

use crate::filters::{filter_node, fit_error, histogram, prefilter, Failure, PreFilter};
use crate::scores::score_nodes;
use crate::snapshot::{NodeInfo, PodInfo, Resources, SchedPod, Snapshot};

/// Nominated pods per node: (uid, priority, requests).
pub type Nominated = HashMap<String, Vec<(String, i32, Resources)>>;

/// Result of a failed attempt: per-node failures for the FitError message and preemption.
#[derive(Debug)]
pub struct FitFailure {
    pub num_nodes: usize,
    pub failures: Vec<(usize, Failure)>,
    pub pre: PreFilter,
}

impl FitFailure {
    /// The filter part of upstream's FitError message.
    pub fn message(&self) -> String {
        let f: Vec<&Failure> = self.failures.iter().map(|(_, f)| f).collect();
        fit_error(self.num_nodes, &f)
    }

    pub fn pod_dependent(&self) -> bool {
        self.failures.iter().any(|(_, f)| f.pod_dependent)
    }
}

/// Upstream `numFeasibleNodesToFind` with the default adaptive percentage.
pub fn num_feasible_to_find(n: usize) -> usize {
    if n < 100 {
        return n;
    }
    let pct = 50usize.saturating_sub(n / 125).max(5);
    (n * pct / 100).max(100)
}

fn nominated_for(nom: &Nominated, node: &str, pod: &PodInfo) -> Option<Resources> {
    let list = nom.get(node)?;
    let mut sum = Resources::default();
    let mut any = false;
    for (uid, prio, r) in list {
        if *uid != pod.uid && *prio >= pod.priority {
            sum.add(r);
            any = true;
        }
    }
    any.then_some(sum)
}

/// Filters and scores; returns the chosen node index or the failures. `start` rotates the
/// node at which filtering begins (updated past the nodes examined).
pub fn schedule(
    snap: &Snapshot,
    pod: &SchedPod,
    nom: &Nominated,
    start: &mut usize,
) -> Result<usize, Box<FitFailure>> {
    let n = snap.nodes.len();
    let pre = prefilter(snap, pod);
    // A pod with a nominated node tries that node first.
    if let Some(&i) = pod
        .nominated_node
        .as_ref()
        .and_then(|nn| snap.index.get(nn))
    {
        let node = &snap.nodes[i];
        let extra = nominated_for(nom, &node.name, &pod.info);
        if filter_node(pod, &pre, node, extra.as_ref()).is_ok() {
            return Ok(i);
        }
    }
    let want = num_feasible_to_find(n);
    let mut feasible = Vec::with_capacity(want.min(n));
    let mut failures = Vec::new();
    let mut examined = 0;
    for k in 0..n {
        if feasible.len() >= want {
            break;
        }
        let i = (*start + k) % n;
        examined += 1;
        let node = &snap.nodes[i];
        let extra = if nom.is_empty() {
            None
        } else {
            nominated_for(nom, &node.name, &pod.info)
        };
        match filter_node(pod, &pre, node, extra.as_ref()) {
            Ok(()) => feasible.push(i),
            Err(f) => failures.push((i, f)),
        }
    }
    if n > 0 {
        *start = (*start + examined) % n;
    }
    if feasible.is_empty() {
        return Err(Box::new(FitFailure {
            num_nodes: n,
            failures,
            pre,
        }));
    }
    if feasible.len() == 1 {
        return Ok(feasible[0]);
    }
    let scores = score_nodes(snap, pod, &feasible);
    Ok(feasible[select_host(&scores)])
}

/// Index of the highest score; ties broken uniformly at random (reservoir sampling).
pub fn select_host(scores: &[i64]) -> usize {
    let mut best = 0;
    let mut count = 0u32;
    for (i, s) in scores.iter().enumerate() {
        if i == 0 || *s > scores[best] {
            best = i;
            count = 1;
        } else if *s == scores[best] {
            count += 1;
            if rand::random_range(0..count) == 0 {
                best = i;
            }
        }
    }
    best
}

/// A preemption decision.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: usize,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Victims on one node: remove all lower-priority pods, check the pod fits, then reprieve
/// the most important ones while it still fits. `Err` carries the node's reasons.
fn select_victims(
    pod: &SchedPod,
    pre: &PreFilter,
    node: &NodeInfo,
    nom: &Nominated,
) -> Result<Vec<Arc<PodInfo>>, Vec<String>> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.info.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(vec!["No preemption victims found for incoming pod".into()]);
    }
    let mut sim = node.clone();
    for p in &potential {
        sim.remove_pod(&p.uid);
    }
    let extra = nominated_for(nom, &node.name, &pod.info);
    if let Err(f) = filter_node(pod, pre, &sim, extra.as_ref()) {
        return Err(f.reasons);
    }
    // Most important first: higher priority, then earlier start.
    potential.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.created.cmp(&b.created)));
    let mut victims = Vec::new();
    for p in potential {
        sim.add_pod(p.clone());
        if filter_node(pod, pre, &sim, extra.as_ref()).is_err() {
            sim.remove_pod(&p.uid);
            victims.push(p);
        }
    }
    Ok(victims)
}

/// Upstream DefaultPreemption's PostFilter. `Err` is the post-filter message (already
/// prefixed with `preemption: `).
pub fn preempt(
    snap: &Snapshot,
    pod: &SchedPod,
    fit: &FitFailure,
    nom: &Nominated,
) -> Result<Candidate, String> {
    if pod.preempt_never {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    if let Some(node) = pod.nominated_node.as_ref().and_then(|n| snap.node(n)) {
        let resolvable = fit
            .failures
            .iter()
            .find(|(i, _)| snap.nodes[*i].name == node.name)
            .is_none_or(|(_, f)| !f.unresolvable);
        if resolvable
            && node
                .pods
                .iter()
                .any(|p| p.terminating && p.priority < pod.info.priority)
        {
            return Err(
                "preemption: not eligible due to a terminating pod on the nominated node.".into(),
            );
        }
    }
    let limit = (fit.num_nodes / 10).max(100);
    let mut reasons: HashMap<String, usize> = HashMap::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (i, f) in &fit.failures {
        if f.unresolvable {
            *reasons
                .entry("Preemption is not helpful for scheduling".into())
                .or_default() += 1;
            continue;
        }
        if candidates.len() >= limit {
            continue;
        }
        match select_victims(pod, &fit.pre, &snap.nodes[*i], nom) {
            Ok(victims) if !victims.is_empty() => candidates.push(Candidate { node: *i, victims }),
            Ok(_) => {}
            Err(rs) => {
                for r in rs {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    if candidates.is_empty() {
        let counts = reasons.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        return Err(format!("preemption: {}", histogram(fit.num_nodes, counts)));
    }
    // Upstream pickOneNodeForPreemption (PDB violations not evaluated): lowest highest
    // victim priority, lowest priority sum, fewest victims, latest start of the most
    // important victim.
    let key = |c: &Candidate| {
        let highest = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| v.priority as i64 + i32::MAX as i64 + 1)
            .sum();
        let earliest_of_highest = c
            .victims
            .iter()
            .filter(|v| v.priority == highest)
            .map(|v| v.created)
            .min()
            .unwrap_or(0);
        (highest, sum, c.victims.len(), -earliest_of_highest)
    };
    candidates
        .into_iter()
        .min_by_key(key)
        .ok_or_else(|| "preemption: no candidates".into())
}
