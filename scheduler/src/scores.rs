//! Score plugins as pure functions over the snapshot, normalized to 0..100 like upstream and
//! combined with the default profile's weights: TaintToleration 3, NodeAffinity 2,
//! PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit (LeastAllocated) 1,
//! NodeResourcesBalancedAllocation 1, ImageLocality 1.

use std::collections::HashMap;

use crate::filters::{matches_node_affinity, spread_state, SpreadState};
use crate::snapshot::{NodeInfo, PodInfo, SchedPod, Snapshot};

pub const MAX_SCORE: i64 = 100;
const W_TAINT: i64 = 3;
const W_NODE_AFFINITY: i64 = 2;
const W_SPREAD: i64 = 2;
const W_INTERPOD: i64 = 2;
const W_FIT: i64 = 1;
const W_BALANCED: i64 = 1;
const W_IMAGE: i64 = 1;

const MB: i64 = 1024 * 1024;
const IMAGE_MIN: i64 = 23 * MB;
const IMAGE_MAX_PER_CONTAINER: i64 = 1000 * MB;

/// LeastAllocated over cpu and memory (weights 1 and 1), using non-zero requests.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let f = |req: i64, cap: i64| {
        if cap == 0 || req > cap {
            0
        } else {
            (cap - req) * MAX_SCORE / cap
        }
    };
    (f(
        node.non_zero_cpu + pod.non_zero_cpu,
        node.allocatable.milli_cpu,
    ) + f(
        node.non_zero_mem + pod.non_zero_mem,
        node.allocatable.memory,
    )) / 2
}

/// BalancedAllocation over cpu and memory: `(1 - std(fractions)) * 100`; skipped (0) for
/// pods requesting neither.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
        return 0;
    }
    let frac = |req: i64, cap: i64| {
        if cap == 0 {
            1.0
        } else {
            (req as f64 / cap as f64).min(1.0)
        }
    };
    let c = frac(
        node.requested.milli_cpu + pod.requests.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let m = frac(
        node.requested.memory + pod.requests.memory,
        node.allocatable.memory,
    );
    let std = (c - m).abs() / 2.0;
    ((1.0 - std) * MAX_SCORE as f64) as i64
}

/// ImageLocality: sizes of images already on the node, scaled by how widely spread each is.
pub fn image_locality(snap: &Snapshot, pod: &SchedPod, node: &NodeInfo) -> i64 {
    if pod.images.is_empty() {
        return 0;
    }
    let total = snap.nodes.len().max(1) as f64;
    let mut sum = 0i64;
    for img in &pod.images {
        if let Some(size) = node.images.get(img) {
            let spread = snap.image_nodes.get(img).copied().unwrap_or(1) as f64 / total;
            sum += (*size as f64 * spread) as i64;
        }
    }
    let max = IMAGE_MAX_PER_CONTAINER * pod.images.len() as i64;
    let sum = sum.clamp(IMAGE_MIN, max);
    MAX_SCORE * (sum - IMAGE_MIN) / (max - IMAGE_MIN)
}

/// TaintToleration raw score: untolerated PreferNoSchedule taints.
pub fn prefer_no_schedule_count(pod: &SchedPod, node: &NodeInfo) -> i64 {
    let tols: Vec<_> = pod
        .tolerations
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .cloned()
        .collect();
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !tols.iter().any(|x| crate::filters::tolerates(x, t)))
        .count() as i64
}

/// NodeAffinity raw score: the sum of matching preferred terms' weights.
pub fn node_affinity_weight(pod: &SchedPod, node: &NodeInfo) -> i64 {
    pod.preferred_node
        .iter()
        .filter(|(_, t)| t.matches(&node.name, &node.labels))
        .map(|(w, _)| *w as i64)
        .sum()
}

/// Upstream `DefaultNormalizeScore`.
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_SCORE * *s / max;
        *s = if reverse { MAX_SCORE - v } else { v };
    }
}

/// InterPodAffinity pre-score: (topology key, value) → weight.
pub fn interpod_weights(snap: &Snapshot, pod: &SchedPod) -> HashMap<(String, String), i64> {
    let mut out: HashMap<(String, String), i64> = HashMap::new();
    let own = pod
        .info
        .affinity
        .as_deref()
        .filter(|a| !a.preferred_affinity.is_empty() || !a.preferred_anti_affinity.is_empty());
    if own.is_none() && snap.pods_with_affinity == 0 {
        return out;
    }
    let mut add = |node: &NodeInfo, key: &str, w: i64| {
        if let Some(v) = node.labels.get(key) {
            *out.entry((key.to_string(), v.clone())).or_default() += w;
        }
    };
    for node in &snap.nodes {
        if own.is_none() && node.pods_with_affinity == 0 {
            continue;
        }
        for p in &node.pods {
            if let Some(a) = own {
                for (w, t) in &a.preferred_affinity {
                    if t.matches(p) {
                        add(node, &t.topology_key, *w as i64);
                    }
                }
                for (w, t) in &a.preferred_anti_affinity {
                    if t.matches(p) {
                        add(node, &t.topology_key, -(*w as i64));
                    }
                }
            }
            if let Some(a) = &p.affinity {
                for t in &a.required_affinity {
                    if t.matches(&pod.info) {
                        add(node, &t.topology_key, 1);
                    }
                }
                for (w, t) in &a.preferred_affinity {
                    if t.matches(&pod.info) {
                        add(node, &t.topology_key, *w as i64);
                    }
                }
                for (w, t) in &a.preferred_anti_affinity {
                    if t.matches(&pod.info) {
                        add(node, &t.topology_key, -(*w as i64));
                    }
                }
            }
        }
    }
    out
}

