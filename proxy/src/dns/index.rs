//! The cluster DNS index and its pure lookup: compact records of Services, EndpointSlices
//! and Namespaces, and `lookup(name, type)` answering as CoreDNS's kubernetes plugin does
//! with k3s's Corefile (`kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure;
//! fallthrough in-addr.arpa ip6.arpa; ttl 30 }`). No IO: the server and the watchers wrap it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::DnsError;

/// The schema version answered for `dns-version.<zone>` TXT (kubernetes/dns specification).
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the `dns-version` TXT record, as CoreDNS.
const DNS_VERSION_TTL: u32 = 28800;
/// Longest CNAME chain followed inside the zone, as CoreDNS's `maxCnameChainLength`.
const MAX_CNAME_CHAIN: usize = 10;
/// The reverse zones served next to the cluster domain; misses there fall through.
const REVERSE_ZONES: [&str; 2] = ["in-addr.arpa", "ip6.arpa"];

/// How a Service resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// ClusterIP, NodePort or LoadBalancer: A/AAAA to these IPs (none while unallocated).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the ready endpoints' IPs.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(String),
}

/// One port of a Service or EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    /// `ports[].name`, empty when unnamed.
    pub name: String,
    /// As the API spells it (`TCP`, `UDP`, `SCTP`).
    pub protocol: String,
    /// `None` when the slice leaves the port number unset (no SRV record then).
    pub port: Option<u16>,
}

/// The part of a Service the DNS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceKind,
    pub ports: Vec<PortRecord>,
}

/// One ready endpoint address of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub ip: IpAddr,
    /// `endpoints[].hostname`, when set.
    pub hostname: Option<String>,
}

/// The part of an EndpointSlice the DNS needs: only endpoints whose `conditions.ready` is
/// true or unset are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRecord {
    pub namespace: String,
    /// The slice's own name.
    pub name: String,
    /// Its `kubernetes.io/service-name` label.
    pub service: String,
    pub ports: Vec<PortRecord>,
    pub endpoints: Vec<EndpointRecord>,
}

/// Which watched resource finished its initial list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Services,
    EndpointSlices,
    Namespaces,
}

/// What the server must do besides sending the records of an [`Answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send the answer as it is.
    Done,
    /// Not ours (outside the zones, or a reverse name the index does not know: CoreDNS's
    /// `fallthrough`): forward the query upstream; without upstream send the answer (SERVFAIL).
    Forward,
    /// The answer ends with a CNAME to a name outside the cluster domain: append what the
    /// upstream answers for (target, type); without upstream send the CNAME alone.
    Chase { target: Name, qtype: RecordType },
}

/// The result of a lookup, ready to become a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    pub next: Next,
}

impl Answer {
    fn forward() -> Self {
        Answer {
            rcode: ResponseCode::ServFail,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            next: Next::Forward,
        }
    }

    fn refused() -> Self {
        Answer {
            rcode: ResponseCode::Refused,
            next: Next::Done,
            ..Answer::forward()
        }
    }
}

/// One zone served: the cluster domain first, then the reverse zones.
#[derive(Debug, Clone)]
struct Zone {
    /// Lower-case labels, left to right.
    labels: Vec<String>,
    /// Lower-case, fully qualified.
    name: Name,
    /// Name errors fall through to the next handler (forward) instead of NXDOMAIN.
    fallthrough: bool,
}

/// The name does not exist (CoreDNS's errNoItems / errNsNotExposed / errInvalidRequest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameError;

/// What a name resolves to before it becomes records (CoreDNS's msg.Service).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    host: Host,
    /// `None`: no port (CoreDNS's -1 sentinel), no SRV record.
    port: Option<u16>,
    /// The entry's own name, labels before the zone (the SRV target).
    key: Vec<String>,
}

/// Records found for a name, before the rcode is decided.
#[derive(Debug, Default)]
struct Found {
    answers: Vec<Record>,
    additional: Vec<Record>,
    chase: Option<(Name, RecordType)>,
}

/// A parsed query name inside the cluster domain (CoreDNS's recordRequest).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Request {
    port: String,
    protocol: String,
    endpoint: String,
    service: String,
    namespace: String,
    /// `svc`, `pod`, or empty for the zone apex and `svc.<zone>` / `pod.<zone>`.
    pod_or_svc: String,
}

type Key = (String, String);

static NO_PORTS: [PortRecord; 1] = [PortRecord {
    name: String::new(),
    protocol: String::new(),
    port: None,
}];

/// The ports to iterate: a port-less sentinel when there are none, as CoreDNS.
fn ports_or_sentinel(ports: &[PortRecord]) -> &[PortRecord] {
    if ports.is_empty() {
        &NO_PORTS
    } else {
        ports
    }
}

fn match_port_and_protocol(req: &Request, p: &PortRecord) -> bool {
    (req.port.is_empty() || req.port.eq_ignore_ascii_case(&p.name))
        && (req.protocol.is_empty() || req.protocol.eq_ignore_ascii_case(&p.protocol))
}

/// The endpoint's DNS label: its hostname, else its IP with dashes (CoreDNS endpointHostname
/// without `endpoint_pod_names`).
pub fn endpoint_hostname(ep: &EndpointRecord) -> String {
    if let Some(h) = ep.hostname.as_deref().filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    match ep.ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let dashed = v6.to_string().replace(':', "-");
            if dashed.ends_with('-') {
                format!("{dashed}0")
            } else {
                dashed
            }
        }
    }
}

fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

/// Parses the labels of a name below a zone (CoreDNS parseRequest, no multicluster, no zonal).
fn parse_request(base: &[String]) -> Result<Request, NameError> {
    let mut r = Request::default();
    if base.is_empty() || (base.len() == 1 && (base[0] == "svc" || base[0] == "pod")) {
        return Ok(r);
    }
    let mut rest = base;
    let Some((kind, before)) = rest.split_last() else {
        return Ok(r);
    };
    if kind != "svc" && kind != "pod" {
        return Err(NameError);
    }
    r.pod_or_svc = kind.clone();
    rest = before;
    let Some((ns, before)) = rest.split_last() else {
        return Ok(r);
    };
    r.namespace = ns.clone();
    rest = before;
    let Some((svc, before)) = rest.split_last() else {
        return Ok(r);
    };
    r.service = svc.clone();
    rest = before;
    match rest {
        [] => {}
        [endpoint] => r.endpoint = endpoint.clone(),
        [port, protocol] => {
            r.port = strip_underscore(port).to_string();
            r.protocol = strip_underscore(protocol).to_string();
        }
        _ => return Err(NameError),
    }
    Ok(r)
}

