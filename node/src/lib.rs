//! The node agent (kubelet): joins a cluster, registers its Node, and runs the pods bound
//! to it in containerd over CRI, with their networking, volumes, logs and status.

pub mod admit;
pub mod agent;
pub mod containerd;
pub mod cri;
pub mod events;
pub mod eviction;
pub mod hooks;
pub mod imagegc;
pub mod images;
pub mod join;
pub mod kubelet;
pub mod labels;
pub mod logs;
pub mod netsync;
pub mod network;
pub mod nodestatus;
pub mod podspec;
pub mod podstatus;
pub mod podsync;
pub mod prober;
pub mod quantity;
pub mod resolvconf;
pub mod server;
pub mod staticpods;
pub mod stats;
pub mod volumes;