/// Scores the feasible nodes (indices into `snap.nodes`); returns the weighted totals.
pub fn score_nodes(snap: &Snapshot, pod: &SchedPod, feasible: &[usize]) -> Vec<i64> {
    let n = feasible.len();
    let nodes = || feasible.iter().map(|i| &snap.nodes[*i]);
    let mut total = vec![0i64; n];

    for (t, node) in total.iter_mut().zip(nodes()) {
        *t += W_FIT * least_allocated(&pod.info, node)
            + W_BALANCED * balanced_allocation(&pod.info, node)
            + W_IMAGE * image_locality(snap, pod, node);
    }

    let mut taint: Vec<i64> = nodes()
        .map(|nd| prefer_no_schedule_count(pod, nd))
        .collect();
    normalize(&mut taint, true);

    let mut na: Vec<i64> = if pod.preferred_node.is_empty() {
        vec![0; n]
    } else {
        nodes().map(|nd| node_affinity_weight(pod, nd)).collect()
    };
    normalize(&mut na, false);

    let weights = interpod_weights(snap, pod);
    let mut ip = vec![0i64; n];
    if !weights.is_empty() {
        for (s, node) in ip.iter_mut().zip(nodes()) {
            *s = weights
                .iter()
                .filter(|((k, v), _)| node.labels.get(k) == Some(v))
                .map(|(_, w)| *w)
                .sum();
        }
        let (min, max) = (
            *ip.iter().min().unwrap_or(&0),
            *ip.iter().max().unwrap_or(&0),
        );
        for s in ip.iter_mut() {
            *s = if max - min > 0 {
                MAX_SCORE * (*s - min) / (max - min)
            } else {
                0
            };
        }
    }

    let spread = spread_scores(snap, pod, feasible);

    for i in 0..n {
        total[i] += W_TAINT * taint[i]
            + W_NODE_AFFINITY * na[i]
            + W_INTERPOD * ip[i]
            + W_SPREAD * spread[i];
    }
    total
}

/// PodTopologySpread score for soft constraints, normalized like upstream
/// (`100 * (max + min - s) / max`; nodes lacking a topology key score 0).
pub fn spread_scores(snap: &Snapshot, pod: &SchedPod, feasible: &[usize]) -> Vec<i64> {
    let n = feasible.len();
    let soft: Vec<_> = pod.spread.iter().filter(|c| !c.hard).collect();
    if soft.is_empty() {
        return vec![0; n];
    }
    let states: Vec<SpreadState> = spread_state(snap, pod, false);
    // Normalizing weight per constraint: log(number of domains among feasible nodes + 2).
    let weights: Vec<f64> = soft
        .iter()
        .map(|c| {
            let mut vals: Vec<&String> = feasible
                .iter()
                .filter_map(|i| snap.nodes[*i].labels.get(&c.topology_key))
                .collect();
            vals.sort();
            vals.dedup();
            ((vals.len() + 2) as f64).ln()
        })
        .collect();
    let mut raw: Vec<Option<i64>> = Vec::with_capacity(n);
    for i in feasible {
        let node = &snap.nodes[*i];
        if !soft
            .iter()
            .all(|c| node.labels.contains_key(&c.topology_key))
        {
            raw.push(None);
            continue;
        }
        let mut s = 0.0;
        for ((c, st), w) in soft.iter().zip(&states).zip(&weights) {
            let v = &node.labels[&c.topology_key];
            let cnt = if c.honor_affinity && !matches_node_affinity(pod, node) {
                0
            } else {
                st.counts.get(v).copied().unwrap_or(0)
            };
            s += cnt as f64 * w + (c.max_skew - 1) as f64;
        }
        raw.push(Some(s.round() as i64));
    }
    let valid = raw.iter().flatten();
    let max = valid.clone().copied().max().unwrap_or(0);
    let min = valid.copied().min().unwrap_or(0);
    raw.into_iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max == 0 => MAX_SCORE,
            Some(s) => MAX_SCORE * (max + min - s) / max,
        })
        .collect()
}

/// Whether scoring can be skipped (one feasible node).
pub fn needs_scoring(feasible: &[usize]) -> bool {
    feasible.len() > 1
}
