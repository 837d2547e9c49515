//! Keeps the node's pod network in step with the Node objects: once IPAM gives this node a
//! `spec.podCIDR` the pod bridge and the CNI config are written (containerd picks the config
//! up), and on every Node change the host-gw routes to the other nodes' pod CIDRs, then
//! the guard routes/rules, are reconciled.

use crate::network::{self, CniSettings, HostNet, Ipv4Cidr, NodeRouteInfo};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct NetSettings {
    pub cluster_cidr: Ipv4Cidr,
    pub service_cidr: Ipv4Cidr,
    pub ipam_data_dir: PathBuf,
    pub conf_dir: PathBuf,
}

/// One pass: bridge + CNI config for our pod CIDR, routes, then guards.
async fn reconcile(
    net: &dyn HostNet,
    node_name: &str,
    nodes: &[NodeRouteInfo],
    s: &NetSettings,
    written: &mut Option<Ipv4Cidr>,
) -> Result<(), String> {
    let Some(me) = nodes.iter().find(|n| n.name == node_name) else {
        return Ok(());
    };
    let Some(pod_cidr) = me.pod_cidr.as_deref() else {
        return Ok(());
    };
    let pod_cidr: Ipv4Cidr = pod_cidr
        .parse()
        .map_err(|e: network::NetworkError| e.to_string())?;
    network::ensure_pod_bridge(net, network::POD_BRIDGE, pod_cidr)
        .await
        .map_err(|e| e.to_string())?;
    // The service route needs its (empty) bridge before the routes are reconciled.
    net.ensure_bridge(network::SVC_BRIDGE)
        .await
        .map_err(|e| e.to_string())?;
    if *written != Some(pod_cidr) {
        let cni = CniSettings {
            network_name: network::NETWORK_NAME.into(),
            bridge: network::POD_BRIDGE.into(),
            pod_cidr,
            cluster_cidr: s.cluster_cidr,
            service_cidr: s.service_cidr,
            ipam_data_dir: s.ipam_data_dir.clone(),
            mtu: None,
        };
        let text = network::cni_conflist(&cni).map_err(|e| e.to_string())?;
        if network::write_cni_config(&s.conf_dir, &text).map_err(|e| e.to_string())? {
            tracing::info!(%pod_cidr, "wrote cni config");
        }
        *written = Some(pod_cidr);
    }
    let gw = network::gateway_ip(&pod_cidr.to_string()).map_err(|e| e.to_string())?;
    let desired = network::desired_routes(
        node_name,
        nodes,
        s.cluster_cidr,
        s.service_cidr,
        network::SVC_BRIDGE,
        gw,
    );
    let changes = network::reconcile_routes(net, &desired)
        .await
        .map_err(|e| e.to_string())?;
    for (r, e) in &changes.failed {
        tracing::warn!(route = ?r, error = %e, "route");
    }
    network::install_guards(net, s.cluster_cidr, s.service_cidr)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs until cancelled.
pub async fn run(client: kube::Client, node_name: String, s: NetSettings) {
    let net = network::IpCommand::new(network::IpCommandPaths::default());
    let (store, writer) = reflector::store();
    let api: kube::Api<Node> = kube::Api::all(client);
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    futures::pin_mut!(stream);
    let mut written = None;
    loop {
        // Until the pod network is configured, look again often (the podCIDR may arrive
        // while the watch is being set up); afterwards a slow resync backs up the watch.
        let resync = if written.is_none() {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(30)
        };
        tokio::select! {
            ev = stream.next() => {
                match ev {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => { tracing::debug!(error = %e, "node watch"); continue; }
                    None => return,
                }
            }
            _ = tokio::time::sleep(resync) => {}
        }
        // Let a burst of events settle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut nodes: Vec<NodeRouteInfo> = store
            .state()
            .iter()
            .map(|n| NodeRouteInfo::from_node(n))
            .collect();
        // Until our podCIDR is known, read our own Node directly rather than trusting the
        // cache alone.
        if written.is_none() {
            if let Ok(me) = api.get(&node_name).await {
                nodes.retain(|n| n.name != node_name);
                nodes.push(NodeRouteInfo::from_node(&me));
            }
        }
        if let Err(e) = reconcile(&net, &node_name, &nodes, &s, &mut written).await {
            tracing::warn!(error = %e, "pod network");
        }
    }
}
