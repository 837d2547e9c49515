//! The per-pod DNS configuration the kubelet hands to the runtime in the sandbox config
//! (CRI `DnsConfig`, which containerd writes as the pod's /etc/resolv.conf), following
//! upstream pkg/kubelet/network/dns: parsing the host resolv.conf (`--resolv-conf`), the pod's
//! dnsPolicy (ClusterFirst, ClusterFirstWithHostNet, Default, None), the merge of
//! spec.dnsConfig on top, the limits (3 nameservers, 32 search domains of at most 253
//! characters, 2048 characters of search line) and the warnings upstream records
//! (DNSConfigForming, MissingClusterDNS, CheckLimitsForResolvConf).
//!
//! Pure: the caller reads the host resolv.conf and records the returned events.
//!
//! Deliberate choice where upstream is not deterministic: upstream merges dnsConfig options
//! through a Go map (random order). Here the base options keep their order (a name given
//! again keeps its first place and takes the latest value), then new names follow in the
//! order the pod gives them.

use std::net::IpAddr;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// The kubelet's default `--resolv-conf`.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// At most this many nameservers reach the pod (upstream validation.MaxDNSNameservers).
pub const MAX_DNS_NAMESERVERS: usize = 3;
/// At most this many search domains (MaxDNSSearchPathsExpanded; ExpandedDNSConfig is GA).
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
/// At most this many characters in the space-joined search line (MaxDNSSearchListCharsExpanded).
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;
/// Search domains longer than a DNS-1123 subdomain are dropped (some resolvers abort on them).
pub const MAX_SEARCH_DOMAIN_LEN: usize = 253;
/// Upstream reads at most 10 MiB of the host resolv.conf.
pub const MAX_RESOLV_CONF_LEN: usize = 10 << 20;
/// Options of ClusterFirst pods.
pub const DEFAULT_DNS_OPTIONS: &[&str] = &["ndots:5"];

/// Event reasons (upstream pkg/kubelet/network/dns).
pub const REASON_DNS_CONFIG_FORMING: &str = "DNSConfigForming";
pub const REASON_MISSING_CLUSTER_DNS: &str = "MissingClusterDNS";
pub const REASON_CHECK_LIMITS_FOR_RESOLV_CONF: &str = "CheckLimitsForResolvConf";

/// The kubelet's DNS flags: `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Nameservers of ClusterFirst pods; empty = none configured (MissingClusterDNS).
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain (`cluster.local`); empty = no cluster search domains.
    pub cluster_domain: String,
    /// The host resolv.conf; None when `--resolv-conf` is empty (Default-policy pods then
    /// get only the node's loopback as nameserver and the search line ".").
    pub resolv_conf: Option<PathBuf>,
}

/// What a resolv.conf says: nameserver lines accumulate, the last search and options
/// lines win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Why the host resolv.conf could not be used; the pod's sandbox config then fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolvConfError {
    /// Reading the file (recorded by the caller, which does the IO).
    #[error("open {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the read limit is reached")]
    ReadLimit,
    /// A `nameserver` line without an address (upstream keeps its trailing space).
    #[error("nameserver list is empty ")]
    Nameserver,
}

/// Parses resolv.conf text as upstream parseResolvConf does: comments start with `#`,
/// trailing dots of search domains are dropped, unknown keywords are ignored.
pub fn parse_resolv_conf(text: &str) -> Result<ResolvConf, ResolvConfError> {
    if text.len() > MAX_RESOLV_CONF_LEN {
        return Err(ResolvConfError::ReadLimit);
    }
    let mut conf = ResolvConf::default();
    let mut empty_nameserver = false;
    for line in text.split('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", addr, ..] => conf.nameservers.push(addr.to_string()),
            ["nameserver"] => empty_nameserver = true,
            ["search", domains @ ..] => {
                conf.searches = domains
                    .iter()
                    .map(|d| d.strip_suffix('.').unwrap_or(d).to_string())
                    .collect();
            }
            ["options", opts @ ..] => {
                conf.options = opts.iter().map(|o| o.to_string()).collect();
            }
            _ => {}
        }
    }
    if empty_nameserver {
        return Err(ResolvConfError::Nameserver);
    }
    Ok(conf)
}