/// The address a reverse name stands for (`4.3.2.1.in-addr.arpa` → 1.2.3.4), CoreDNS's
/// ExtractAddressFromReverse; `labels` are lower case, left to right.
fn address_from_reverse(labels: &[String]) -> Option<IpAddr> {
    let n = labels.len();
    if n >= 2 && labels[n - 2] == "in-addr" && labels[n - 1] == "arpa" {
        let octets = &labels[..n - 2];
        if octets.len() != 4 {
            return None;
        }
        let dotted: Vec<&str> = octets.iter().rev().map(String::as_str).collect();
        return dotted.join(".").parse().ok().map(IpAddr::V4);
    }
    if n >= 2 && labels[n - 2] == "ip6" && labels[n - 1] == "arpa" {
        let nibbles = &labels[..n - 2];
        if nibbles.len() != 32 || nibbles.iter().any(|l| l.len() != 1) {
            return None;
        }
        let hex: String = nibbles.iter().rev().map(String::as_str).collect();
        let mut groups = Vec::with_capacity(8);
        for i in 0..8 {
            groups.push(&hex[i * 4..i * 4 + 4]);
        }
        return groups.join(":").parse().ok().map(IpAddr::V6);
    }
    None
}

/// Lower-case labels of a name, left to right.
fn lower_labels(name: &Name) -> Vec<String> {
    name.iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect()
}

fn address_record(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(owner, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(owner, ttl, RData::AAAA(AAAA(v6))),
    }
}

fn fqdn(name: &str) -> Option<Name> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// The in-memory cluster DNS data and its lookup.
#[derive(Debug, Clone)]
pub struct DnsIndex {
    zones: Vec<Zone>,
    ttl: u32,
    serial: u32,
    synced: [bool; 3],
    /// The Service whose ClusterIPs answer `ns.dns.<zone>` and the apex NS.
    dns_service: Key,
    /// Addresses for `ns.dns.<zone>` when that Service does not exist.
    local_ips: Vec<IpAddr>,
    namespaces: HashSet<String>,
    services: HashMap<Key, ServiceRecord>,
    slices: HashMap<Key, SliceRecord>,
    slices_by_service: HashMap<Key, BTreeSet<String>>,
    service_by_ip: HashMap<IpAddr, BTreeSet<Key>>,
    slices_by_ip: HashMap<IpAddr, BTreeSet<Key>>,
}

impl DnsIndex {
    /// An empty, unsynced index for `domain` (e.g. `cluster.local`) answering with `ttl`.
    pub fn new(domain: &str, ttl: u32) -> Result<Self, DnsError> {
        let mut zones = Vec::with_capacity(3);
        for (zone, fallthrough) in
            std::iter::once((domain, false)).chain(REVERSE_ZONES.iter().map(|z| (*z, true)))
        {
            let name = fqdn(zone)
                .filter(|n| !n.is_root())
                .ok_or_else(|| DnsError::Domain {
                    domain: zone.to_string(),
                })?
                .to_lowercase();
            zones.push(Zone {
                labels: lower_labels(&name),
                name,
                fallthrough,
            });
        }
        Ok(DnsIndex {
            zones,
            ttl,
            serial: 0,
            synced: [false; 3],
            dns_service: ("kube-system".to_string(), "kube-dns".to_string()),
            local_ips: Vec::new(),
            namespaces: HashSet::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            service_by_ip: HashMap::new(),
            slices_by_ip: HashMap::new(),
        })
    }

    /// Addresses answered for `ns.dns.<zone>` when the DNS Service does not exist.
    pub fn set_local_ips(&mut self, ips: Vec<IpAddr>) {
        self.local_ips = ips;
    }

    /// The Service (default `kube-system/kube-dns`) naming this server in NS answers.
    pub fn set_dns_service(&mut self, namespace: &str, name: &str) {
        self.dns_service = (namespace.to_string(), name.to_string());
    }

