//! The service proxy (kube-proxy) and the cluster DNS: turns Services and EndpointSlices
//! into nftables (default) or iptables rules on each node, and answers cluster DNS names
//! from the API.

pub mod changes;
pub mod conntrack;
pub mod dns;
pub mod iptables;
pub mod model;
pub mod netfilter;
pub mod nft;
pub mod runtime;