/// The base a pod's DNS config starts from (upstream podDNSType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodDnsType {
    /// The cluster DNS (ClusterFirst off the host network, ClusterFirstWithHostNet).
    Cluster,
    /// The host resolv.conf (Default; ClusterFirst on the host network).
    Host,
    /// Nothing but spec.dnsConfig.
    None,
}

/// The pod's DNS type. An unset policy is the API default, ClusterFirst; an unknown one
/// is an error, and upstream then uses the cluster DNS.
pub fn pod_dns_type(pod: &Pod) -> Result<PodDnsType, String> {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => Ok(PodDnsType::None),
        Some("ClusterFirstWithHostNet") => Ok(PodDnsType::Cluster),
        Some("ClusterFirst") | None if !host_network => Ok(PodDnsType::Cluster),
        Some("ClusterFirst") | None | Some("Default") => Ok(PodDnsType::Host),
        Some(other) => Err(format!("invalid DNSPolicy={other}")),
    }
}

/// Who an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSubject {
    Pod,
    Node,
}

/// A Warning event the caller records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEvent {
    pub subject: EventSubject,
    pub reason: &'static str,
    pub message: String,
}

/// A pod's DNS config and the warnings forming it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PodDns {
    pub config: cri::DnsConfig,
    pub events: Vec<DnsEvent>,
}

/// upstream format.Pod: "name_namespace(uid)".
fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// Keeps the first occurrence of each entry.
fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// `<ns>.svc.<domain> svc.<domain> <domain>` then the host's search domains, without
/// duplicates; only the host's when no cluster domain is set.
fn cluster_first_searches(host_search: Vec<String>, namespace: &str, domain: &str) -> Vec<String> {
    if domain.is_empty() {
        return host_search;
    }
    let mut all = vec![
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_string(),
    ];
    all.extend(host_search);
    omit_duplicates(all)
}

/// Options merged by name: a pod option replaces a base option of the same name (see the
/// module doc for the order).
fn merge_dns_options(
    base: &[String],
    pod_options: &[k8s_openapi::api::core::v1::PodDNSConfigOption],
) -> Vec<String> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match merged.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value.to_string(),
        None => merged.push((name.to_string(), value.to_string())),
    };
    for op in base {
        match op.split_once(':') {
            Some((name, value)) => set(name, value),
            None => set(op, ""),
        }
    }
    for op in pod_options {
        set(
            op.name.as_deref().unwrap_or_default(),
            op.value.as_deref().unwrap_or_default(),
        );
    }
    merged
        .into_iter()
        .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
        .collect()
}

/// spec.dnsConfig appended to the base: duplicate servers and searches dropped, options
/// merged by name.
fn append_dns_config(mut config: cri::DnsConfig, extra: &PodDNSConfig) -> cri::DnsConfig {
    config
        .servers
        .extend(extra.nameservers.iter().flatten().cloned());
    config.servers = omit_duplicates(config.servers);
    config
        .searches
        .extend(extra.searches.iter().flatten().cloned());
    config.searches = omit_duplicates(config.searches);
    config.options = merge_dns_options(
        &config.options,
        extra.options.as_deref().unwrap_or_default(),
    );
    config
}

/// At most [`MAX_DNS_NAMESERVERS`] nameservers; a DNSConfigForming warning when cut.
fn nameservers_fit_limits(mut servers: Vec<String>, events: &mut Vec<DnsEvent>) -> Vec<String> {
    if servers.len() > MAX_DNS_NAMESERVERS {
        servers.truncate(MAX_DNS_NAMESERVERS);
        events.push(DnsEvent {
            subject: EventSubject::Pod,
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                servers.join(" ")
            ),
        });
    }
    servers
}