    /// The SOA serial (CoreDNS: the Unix time of the last change).
    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
    }

    /// Records that the initial list of `resource` completed.
    pub fn set_synced(&mut self, resource: Resource) {
        self.synced[resource as usize] = true;
    }

    /// Whether Services, EndpointSlices and Namespaces have all been listed once; until
    /// then names not found answer SERVFAIL instead of NXDOMAIN, as CoreDNS.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|s| *s)
    }

    /// Counts of (namespaces, services, slices) held.
    pub fn len(&self) -> (usize, usize, usize) {
        (
            self.namespaces.len(),
            self.services.len(),
            self.slices.len(),
        )
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.services.is_empty() && self.slices.is_empty()
    }

    pub fn apply_namespace(&mut self, name: &str) {
        self.namespaces.insert(name.to_string());
    }

    pub fn delete_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Replaces every namespace (after a relist).
    pub fn replace_namespaces(&mut self, names: impl IntoIterator<Item = String>) {
        self.namespaces = names.into_iter().collect();
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, rec: ServiceRecord) {
        let key = (rec.namespace.clone(), rec.name.clone());
        self.unindex_service(&key);
        if let ServiceKind::ClusterIp(ips) = &rec.kind {
            for ip in ips {
                self.service_by_ip
                    .entry(*ip)
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.services.insert(key, rec);
    }

    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        self.unindex_service(&(namespace.to_string(), name.to_string()));
    }

    /// Replaces every Service (after a relist).
    pub fn replace_services(&mut self, recs: impl IntoIterator<Item = ServiceRecord>) {
        self.services.clear();
        self.service_by_ip.clear();
        for rec in recs {
            self.apply_service(rec);
        }
    }

    fn unindex_service(&mut self, key: &Key) {
        if let Some(old) = self.services.remove(key) {
            if let ServiceKind::ClusterIp(ips) = old.kind {
                for ip in ips {
                    remove_from(&mut self.service_by_ip, &ip, key);
                }
            }
        }
    }

    /// Adds or replaces an EndpointSlice.
    pub fn apply_slice(&mut self, rec: SliceRecord) {
        let key = (rec.namespace.clone(), rec.name.clone());
        self.unindex_slice(&key);
        self.slices_by_service
            .entry((rec.namespace.clone(), rec.service.clone()))
            .or_default()
            .insert(rec.name.clone());
        for ep in &rec.endpoints {
            self.slices_by_ip
                .entry(ep.ip)
                .or_default()
                .insert(key.clone());
        }
        self.slices.insert(key, rec);
    }

    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        self.unindex_slice(&(namespace.to_string(), name.to_string()));
    }

    /// Replaces every EndpointSlice (after a relist).
    pub fn replace_slices(&mut self, recs: impl IntoIterator<Item = SliceRecord>) {
        self.slices.clear();
        self.slices_by_service.clear();
        self.slices_by_ip.clear();
        for rec in recs {
            self.apply_slice(rec);
        }
    }

    fn unindex_slice(&mut self, key: &Key) {
        if let Some(old) = self.slices.remove(key) {
            let svc_key = (old.namespace.clone(), old.service.clone());
            if let Some(set) = self.slices_by_service.get_mut(&svc_key) {
                set.remove(&old.name);
                if set.is_empty() {
                    self.slices_by_service.remove(&svc_key);
                }
            }
            for ep in &old.endpoints {
                remove_from(&mut self.slices_by_ip, &ep.ip, key);
            }
        }
    }

    /// Answers `qname`/`qtype` from the index (CoreDNS kubernetes ServeDNS).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Answer {
        let labels = lower_labels(qname);
        let Some(zone) = self.match_zone(&labels) else {
            return Answer::forward();
        };
        let base = &labels[..labels.len() - zone.labels.len()];
        let found = match qtype {
            RecordType::AXFR | RecordType::IXFR => return Answer::refused(),
            RecordType::A | RecordType::AAAA => self.addresses(zone, qname, base, qtype, 0),
            RecordType::TXT => self.txt(zone, qname, base),
            RecordType::CNAME => self.cname(zone, qname, base),
            RecordType::PTR => self.ptr(zone, qname, base, &labels),
            RecordType::MX => self.entries(zone, base).map(|_| Found::default()),
            RecordType::SRV => self.srv(zone, qname, base),
            RecordType::SOA if base.is_empty() => Ok(Found {
                answers: vec![self.soa(zone)],
                ..Found::default()
            }),
            RecordType::SOA => Ok(Found::default()),
            RecordType::NS if base.is_empty() => Ok(self.ns(zone, qname)),
            _ => self
                .addresses(zone, qname, base, RecordType::A, 0)
                .map(|_| Found::default()),
        };
        match found {
            Err(NameError) if zone.fallthrough => Answer::forward(),
            Err(NameError) => Answer {
                rcode: if self.is_synced() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::ServFail
                },
                authoritative: true,
                answers: Vec::new(),
                authority: vec![self.soa(zone)],
                additional: Vec::new(),
                next: Next::Done,
            },
            Ok(found) if found.answers.is_empty() => Answer {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: Vec::new(),
                authority: vec![self.soa(zone)],
                additional: Vec::new(),
                next: Next::Done,
            },
            Ok(found) => Answer {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: found.answers,
                authority: Vec::new(),
                additional: found.additional,
                next: match found.chase {
                    Some((target, qtype)) => Next::Chase { target, qtype },
                    None => Next::Done,
                },
            },
        }
    }

    /// The longest served zone containing the name.
    fn match_zone(&self, labels: &[String]) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| labels.len() >= z.labels.len() && labels.ends_with(&z.labels))
            .max_by_key(|z| z.labels.len())
    }

    fn name_in_zone(&self, zone: &Zone, key: &[String]) -> Option<Name> {
        let mut s = String::new();
        for l in key {
            s.push_str(l);
            s.push('.');
        }
        for l in &zone.labels {
            s.push_str(l);
            s.push('.');
        }
        fqdn(&s)
    }

    fn soa(&self, zone: &Zone) -> Record {
        let mname = self
            .name_in_zone(zone, &["ns".into(), "dns".into()])
            .unwrap_or_else(|| zone.name.clone());
        let rname = self
            .name_in_zone(zone, &["hostmaster".into()])
            .unwrap_or_else(|| zone.name.clone());
        Record::from_rdata(
            zone.name.clone(),
            self.ttl.min(300),
            RData::SOA(SOA::new(
                mname,
                rname,
                self.serial,
                7200,
                1800,
                86400,
                self.ttl,
            )),
        )
    }

    /// Addresses of this server: the DNS Service's ClusterIPs, else the local IPs
    /// (CoreDNS nsAddrs), each with the name it goes by.
    fn ns_addrs(&self) -> Vec<(Vec<String>, IpAddr)> {
        if let Some(svc) = self.services.get(&self.dns_service) {
            if let ServiceKind::ClusterIp(ips) = &svc.kind {
                if !ips.is_empty() {
                    let key = vec![svc.name.clone(), svc.namespace.clone(), "svc".to_string()];
                    return ips.iter().map(|ip| (key.clone(), *ip)).collect();
                }
            }
        }
        let key = vec!["ns".to_string(), "dns".to_string()];
        self.local_ips.iter().map(|ip| (key.clone(), *ip)).collect()
    }

    /// CoreDNS Services() for the types that go through it: `ns.dns.<zone>`, else Records().
    fn entries(&self, zone: &Zone, base: &[String]) -> Result<Vec<Entry>, NameError> {
        if base.len() == 2 && base[0] == "ns" && base[1] == "dns" {
            return Ok(self
                .ns_addrs()
                .into_iter()
                .map(|(_, ip)| Entry {
                    host: Host::Ip(ip),
                    port: Some(0),
                    key: base.to_vec(),
                })
                .collect());
        }
        self.records(zone, base)
    }

    /// CoreDNS Records(): services and pods named by `base`.
    fn records(&self, zone: &Zone, base: &[String]) -> Result<Vec<Entry>, NameError> {
        let r = parse_request(base)?;
        if r.pod_or_svc.is_empty() {
            return Ok(Vec::new());
        }
        if zone.fallthrough || !self.namespaces.contains(&r.namespace) {
            return Err(NameError);
        }
        if r.pod_or_svc == "pod" {
            self.find_pods(&r)
        } else {
            self.find_services(&r)
        }
    }

    /// `pods insecure`: the address comes from the name itself (`1-2-3-4.ns.pod.<zone>`).
    fn find_pods(&self, r: &Request) -> Result<Vec<Entry>, NameError> {
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        let text = if r.service.matches('-').count() == 3 && !r.service.contains("--") {
            r.service.replace('-', ".")
        } else {
            r.service.replace('-', ":")
        };
        let ip: IpAddr = text.parse().map_err(|_| NameError)?;
        Ok(vec![Entry {
            host: Host::Ip(ip),
            port: Some(0),
            key: vec![r.service.clone(), r.namespace.clone(), "pod".to_string()],
        }])
    }

    fn find_services(&self, r: &Request) -> Result<Vec<Entry>, NameError> {
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        let key = (r.namespace.clone(), r.service.clone());
        let svc = self.services.get(&key).ok_or(NameError)?;
        let svc_key = vec![svc.name.clone(), svc.namespace.clone(), "svc".to_string()];
        let mut found = false;
        let mut out = Vec::new();
        match &svc.kind {
            ServiceKind::ExternalName(target) => {
                if !r.endpoint.is_empty() || !r.port.is_empty() || !r.protocol.is_empty() {
                    return Err(NameError);
                }
                // An IP in externalName is not a CNAME target: CoreDNS skips it.
                if target.is_empty() || target.parse::<IpAddr>().is_ok() {
                    return Err(NameError);
                }
                out.push(Entry {
                    host: Host::Name(target.clone()),
                    port: None,
                    key: svc_key,
                });
                found = true;
            }
            kind if *kind == ServiceKind::Headless || !r.endpoint.is_empty() => {
                for slice_name in self.slices_by_service.get(&key).into_iter().flatten() {
                    let Some(slice) = self.slices.get(&(key.0.clone(), slice_name.clone())) else {
                        continue;
                    };
                    for ep in &slice.endpoints {
                        let host = endpoint_hostname(ep);
                        if !r.endpoint.is_empty() && r.endpoint != host {
                            continue;
                        }
                        for p in ports_or_sentinel(&slice.ports) {
                            if !match_port_and_protocol(r, p) {
                                continue;
                            }
                            let mut k = Vec::with_capacity(4);
                            k.push(host.clone());
                            k.extend(svc_key.iter().cloned());
                            out.push(Entry {
                                host: Host::Ip(ep.ip),
                                port: p.port,
                                key: k,
                            });
                            found = true;
                        }
                    }
                }
            }
            ServiceKind::ClusterIp(ips) => {
                for p in ports_or_sentinel(&svc.ports) {
                    if !match_port_and_protocol(r, p) {
                        continue;
                    }
                    found = true;
                    for ip in ips {
                        out.push(Entry {
                            host: Host::Ip(*ip),
                            port: p.port,
                            key: svc_key.clone(),
                        });
                    }
                }
            }
            ServiceKind::Headless => {}
        }
        if found {
            Ok(out)
        } else {
            Err(NameError)
        }
    }

    /// A/AAAA (CoreDNS plugin.A / plugin.AAAA), following CNAMEs inside the zone.
    fn addresses(
        &self,
        zone: &Zone,
        qname: &Name,
        base: &[String],
        qtype: RecordType,
        chain: usize,
    ) -> Result<Found, NameError> {
        let entries = self.entries(zone, base)?;
        let mut found = Found::default();
        let mut seen = HashSet::new();
        for e in entries {
            match e.host {
                Host::Name(target) => {
                    let Some(target) = fqdn(&target) else {
                        continue;
                    };
                    let target_labels = lower_labels(&target);
                    if target_labels == lower_labels(qname) || chain > MAX_CNAME_CHAIN {
                        continue;
                    }
                    let cname = Record::from_rdata(
                        qname.clone(),
                        self.ttl,
                        RData::CNAME(CNAME(target.clone())),
                    );
                    if target_labels.len() >= zone.labels.len()
                        && target_labels.ends_with(&zone.labels)
                    {
                        let tbase = &target_labels[..target_labels.len() - zone.labels.len()];
                        if let Ok(next) = self.addresses(zone, &target, tbase, qtype, chain + 1) {
                            if !next.answers.is_empty() {
                                found.answers.push(cname);
                                found.answers.extend(next.answers);
                                if found.chase.is_none() {
                                    found.chase = next.chase;
                                }
                            }
                        }
                        continue;
                    }
                    found.answers.push(cname);
                    if found.chase.is_none() {
                        found.chase = Some((target, qtype));
                    }
                }
                Host::Ip(ip) => {
                    let wanted = matches!(
                        (ip, qtype),
                        (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
                    );
                    if wanted && seen.insert(ip) {
                        found
                            .answers
                            .push(address_record(qname.clone(), self.ttl, ip));
                    }
                }
            }
        }
        Ok(found)
    }

    /// TXT: only `dns-version.<zone>`; an existing name of another type is NODATA and
    /// anything else NXDOMAIN (CoreDNS answers NXDOMAIN even for a namespace name here).
    fn txt(&self, zone: &Zone, qname: &Name, base: &[String]) -> Result<Found, NameError> {
        if base.len() == 1 && base[0] == "dns-version" {
            return Ok(Found {
                answers: vec![Record::from_rdata(
                    qname.clone(),
                    DNS_VERSION_TTL,
                    RData::TXT(TXT::new(vec![DNS_SCHEMA_VERSION.to_string()])),
                )],
                ..Found::default()
            });
        }
        match self.records(zone, base) {
            Ok(entries) if !entries.is_empty() => Ok(Found::default()),
            _ => Err(NameError),
        }
    }

    fn cname(&self, zone: &Zone, qname: &Name, base: &[String]) -> Result<Found, NameError> {
        let entries = self.entries(zone, base)?;
        let mut found = Found::default();
        if let Some(Entry {
            host: Host::Name(target),
            ..
        }) = entries.first()
        {
            if let Some(target) = fqdn(target) {
                found.answers.push(Record::from_rdata(
                    qname.clone(),
                    self.ttl,
                    RData::CNAME(CNAME(target)),
                ));
            }
        }
        Ok(found)
    }

    /// PTR: Service ClusterIPs first, else ready endpoint addresses (CoreDNS
    /// serviceRecordForIP); names that are no reverse address go through Records().
    fn ptr(
        &self,
        zone: &Zone,
        qname: &Name,
        base: &[String],
        labels: &[String],
    ) -> Result<Found, NameError> {
        let Some(ip) = address_from_reverse(labels) else {
            let entries = self.records(zone, base)?;
            let mut found = Found::default();
            for e in entries {
                if let Host::Name(target) = e.host {
                    if let Some(target) = fqdn(&target) {
                        found.answers.push(Record::from_rdata(
                            qname.clone(),
                            self.ttl,
                            RData::PTR(PTR(target)),
                        ));
                    }
                }
            }
            return Ok(found);
        };
        let primary = &self.zones[0];
        let mut targets: Vec<Vec<String>> = Vec::new();
        if let Some((ns, name)) = self.service_by_ip.get(&ip).and_then(|s| s.iter().next()) {
            targets.push(vec![name.clone(), ns.clone(), "svc".to_string()]);
        } else {
            for key in self.slices_by_ip.get(&ip).into_iter().flatten() {
                let Some(slice) = self.slices.get(key) else {
                    continue;
                };
                for ep in slice.endpoints.iter().filter(|ep| ep.ip == ip) {
                    let t = vec![
                        endpoint_hostname(ep),
                        slice.service.clone(),
                        slice.namespace.clone(),
                        "svc".to_string(),
                    ];
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
            }
        }
        if targets.is_empty() {
            return Err(NameError);
        }
        let answers = targets
            .iter()
            .filter_map(|t| self.name_in_zone(primary, t))
            .map(|t| Record::from_rdata(qname.clone(), self.ttl, RData::PTR(PTR(t))))
            .collect();
        Ok(Found {
            answers,
            ..Found::default()
        })
    }

    /// SRV with the targets' addresses in the additional section (CoreDNS plugin.SRV).
    fn srv(&self, zone: &Zone, qname: &Name, base: &[String]) -> Result<Found, NameError> {
        let entries: Vec<Entry> = if base.len() == 2 && base[0] == "ns" && base[1] == "dns" {
            Vec::new()
        } else {
            self.records(zone, base)?
                .into_iter()
                .filter(|e| matches!(e.host, Host::Ip(_)))
                .collect()
        };
        let weight = if entries.is_empty() {
            0
        } else {
            (100 / entries.len()).max(1) as u16
        };
        let mut found = Found::default();
        let mut seen_srv = HashSet::new();
        let mut seen_addr = HashSet::new();
        for e in entries {
            let (Host::Ip(ip), Some(port)) = (&e.host, e.port) else {
                continue;
            };
            let Some(target) = self.name_in_zone(zone, &e.key) else {
                continue;
            };
            if seen_srv.insert((e.key.clone(), port)) {
                found.answers.push(Record::from_rdata(
                    qname.clone(),
                    self.ttl,
                    RData::SRV(SRV::new(0, weight, port, target.clone())),
                ));
            }
            if seen_addr.insert((e.key.clone(), *ip)) {
                found.additional.push(address_record(target, self.ttl, *ip));
            }
        }
        Ok(found)
    }

    /// NS at the zone apex, with the servers' addresses as glue.
    fn ns(&self, zone: &Zone, qname: &Name) -> Found {
        let mut found = Found::default();
        let mut seen = HashSet::new();
        for (key, ip) in self.ns_addrs() {
            let Some(target) = self.name_in_zone(zone, &key) else {
                continue;
            };
            found
                .additional
                .push(address_record(target.clone(), self.ttl, ip));
            if seen.insert(key) {
                found.answers.push(Record::from_rdata(
                    qname.clone(),
                    self.ttl,
                    RData::NS(NS(target)),
                ));
            }
        }
        found
    }
}

fn remove_from(map: &mut HashMap<IpAddr, BTreeSet<Key>>, ip: &IpAddr, key: &Key) {
    if let Some(set) = map.get_mut(ip) {
        set.remove(key);
        if set.is_empty() {
            map.remove(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn port(name: &str, proto: &str, port: u16) -> PortRecord {
        PortRecord {
            name: name.into(),
            protocol: proto.into(),
            port: Some(port),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn svc(ns: &str, name: &str, kind: ServiceKind, ports: Vec<PortRecord>) -> ServiceRecord {
        ServiceRecord {
            namespace: ns.into(),
            name: name.into(),
            kind,
            ports,
        }
    }

    fn ep(addr: &str, hostname: Option<&str>) -> EndpointRecord {
        EndpointRecord {
            ip: ip(addr),
            hostname: hostname.map(String::from),
        }
    }

    fn slice(
        ns: &str,
        name: &str,
        service: &str,
        ports: Vec<PortRecord>,
        eps: Vec<EndpointRecord>,
    ) -> SliceRecord {
        SliceRecord {
            namespace: ns.into(),
            name: name.into(),
            service: service.into(),
            ports,
            endpoints: eps,
        }
    }

    /// default/web (ClusterIP, ports http/tcp 80 and dns/udp 53), default/db (headless,
    /// two slices, one endpoint with hostname), default/ext (ExternalName), default/inner
    /// (ExternalName to web), default/empty (headless, no endpoints), kube-system/kube-dns.
    fn index() -> DnsIndex {
        let mut ix = DnsIndex::new("cluster.local", 30).unwrap();
        ix.set_serial(42);
        for ns in ["default", "kube-system", "empty-ns"] {
            ix.apply_namespace(ns);
        }
        ix.apply_service(svc(
            "default",
            "web",
            ServiceKind::ClusterIp(vec![ip("10.43.0.20")]),
            vec![port("http", "TCP", 80), port("dns", "UDP", 53)],
        ));
        ix.apply_service(svc(
            "default",
            "db",
            ServiceKind::Headless,
            vec![port("pg", "TCP", 5432)],
        ));
        ix.apply_slice(slice(
            "default",
            "db-abc",
            "db",
            vec![port("pg", "TCP", 5432)],
            vec![ep("10.42.0.5", Some("db-0")), ep("10.42.0.6", None)],
        ));
        ix.apply_slice(slice(
            "default",
            "db-def",
            "db",
            vec![port("pg", "TCP", 5432)],
            vec![ep("10.42.1.7", None)],
        ));
        ix.apply_service(svc(
            "default",
            "ext",
            ServiceKind::ExternalName("example.com".into()),
            vec![],
        ));
        ix.apply_service(svc(
            "default",
            "inner",
            ServiceKind::ExternalName("web.default.svc.cluster.local".into()),
            vec![],
        ));
        ix.apply_service(svc("default", "empty", ServiceKind::Headless, vec![]));
        ix.apply_service(svc(
            "kube-system",
            "kube-dns",
            ServiceKind::ClusterIp(vec![ip("10.43.0.10")]),
            vec![port("dns", "UDP", 53)],
        ));
        ix.set_synced(Resource::Services);
        ix.set_synced(Resource::EndpointSlices);
        ix.set_synced(Resource::Namespaces);
        ix
    }

    fn ips(a: &Answer) -> Vec<IpAddr> {
        a.answers
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    fn assert_nxdomain(a: &Answer) {
        assert_eq!(a.rcode, ResponseCode::NXDomain, "{a:?}");
        assert!(a.answers.is_empty());
        assert_eq!(a.authority.len(), 1);
        assert_eq!(a.authority[0].record_type(), RecordType::SOA);
        assert_eq!(a.authority[0].name(), &n("cluster.local."));
        assert_eq!(a.next, Next::Done);
    }

    fn assert_nodata(a: &Answer) {
        assert_eq!(a.rcode, ResponseCode::NoError, "{a:?}");
        assert!(a.answers.is_empty(), "{a:?}");
        assert_eq!(a.authority.len(), 1);
        assert_eq!(a.authority[0].record_type(), RecordType::SOA);
        assert!(a.authoritative);
    }

    #[test]
    fn cluster_ip_service_a_record() {
        let a = index().lookup(&n("web.default.svc.cluster.local."), RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.authoritative);
        assert_eq!(ips(&a), vec![ip("10.43.0.20")]);
        assert_eq!(a.answers[0].ttl(), 30);
        assert_eq!(a.answers[0].name(), &n("web.default.svc.cluster.local."));
        assert_eq!(a.next, Next::Done);
    }

    #[test]
    fn names_are_case_insensitive_and_keep_the_query_case() {
        let a = index().lookup(&n("WEB.Default.SVC.Cluster.Local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.43.0.20")]);
        assert!(a.answers[0]
            .name()
            .eq_case(&n("WEB.Default.SVC.Cluster.Local.")));
    }

    #[test]
    fn other_type_of_known_name_is_nodata() {
        let ix = index();
        assert_nodata(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::AAAA));
        assert_nodata(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::TXT));
        assert_nodata(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::MX));
        assert_nodata(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::HTTPS));
        assert_nodata(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::CNAME));
    }

    #[test]
    fn dual_stack_service_answers_aaaa() {
        let mut ix = index();
        ix.apply_service(svc(
            "default",
            "dual",
            ServiceKind::ClusterIp(vec![ip("10.43.0.30"), ip("fd00:43::30")]),
            vec![port("http", "TCP", 80)],
        ));
        let a = ix.lookup(&n("dual.default.svc.cluster.local."), RecordType::AAAA);
        assert_eq!(ips(&a), vec![ip("fd00:43::30")]);
        let a = ix.lookup(&n("dual.default.svc.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.43.0.30")]);
    }

    #[test]
    fn unknown_names_are_nxdomain_with_soa() {
        let ix = index();
        for name in [
            "nope.default.svc.cluster.local.",
            "web.nope.svc.cluster.local.",
            "nope.svc.cluster.local.",
            "foo.cluster.local.",
            "a.b.c.web.default.svc.cluster.local.",
            "x.web.default.svc.cluster.local.",
            "_http._udp.web.default.svc.cluster.local.",
            "1-2-3-4.nope.pod.cluster.local.",
            "not-an-ip.default.pod.cluster.local.",
            "dns.cluster.local.",
            "ext-a.default.svc.cluster.local.",
        ] {
            let a = ix.lookup(&n(name), RecordType::A);
            assert_nxdomain(&a);
        }
        let soa = &ix
            .lookup(&n("nope.default.svc.cluster.local."), RecordType::A)
            .authority[0];
        match soa.data() {
            RData::SOA(s) => {
                assert_eq!(s.mname(), &n("ns.dns.cluster.local."));
                assert_eq!(s.rname(), &n("hostmaster.cluster.local."));
                assert_eq!(s.serial(), 42);
                assert_eq!(
                    (s.refresh(), s.retry(), s.expire(), s.minimum()),
                    (7200, 1800, 86400, 30)
                );
            }
            other => panic!("not a SOA: {other:?}"),
        }
        assert_eq!(soa.ttl(), 30);
    }

    #[test]
    fn namespace_and_apex_names_are_nodata() {
        let ix = index();
        for name in [
            "default.svc.cluster.local.",
            "empty-ns.svc.cluster.local.",
            "default.pod.cluster.local.",
            "svc.cluster.local.",
            "pod.cluster.local.",
            "cluster.local.",
        ] {
            assert_nodata(&ix.lookup(&n(name), RecordType::A));
        }
        // CoreDNS: TXT for a name that resolves to nothing is NXDOMAIN, even a namespace.
        assert_nxdomain(&ix.lookup(&n("default.svc.cluster.local."), RecordType::TXT));
        // SOA away from the apex is NODATA whatever the name.
        assert_nodata(&ix.lookup(&n("nope.default.svc.cluster.local."), RecordType::SOA));
    }

    #[test]
    fn apex_soa_ns_and_dns_version() {
        let ix = index();
        let a = ix.lookup(&n("cluster.local."), RecordType::SOA);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].record_type(), RecordType::SOA);
        let a = ix.lookup(&n("cluster.local."), RecordType::NS);
        match a.answers[0].data() {
            RData::NS(ns) => assert_eq!(ns.0, n("kube-dns.kube-system.svc.cluster.local.")),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.additional.len(), 1);
        assert_eq!(
            a.additional[0].name(),
            &n("kube-dns.kube-system.svc.cluster.local.")
        );
        let a = ix.lookup(&n("ns.dns.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.43.0.10")]);
        let a = ix.lookup(&n("dns-version.cluster.local."), RecordType::TXT);
        match a.answers[0].data() {
            RData::TXT(t) => assert_eq!(t.to_string(), "1.1.0"),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.answers[0].ttl(), 28800);
        assert_nxdomain(&ix.lookup(&n("dns-version.cluster.local."), RecordType::A));
    }

    #[test]
    fn ns_falls_back_to_local_ips_without_the_dns_service() {
        let mut ix = index();
        ix.delete_service("kube-system", "kube-dns");
        ix.set_local_ips(vec![ip("192.168.1.5")]);
        let a = ix.lookup(&n("cluster.local."), RecordType::NS);
        match a.answers[0].data() {
            RData::NS(ns) => assert_eq!(ns.0, n("ns.dns.cluster.local.")),
            other => panic!("{other:?}"),
        }
        let a = ix.lookup(&n("ns.dns.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("192.168.1.5")]);
    }

    #[test]
    fn headless_service_answers_ready_endpoints() {
        let a = index().lookup(&n("db.default.svc.cluster.local."), RecordType::A);
        assert_eq!(
            ips(&a),
            vec![ip("10.42.0.5"), ip("10.42.0.6"), ip("10.42.1.7")]
        );
    }

    #[test]
    fn headless_service_without_endpoints_is_nxdomain() {
        assert_nxdomain(&index().lookup(&n("empty.default.svc.cluster.local."), RecordType::A));
    }

    #[test]
    fn endpoint_names_hostname_and_dashed_ip() {
        let ix = index();
        let a = ix.lookup(&n("db-0.db.default.svc.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.42.0.5")]);
        let a = ix.lookup(&n("10-42-0-6.db.default.svc.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.42.0.6")]);
        // An endpoint with a hostname is not reachable by its dashed IP.
        assert_nxdomain(&ix.lookup(&n("10-42-0-5.db.default.svc.cluster.local."), RecordType::A));
        assert_nxdomain(&ix.lookup(&n("db-9.db.default.svc.cluster.local."), RecordType::A));
    }

    #[test]
    fn endpoint_names_resolve_under_cluster_ip_services_too() {
        let mut ix = index();
        ix.apply_slice(slice(
            "default",
            "web-1",
            "web",
            vec![port("http", "TCP", 8080)],
            vec![ep("10.42.2.9", None)],
        ));
        let a = ix.lookup(
            &n("10-42-2-9.web.default.svc.cluster.local."),
            RecordType::A,
        );
        assert_eq!(ips(&a), vec![ip("10.42.2.9")]);
    }

    #[test]
    fn ipv6_endpoint_hostname() {
        assert_eq!(endpoint_hostname(&ep("fd00::1", None)), "fd00--1");
        assert_eq!(endpoint_hostname(&ep("fd00::", None)), "fd00--0");
        assert_eq!(endpoint_hostname(&ep("10.0.0.1", Some(""))), "10-0-0-1");
    }

    #[test]
    fn slice_updates_and_deletes_change_answers() {
        let mut ix = index();
        ix.apply_slice(slice(
            "default",
            "db-def",
            "db",
            vec![port("pg", "TCP", 5432)],
            vec![],
        ));
        let a = ix.lookup(&n("db.default.svc.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.42.0.5"), ip("10.42.0.6")]);
        ix.delete_slice("default", "db-abc");
        ix.delete_slice("default", "db-def");
        assert_nxdomain(&ix.lookup(&n("db.default.svc.cluster.local."), RecordType::A));
        let none = ix.lookup(&n("5.0.42.10.in-addr.arpa."), RecordType::PTR);
        assert_eq!(none.next, Next::Forward);
        ix.delete_service("default", "web");
        assert_nxdomain(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::A));
        assert_eq!(
            ix.lookup(&n("20.0.43.10.in-addr.arpa."), RecordType::PTR)
                .next,
            Next::Forward
        );
    }

    #[test]
    fn replace_drops_what_the_relist_did_not_return() {
        let mut ix = index();
        ix.replace_services(vec![svc(
            "default",
            "new",
            ServiceKind::ClusterIp(vec![ip("10.43.0.99")]),
            vec![],
        )]);
        assert_nxdomain(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::A));
        let a = ix.lookup(&n("new.default.svc.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.43.0.99")]);
        ix.replace_slices(Vec::new());
        assert_eq!(ix.len().2, 0);
        ix.replace_namespaces(vec!["other".to_string()]);
        assert_nxdomain(&ix.lookup(&n("new.default.svc.cluster.local."), RecordType::A));
    }

    #[test]
    fn external_name_is_a_cname_chased_upstream() {
        let ix = index();
        let a = ix.lookup(&n("ext.default.svc.cluster.local."), RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        match a.answers[0].data() {
            RData::CNAME(c) => assert_eq!(c.0, n("example.com.")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.next,
            Next::Chase {
                target: n("example.com."),
                qtype: RecordType::A
            }
        );
        let a = ix.lookup(&n("ext.default.svc.cluster.local."), RecordType::CNAME);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.next, Next::Done);
        // No SRV for external names.
        assert_nodata(&ix.lookup(&n("ext.default.svc.cluster.local."), RecordType::SRV));
        assert_nxdomain(&ix.lookup(
            &n("_http._tcp.ext.default.svc.cluster.local."),
            RecordType::SRV,
        ));
    }

    #[test]
    fn external_name_inside_the_zone_is_followed() {
        let a = index().lookup(&n("inner.default.svc.cluster.local."), RecordType::A);
        assert_eq!(a.answers.len(), 2);
        assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(a.answers[1].name(), &n("web.default.svc.cluster.local."));
        assert_eq!(ips(&a), vec![ip("10.43.0.20")]);
        assert_eq!(a.next, Next::Done);
    }

    #[test]
    fn external_name_loop_stops() {
        let mut ix = index();
        ix.apply_service(svc(
            "default",
            "l1",
            ServiceKind::ExternalName("l2.default.svc.cluster.local".into()),
            vec![],
        ));
        ix.apply_service(svc(
            "default",
            "l2",
            ServiceKind::ExternalName("l1.default.svc.cluster.local".into()),
            vec![],
        ));
        assert_nodata(&ix.lookup(&n("l1.default.svc.cluster.local."), RecordType::A));
    }

    #[test]
    fn srv_for_cluster_ip_named_port() {
        let a = index().lookup(
            &n("_http._tcp.web.default.svc.cluster.local."),
            RecordType::SRV,
        );
        assert_eq!(a.answers.len(), 1);
        match a.answers[0].data() {
            RData::SRV(s) => {
                assert_eq!((s.priority(), s.weight(), s.port()), (0, 100, 80));
                assert_eq!(s.target(), &n("web.default.svc.cluster.local."));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.additional.len(), 1);
        assert_eq!(a.additional[0].name(), &n("web.default.svc.cluster.local."));
        // Protocol and port names match case-insensitively; UDP port by its own protocol.
        let a = index().lookup(
            &n("_DNS._UDP.web.default.svc.cluster.local."),
            RecordType::SRV,
        );
        assert_eq!(a.answers.len(), 1);
    }

    #[test]
    fn srv_without_port_lists_every_port() {
        let a = index().lookup(&n("web.default.svc.cluster.local."), RecordType::SRV);
        let ports: Vec<u16> = a
            .answers
            .iter()
            .filter_map(|r| match r.data() {
                RData::SRV(s) => Some(s.port()),
                _ => None,
            })
            .collect();
        assert_eq!(ports, vec![80, 53]);
        // One glue record per (target, address).
        assert_eq!(a.additional.len(), 1);
    }

    #[test]
    fn srv_for_headless_targets_each_endpoint() {
        let a = index().lookup(
            &n("_pg._tcp.db.default.svc.cluster.local."),
            RecordType::SRV,
        );
        let targets: Vec<(Name, u16, u16)> = a
            .answers
            .iter()
            .filter_map(|r| match r.data() {
                RData::SRV(s) => Some((s.target().clone(), s.port(), s.weight())),
                _ => None,
            })
            .collect();
        assert_eq!(
            targets,
            vec![
                (n("db-0.db.default.svc.cluster.local."), 5432, 33),
                (n("10-42-0-6.db.default.svc.cluster.local."), 5432, 33),
                (n("10-42-1-7.db.default.svc.cluster.local."), 5432, 33),
            ]
        );
        let glue: Vec<(Name, IpAddr)> = a
            .additional
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(x) => Some((r.name().clone(), IpAddr::V4(x.0))),
                _ => None,
            })
            .collect();
        assert_eq!(
            glue[0],
            (n("db-0.db.default.svc.cluster.local."), ip("10.42.0.5"))
        );
        assert_eq!(glue.len(), 3);
        assert_nxdomain(&index().lookup(
            &n("_http._tcp.db.default.svc.cluster.local."),
            RecordType::SRV,
        ));
    }

    #[test]
    fn service_without_ports_has_addresses_but_no_srv() {
        let mut ix = index();
        ix.apply_service(svc(
            "default",
            "bare",
            ServiceKind::ClusterIp(vec![ip("10.43.0.50")]),
            vec![],
        ));
        assert_eq!(
            ips(&ix.lookup(&n("bare.default.svc.cluster.local."), RecordType::A)),
            vec![ip("10.43.0.50")]
        );
        assert_nodata(&ix.lookup(&n("bare.default.svc.cluster.local."), RecordType::SRV));
    }

    #[test]
    fn pod_names_answer_from_the_name() {
        let ix = index();
        let a = ix.lookup(&n("10-42-0-9.default.pod.cluster.local."), RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.42.0.9")]);
        assert_nodata(&ix.lookup(&n("10-42-0-9.default.pod.cluster.local."), RecordType::AAAA));
        let a = ix.lookup(&n("fd00--9.default.pod.cluster.local."), RecordType::AAAA);
        assert_eq!(
            ips(&a),
            vec![IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9))]
        );
        assert_nxdomain(&ix.lookup(&n("10-42-0-9.nope.pod.cluster.local."), RecordType::A));
        assert_nxdomain(&ix.lookup(&n("300-1-1-1.default.pod.cluster.local."), RecordType::A));
    }

    #[test]
    fn ptr_for_cluster_ips_and_endpoints() {
        let ix = index();
        let a = ix.lookup(&n("20.0.43.10.in-addr.arpa."), RecordType::PTR);
        assert_eq!(a.rcode, ResponseCode::NoError);
        match a.answers[0].data() {
            RData::PTR(p) => assert_eq!(p.0, n("web.default.svc.cluster.local.")),
            other => panic!("{other:?}"),
        }
        let a = ix.lookup(&n("5.0.42.10.in-addr.arpa."), RecordType::PTR);
        match a.answers[0].data() {
            RData::PTR(p) => assert_eq!(p.0, n("db-0.db.default.svc.cluster.local.")),
            other => panic!("{other:?}"),
        }
        let a = ix.lookup(&n("7.1.42.10.IN-ADDR.ARPA."), RecordType::PTR);
        match a.answers[0].data() {
            RData::PTR(p) => assert_eq!(p.0, n("10-42-1-7.db.default.svc.cluster.local.")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reverse_misses_fall_through_to_forward() {
        let ix = index();
        for (name, t) in [
            ("1.1.168.192.in-addr.arpa.", RecordType::PTR),
            ("10.in-addr.arpa.", RecordType::PTR),
            ("20.0.43.10.in-addr.arpa.", RecordType::A),
            (
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
                RecordType::PTR,
            ),
        ] {
            let a = ix.lookup(&n(name), t);
            assert_eq!(a.next, Next::Forward, "{name}");
            assert_eq!(a.rcode, ResponseCode::ServFail);
        }
    }

    #[test]
    fn ipv6_ptr() {
        let mut ix = index();
        ix.apply_service(svc(
            "default",
            "v6",
            ServiceKind::ClusterIp(vec![ip("fd00:43::a")]),
            vec![],
        ));
        let a = ix.lookup(
            &n("a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa."),
            RecordType::PTR,
        );
        match a.answers[0].data() {
            RData::PTR(p) => assert_eq!(p.0, n("v6.default.svc.cluster.local.")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outside_names_forward_and_zone_transfers_are_refused() {
        let ix = index();
        let a = ix.lookup(&n("example.com."), RecordType::A);
        assert_eq!(a.next, Next::Forward);
        let a = ix.lookup(&n("local."), RecordType::A);
        assert_eq!(a.next, Next::Forward);
        let a = ix.lookup(&n("cluster.local."), RecordType::AXFR);
        assert_eq!((a.rcode, a.next), (ResponseCode::Refused, Next::Done));
    }

    #[test]
    fn unsynced_index_answers_servfail_for_missing_names() {
        let mut ix = DnsIndex::new("cluster.local", 30).unwrap();
        ix.apply_namespace("default");
        ix.apply_service(svc(
            "default",
            "web",
            ServiceKind::ClusterIp(vec![ip("10.43.0.20")]),
            vec![],
        ));
        ix.set_synced(Resource::Services);
        assert!(!ix.is_synced());
        let a = ix.lookup(&n("nope.default.svc.cluster.local."), RecordType::A);
        assert_eq!(a.rcode, ResponseCode::ServFail);
        assert_eq!(a.authority.len(), 1);
        // What is known is still answered.
        assert_eq!(
            ips(&ix.lookup(&n("web.default.svc.cluster.local."), RecordType::A)),
            vec![ip("10.43.0.20")]
        );
    }

    #[test]
    fn custom_domain_and_bad_domain() {
        let ix = DnsIndex::new("Corp.Example", 5);
        let mut ix = ix.unwrap();
        ix.apply_namespace("default");
        ix.apply_service(svc(
            "default",
            "web",
            ServiceKind::ClusterIp(vec![IpAddr::V4(Ipv4Addr::new(10, 43, 0, 1))]),
            vec![],
        ));
        let a = ix.lookup(&n("web.default.svc.corp.example."), RecordType::A);
        assert_eq!(a.answers[0].ttl(), 5);
        assert_eq!(
            ix.lookup(&n("web.default.svc.cluster.local."), RecordType::A)
                .next,
            Next::Forward
        );
        assert!(matches!(
            DnsIndex::new("", 30),
            Err(DnsError::Domain { .. })
        ));
        assert!(matches!(
            DnsIndex::new("bad..name", 30),
            Err(DnsError::Domain { .. })
        ));
    }

    #[test]
    fn parse_request_shapes() {
        let l = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        let r = parse_request(&l("_http._tcp.web.default.svc")).unwrap();
        assert_eq!(
            (r.port.as_str(), r.protocol.as_str(), r.service.as_str()),
            ("http", "tcp", "web")
        );
        let r = parse_request(&l("ep.web.default.svc")).unwrap();
        assert_eq!(r.endpoint, "ep");
        assert_eq!(parse_request(&l("a.b.c.web.default.svc")), Err(NameError));
        assert_eq!(parse_request(&l("web.default.foo")), Err(NameError));
        assert_eq!(parse_request(&l("svc")).unwrap(), Request::default());
    }
}