/// At most [`MAX_DNS_SEARCH_PATHS`] domains, none longer than [`MAX_SEARCH_DOMAIN_LEN`],
/// and the line cut from its end to [`MAX_DNS_SEARCH_LIST_CHARS`]; a DNSConfigForming
/// warning when anything was left out (upstream formDNSSearchFitsLimits).
fn searches_fit_limits(mut searches: Vec<String>, events: &mut Vec<DnsEvent>) -> Vec<String> {
    let mut exceeded = false;
    if searches.len() > MAX_DNS_SEARCH_PATHS {
        searches.truncate(MAX_DNS_SEARCH_PATHS);
        exceeded = true;
    }
    let before = searches.len();
    searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN_LEN);
    exceeded |= searches.len() != before;
    let line_len = searches.join(" ").len();
    if line_len > MAX_DNS_SEARCH_LIST_CHARS {
        let mut cut_len = 0;
        while let Some(last) = searches.pop() {
            cut_len += last.len() + 1;
            if line_len - cut_len.min(line_len) <= MAX_DNS_SEARCH_LIST_CHARS {
                break;
            }
        }
        exceeded = true;
    }
    if exceeded {
        events.push(DnsEvent {
            subject: EventSubject::Pod,
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                searches.join(" ")
            ),
        });
    }
    searches
}

/// The pod's DNS config (upstream Configurer.GetPodDNS). `host` is the parsed host
/// resolv.conf, None when `--resolv-conf` is empty; `node_ips` only matter then (a loopback
/// nameserver per node IP family).
pub fn pod_dns(
    pod: &Pod,
    settings: &DnsSettings,
    host: Option<&ResolvConf>,
    node_ips: &[IpAddr],
) -> PodDns {
    let mut events = Vec::new();
    let mut config = host
        .map(|h| cri::DnsConfig {
            servers: h.nameservers.clone(),
            searches: h.searches.clone(),
            options: h.options.clone(),
        })
        .unwrap_or_default();
    let dns_type = pod_dns_type(pod).unwrap_or_else(|e| {
        tracing::error!(pod = %format_pod(pod), error = %e, "failed to get DNS type for pod, falling back to ClusterFirst policy");
        PodDnsType::Cluster
    });
    let use_host = match dns_type {
        PodDnsType::None => {
            config = cri::DnsConfig::default();
            false
        }
        PodDnsType::Cluster if !settings.cluster_dns.is_empty() => {
            config.servers = settings
                .cluster_dns
                .iter()
                .map(|ip| ip.to_string())
                .collect();
            config.searches = cluster_first_searches(
                std::mem::take(&mut config.searches),
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                &settings.cluster_domain,
            );
            config.options = DEFAULT_DNS_OPTIONS.iter().map(|o| o.to_string()).collect();
            false
        }
        PodDnsType::Cluster => {
            let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
            events.push(DnsEvent {
                subject: EventSubject::Node,
                reason: REASON_MISSING_CLUSTER_DNS,
                message: message.to_string(),
            });
            events.push(DnsEvent {
                subject: EventSubject::Pod,
                reason: REASON_MISSING_CLUSTER_DNS,
                message: format!("pod: {:?}. {message}", format_pod(pod)),
            });
            true
        }
        PodDnsType::Host => true,
    };
    if use_host && host.is_none() {
        // No host resolv.conf: the node's own resolver, which effectively disables lookups.
        for ip in node_ips {
            let lo = if ip.is_ipv6() { "::1" } else { "127.0.0.1" };
            config.servers.push(lo.to_string());
        }
        if config.servers.is_empty() {
            config.servers.push("127.0.0.1".to_string());
        }
        config.searches = vec![".".to_string()];
    }
    if let Some(extra) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        config = append_dns_config(config, extra);
    }
    config.servers = nameservers_fit_limits(config.servers, &mut events);
    config.searches = searches_fit_limits(config.searches, &mut events);
    PodDns { config, events }
}

/// The warning about the host resolv.conf itself that the kubelet records on its Node once
/// at start (upstream CheckLimitsForResolvConf); None when it is within limits.
pub fn check_resolv_conf_limits(
    path: &str,
    host: &ResolvConf,
    cluster_domain: &str,
) -> Option<String> {
    let mut domain_limit = MAX_DNS_SEARCH_PATHS;
    if !cluster_domain.is_empty() {
        domain_limit -= 3;
    }
    if host.searches.len() > domain_limit {
        return Some(format!(
            "Resolv.conf file '{path}' contains search line consisting of more than {domain_limit} domains!"
        ));
    }
    if host
        .searches
        .iter()
        .any(|s| s.len() > MAX_SEARCH_DOMAIN_LEN)
    {
        return Some(format!(
            "Resolv.conf file {path:?} contains a search path which length is more than allowed {MAX_SEARCH_DOMAIN_LEN} chars!"
        ));
    }
    if host.searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        return Some(format!(
            "Resolv.conf file '{path}' contains search line which length is more than allowed {MAX_DNS_SEARCH_LIST_CHARS} chars!"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1"},
            "spec": spec
        }))
        .expect("valid pod json")
    }

    fn settings(cluster_dns: &[&str]) -> DnsSettings {
        DnsSettings {
            cluster_dns: cluster_dns.iter().map(|s| s.parse().expect("ip")).collect(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
        }
    }

    fn host() -> ResolvConf {
        parse_resolv_conf(
            "# generated\nnameserver 10.255.255.53\nnameserver 1.1.1.1\nsearch corp.example. lab.example\noptions timeout:2 rotate\n",
        )
        .expect("parse")
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn dns(spec: serde_json::Value, s: &DnsSettings, h: Option<&ResolvConf>) -> PodDns {
        pod_dns(&pod(spec), s, h, &["192.168.1.10".parse().expect("ip")])
    }

    // ---- parsing -----------------------------------------------------------------------

    #[test]
    fn parse_host_resolv_conf() {
        assert_eq!(
            host(),
            ResolvConf {
                nameservers: strs(&["10.255.255.53", "1.1.1.1"]),
                searches: strs(&["corp.example", "lab.example"]),
                options: strs(&["timeout:2", "rotate"]),
            }
        );
        // the last search and options lines win, nameservers accumulate, junk is ignored
        let conf = parse_resolv_conf(
            "search a b\n  # nameserver 9.9.9.9\ndomain x\nsearch c\noptions ndots:1\noptions\nnameserver 8.8.8.8 extra\r\n\tnameserver\t8.8.4.4\n",
        )
        .expect("parse");
        assert_eq!(conf.nameservers, strs(&["8.8.8.8", "8.8.4.4"]));
        assert_eq!(conf.searches, strs(&["c"]));
        assert!(conf.options.is_empty());
        assert_eq!(parse_resolv_conf(""), Ok(ResolvConf::default()));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse_resolv_conf("nameserver 1.2.3.4\nnameserver\n").map_err(|e| e.to_string()),
            Err("nameserver list is empty ".to_string())
        );
        let huge = "#".repeat(MAX_RESOLV_CONF_LEN + 1);
        assert_eq!(parse_resolv_conf(&huge), Err(ResolvConfError::ReadLimit));
        assert_eq!(
            ResolvConfError::Open {
                path: "/etc/resolv.conf".into(),
                reason: "no such file or directory".into()
            }
            .to_string(),
            "open /etc/resolv.conf: no such file or directory"
        );
    }

    // ---- policies ----------------------------------------------------------------------

    #[test]
    fn policy_types() {
        let t = |spec| pod_dns_type(&pod(spec));
        assert_eq!(t(json!({"containers": []})), Ok(PodDnsType::Cluster));
        assert_eq!(
            t(json!({"dnsPolicy": "ClusterFirst"})),
            Ok(PodDnsType::Cluster)
        );
        assert_eq!(
            t(json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true})),
            Ok(PodDnsType::Host)
        );
        assert_eq!(
            t(json!({"hostNetwork": true})),
            Ok(PodDnsType::Host),
            "unset means ClusterFirst"
        );
        assert_eq!(
            t(json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true})),
            Ok(PodDnsType::Cluster)
        );
        assert_eq!(t(json!({"dnsPolicy": "Default"})), Ok(PodDnsType::Host));
        assert_eq!(t(json!({"dnsPolicy": "None"})), Ok(PodDnsType::None));
        assert_eq!(
            t(json!({"dnsPolicy": "Bogus"})),
            Err("invalid DNSPolicy=Bogus".to_string())
        );
    }

    #[test]
    fn cluster_first() {
        let d = dns(
            json!({"dnsPolicy": "ClusterFirst"}),
            &settings(&["10.43.0.10"]),
            Some(&host()),
        );
        assert_eq!(
            d.config,
            cri::DnsConfig {
                servers: strs(&["10.43.0.10"]),
                searches: strs(&[
                    "ns1.svc.cluster.local",
                    "svc.cluster.local",
                    "cluster.local",
                    "corp.example",
                    "lab.example"
                ]),
                options: strs(&["ndots:5"]),
            }
        );
        assert!(d.events.is_empty());
        // dual stack: every cluster DNS address; host duplicates of cluster domains dropped
        let mut h = host();
        h.searches = strs(&["cluster.local", "corp.example"]);
        let d = dns(
            json!({}),
            &settings(&["10.43.0.10", "fd00:43::a"]),
            Some(&h),
        );
        assert_eq!(d.config.servers, strs(&["10.43.0.10", "fd00:43::a"]));
        assert_eq!(
            d.config.searches,
            strs(&[
                "ns1.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ])
        );
        // no cluster domain: only the host's search line
        let mut s = settings(&["10.43.0.10"]);
        s.cluster_domain.clear();
        let d = dns(json!({}), &s, Some(&host()));
        assert_eq!(d.config.searches, strs(&["corp.example", "lab.example"]));
        // an invalid policy is treated as ClusterFirst
        let d = dns(
            json!({"dnsPolicy": "Bogus", "hostNetwork": true}),
            &settings(&["10.43.0.10"]),
            Some(&host()),
        );
        assert_eq!(d.config.servers, strs(&["10.43.0.10"]));
    }

    #[test]
    fn host_network_policies() {
        let s = settings(&["10.43.0.10"]);
        let d = dns(
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirst"}),
            &s,
            Some(&host()),
        );
        assert_eq!(d.config.servers, strs(&["10.255.255.53", "1.1.1.1"]));
        assert_eq!(d.config.options, strs(&["timeout:2", "rotate"]));
        let d = dns(
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
            &s,
            Some(&host()),
        );
        assert_eq!(d.config.servers, strs(&["10.43.0.10"]));
        assert_eq!(d.config.searches[0], "ns1.svc.cluster.local");
        assert_eq!(d.config.options, strs(&["ndots:5"]));
    }

    #[test]
    fn default_policy_uses_host() {
        let d = dns(
            json!({"dnsPolicy": "Default"}),
            &settings(&["10.43.0.10"]),
            Some(&host()),
        );
        assert_eq!(
            d.config,
            cri::DnsConfig {
                servers: strs(&["10.255.255.53", "1.1.1.1"]),
                searches: strs(&["corp.example", "lab.example"]),
                options: strs(&["timeout:2", "rotate"]),
            }
        );
        assert!(d.events.is_empty());
    }

    #[test]
    fn default_policy_without_resolv_conf() {
        let mut s = settings(&["10.43.0.10"]);
        s.resolv_conf = None;
        let p = pod(json!({"dnsPolicy": "Default"}));
        let ips: Vec<IpAddr> = vec![
            "192.168.1.10".parse().expect("ip"),
            "fd00::10".parse().expect("ip"),
        ];
        let d = pod_dns(&p, &s, None, &ips);
        assert_eq!(
            d.config,
            cri::DnsConfig {
                servers: strs(&["127.0.0.1", "::1"]),
                searches: strs(&["."]),
                options: vec![],
            }
        );
        let d = pod_dns(&p, &s, None, &[]);
        assert_eq!(d.config.servers, strs(&["127.0.0.1"]));
        // ClusterFirst still ignores the (absent) host config apart from its search line
        let d = pod_dns(&pod(json!({})), &s, None, &ips);
        assert_eq!(d.config.servers, strs(&["10.43.0.10"]));
        assert_eq!(d.config.searches.len(), 3);
    }

    #[test]
    fn none_policy_uses_only_dns_config() {
        let d = dns(
            json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.2.3.4", "1.2.3.4"],
                "searches": ["ns1.svc.cluster.local", "my.dns.search.suffix"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
            }}),
            &settings(&["10.43.0.10"]),
            Some(&host()),
        );
        assert_eq!(
            d.config,
            cri::DnsConfig {
                servers: strs(&["1.2.3.4"]),
                searches: strs(&["ns1.svc.cluster.local", "my.dns.search.suffix"]),
                options: strs(&["ndots:2", "edns0"]),
            }
        );
        let d = dns(json!({"dnsPolicy": "None"}), &settings(&[]), Some(&host()));
        assert_eq!(d.config, cri::DnsConfig::default());
        assert!(d.events.is_empty(), "None never needs the cluster DNS");
    }

    #[test]
    fn dns_config_merges_on_top() {
        let d = dns(
            json!({"dnsPolicy": "ClusterFirst", "dnsConfig": {
                "nameservers": ["10.43.0.10", "9.9.9.9"],
                "searches": ["svc.cluster.local", "extra.example"],
                "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"},
                            {"name": "timeout", "value": "3"}]
            }}),
            &settings(&["10.43.0.10"]),
            Some(&host()),
        );
        assert_eq!(d.config.servers, strs(&["10.43.0.10", "9.9.9.9"]));
        assert_eq!(
            d.config.searches,
            strs(&[
                "ns1.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab.example",
                "extra.example"
            ])
        );
        assert_eq!(
            d.config.options,
            strs(&["ndots:1", "single-request-reopen", "timeout:3"])
        );
        // on top of Default: host options replaced by name, an empty value drops the value
        let d = dns(
            json!({"dnsPolicy": "Default", "dnsConfig": {
                "options": [{"name": "timeout", "value": ""}, {"name": "attempts", "value": "4"}]
            }}),
            &settings(&["10.43.0.10"]),
            Some(&host()),
        );
        assert_eq!(d.config.options, strs(&["timeout", "rotate", "attempts:4"]));
    }

    #[test]
    fn missing_cluster_dns_falls_back_to_default() {
        let d = dns(
            json!({"dnsPolicy": "ClusterFirst"}),
            &settings(&[]),
            Some(&host()),
        );
        assert_eq!(d.config.servers, strs(&["10.255.255.53", "1.1.1.1"]));
        assert_eq!(d.config.searches, strs(&["corp.example", "lab.example"]));
        assert_eq!(d.config.options, strs(&["timeout:2", "rotate"]));
        let msg = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
        assert_eq!(
            d.events,
            vec![
                DnsEvent {
                    subject: EventSubject::Node,
                    reason: "MissingClusterDNS",
                    message: msg.to_string(),
                },
                DnsEvent {
                    subject: EventSubject::Pod,
                    reason: "MissingClusterDNS",
                    message: format!("pod: \"web_ns1(u-1)\". {msg}"),
                },
            ]
        );
        // ClusterFirstWithHostNet too; Default does not warn
        let d = dns(
            json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}),
            &settings(&[]),
            Some(&host()),
        );
        assert_eq!(d.events.len(), 2);
        let d = dns(
            json!({"dnsPolicy": "Default"}),
            &settings(&[]),
            Some(&host()),
        );
        assert!(d.events.is_empty());
    }

    // ---- limits ------------------------------------------------------------------------

    #[test]
    fn nameserver_limit() {
        let d = dns(
            json!({"dnsPolicy": "ClusterFirst", "dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]}}),
            &settings(&["10.43.0.10"]),
            Some(&host()),
        );
        assert_eq!(
            d.config.servers,
            strs(&["10.43.0.10", "1.1.1.1", "2.2.2.2"])
        );
        assert_eq!(
            d.events,
            vec![DnsEvent {
                subject: EventSubject::Pod,
                reason: "DNSConfigForming",
                message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.43.0.10 1.1.1.1 2.2.2.2".into(),
            }]
        );
        // the host's own list is cut too (Default)
        let mut h = host();
        h.nameservers = strs(&["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]);
        let d = dns(json!({"dnsPolicy": "Default"}), &settings(&[]), Some(&h));
        assert_eq!(d.config.servers.len(), 3);
        assert_eq!(d.events.len(), 1);
    }

    fn search_event(line: &[String]) -> DnsEvent {
        DnsEvent {
            subject: EventSubject::Pod,
            reason: "DNSConfigForming",
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                line.join(" ")
            ),
        }
    }

    #[test]
    fn search_path_count_limit() {
        let mut h = host();
        h.searches = (0..40).map(|i| format!("d{i}.example")).collect();
        let d = dns(json!({}), &settings(&["10.43.0.10"]), Some(&h));
        assert_eq!(d.config.searches.len(), 32);
        assert_eq!(d.config.searches[3], "d0.example");
        assert_eq!(d.config.searches[31], "d28.example");
        assert_eq!(d.events, vec![search_event(&d.config.searches)]);
        // exactly 32 is fine
        h.searches.truncate(29);
        let d = dns(json!({}), &settings(&["10.43.0.10"]), Some(&h));
        assert_eq!(d.config.searches.len(), 32);
        assert!(d.events.is_empty());
    }

    #[test]
    fn long_search_domains_dropped() {
        let long = format!("{}.example", "a".repeat(250));
        let ok = format!("{}.example", "b".repeat(245)); // 253 characters
        let mut h = host();
        h.searches = vec![long, ok.clone(), "corp.example".into()];
        let d = dns(json!({"dnsPolicy": "Default"}), &settings(&[]), Some(&h));
        assert_eq!(d.config.searches, vec![ok, "corp.example".to_string()]);
        assert_eq!(d.events, vec![search_event(&d.config.searches)]);
    }

    #[test]
    fn search_line_length_limit() {
        // 10 domains of 249 characters: 10 * 250 - 1 = 2499 characters; cut from the end
        // until at most 2048 remain: 8 domains (1999 characters)
        let mut h = host();
        h.searches = (0..10)
            .map(|i| format!("{i}{}", ".x".repeat(124)))
            .collect();
        assert!(h.searches.iter().all(|s| s.len() == 249));
        let d = dns(json!({"dnsPolicy": "Default"}), &settings(&[]), Some(&h));
        assert_eq!(d.config.searches, h.searches[..8].to_vec());
        assert_eq!(d.events, vec![search_event(&d.config.searches)]);
        // exactly 2048 fits
        let mut h = host();
        h.searches = vec!["a".repeat(203)];
        h.searches
            .extend((0..9).map(|i| format!("{i}{}", "b".repeat(203))));
        assert_eq!(h.searches.join(" ").len(), 2048);
        let d = dns(json!({"dnsPolicy": "Default"}), &settings(&[]), Some(&h));
        assert_eq!(d.config.searches.len(), 10);
        assert!(d.events.is_empty());
    }

    #[test]
    fn both_limits_warn_nameservers_first() {
        let d = dns(
            json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"],
                "searches": (0..33).map(|i| format!("s{i}")).collect::<Vec<_>>()
            }}),
            &settings(&[]),
            Some(&host()),
        );
        let reasons: Vec<(&str, bool)> = d
            .events
            .iter()
            .map(|e| (e.reason, e.message.starts_with("Nameserver")))
            .collect();
        assert_eq!(
            reasons,
            [("DNSConfigForming", true), ("DNSConfigForming", false)]
        );
        assert_eq!(d.config.searches.len(), 32);
    }

    #[test]
    fn host_resolv_conf_limit_checks() {
        let mut h = host();
        assert_eq!(
            check_resolv_conf_limits("/etc/resolv.conf", &h, "cluster.local"),
            None
        );
        h.searches = (0..30).map(|i| format!("d{i}")).collect();
        assert_eq!(
            check_resolv_conf_limits("/etc/resolv.conf", &h, "cluster.local"),
            Some("Resolv.conf file '/etc/resolv.conf' contains search line consisting of more than 29 domains!".into())
        );
        assert_eq!(check_resolv_conf_limits("/etc/resolv.conf", &h, ""), None);
        h.searches = vec!["a".repeat(254)];
        assert_eq!(
            check_resolv_conf_limits("/etc/resolv.conf", &h, "cluster.local"),
            Some("Resolv.conf file \"/etc/resolv.conf\" contains a search path which length is more than allowed 253 chars!".into())
        );
        h.searches = vec!["a".repeat(250); 9];
        assert_eq!(
            check_resolv_conf_limits("/r", &h, "cluster.local"),
            Some("Resolv.conf file '/r' contains search line which length is more than allowed 2048 chars!".into())
        );
    }
}
