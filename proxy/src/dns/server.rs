//! The DNS server: UDP and TCP listeners answering from a shared [`DnsIndex`] (read under a
//! lock held for the lookup only, never across IO), forwarding what the index does not own
//! to an [`Upstream`], truncating UDP answers to the client's size, and rotating address
//! records as k3s's `loadbalance` plugin does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::forward::{resolve, Upstream};
use super::index::{Answer, DnsIndex, Next};
use super::DnsError;

/// The index as the server and the watchers share it.
pub type SharedIndex = Arc<RwLock<DnsIndex>>;

/// Largest UDP answer without EDNS (RFC 1035).
const UDP_MIN: usize = 512;
/// A TCP connection with no query for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Bound UDP sockets and TCP listeners, one pair per listen address on the same port.
#[derive(Debug)]
pub struct Listeners {
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
}

impl Listeners {
    /// Binds UDP and TCP on every address; port 0 picks one free port for both.
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Self, DnsError> {
        if addrs.is_empty() {
            return Err(DnsError::NoListenAddress);
        }
        let mut out = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for addr in addrs {
            let mut tries = if addr.port() == 0 { 10 } else { 1 };
            loop {
                let udp = UdpSocket::bind(addr)
                    .await
                    .map_err(|source| DnsError::BindUdp {
                        addr: *addr,
                        source,
                    })?;
                let actual = udp.local_addr().map_err(|source| DnsError::BindUdp {
                    addr: *addr,
                    source,
                })?;
                match TcpListener::bind(actual).await {
                    Ok(tcp) => {
                        out.udp.push(Arc::new(udp));
                        out.tcp.push(tcp);
                        break;
                    }
                    // The UDP port picked may be taken for TCP: pick another.
                    Err(_) if tries > 1 => tries -= 1,
                    Err(source) => {
                        return Err(DnsError::BindTcp {
                            addr: actual,
                            source,
                        })
                    }
                }
            }
        }
        Ok(out)
    }

    /// The bound addresses (each serves both UDP and TCP).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// Serves DNS on `listeners` from `index` until a listener fails; names the index does not
/// own go to `upstream` (`None`: SERVFAIL, as CoreDNS without a forward plugin).
pub async fn serve(
    index: SharedIndex,
    listeners: Listeners,
    upstream: Option<Arc<dyn Upstream>>,
) -> Result<(), DnsError> {
    let server = Arc::new(Server {
        index,
        upstream,
        rotation: AtomicUsize::new(0),
    });
    let mut tasks = JoinSet::new();
    for sock in listeners.udp {
        tasks.spawn(server.clone().udp_loop(sock));
    }
    for listener in listeners.tcp {
        tasks.spawn(server.clone().tcp_loop(listener));
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(DnsError::ServeTask(e.to_string())),
        }
    }
    Ok(())
}

/// What to do with one received message.
enum Step {
    Reply(Vec<u8>),
    Ignore,
    /// Needs the upstream: forward, or chase a CNAME.
    Upstream(Box<Pending>),
}

struct Pending {
    request: Message,
    answer: Answer,
}

struct Server {
    index: SharedIndex,
    upstream: Option<Arc<dyn Upstream>>,
    rotation: AtomicUsize,
}

impl Server {
    async fn udp_loop(self: Arc<Self>, sock: Arc<UdpSocket>) -> Result<(), DnsError> {
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, peer) = match sock.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!(error = %e, "dns udp receive failed");
                    continue;
                }
            };
            match self.begin(&buf[..n], false) {
                Step::Reply(bytes) => {
                    if let Err(e) = sock.send_to(&bytes, peer).await {
                        tracing::debug!(error = %e, %peer, "dns udp send failed");
                    }
                }
                Step::Ignore => {}
                Step::Upstream(pending) => {
                    let raw = buf[..n].to_vec();
                    let me = self.clone();
                    let sock = sock.clone();
                    tokio::spawn(async move {
                        if let Some(bytes) = me.finish(&raw, *pending, false).await {
                            if let Err(e) = sock.send_to(&bytes, peer).await {
                                tracing::debug!(error = %e, %peer, "dns udp send failed");
                            }
                        }
                    });
                }
            }
        }
    }

    async fn tcp_loop(self: Arc<Self>, listener: TcpListener) -> Result<(), DnsError> {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(self.clone().tcp_conn(stream));
                }
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "dns tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn tcp_conn(self: Arc<Self>, mut stream: TcpStream) {
        loop {
            let Ok(Ok(len)) = timeout(TCP_IDLE, stream.read_u16()).await else {
                return;
            };
            let mut raw = vec![0u8; usize::from(len)];
            if !matches!(
                timeout(TCP_IDLE, stream.read_exact(&mut raw)).await,
                Ok(Ok(_))
            ) {
                return;
            }
            let reply = match self.begin(&raw, true) {
                Step::Reply(bytes) => Some(bytes),
                Step::Ignore => None,
                Step::Upstream(pending) => self.finish(&raw, *pending, true).await,
            };
            if let Some(bytes) = reply {
                let Ok(n) = u16::try_from(bytes.len()) else {
                    return;
                };
                let mut framed = Vec::with_capacity(bytes.len() + 2);
                framed.extend_from_slice(&n.to_be_bytes());
                framed.extend_from_slice(&bytes);
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Decodes, checks and looks up a query; everything that needs no upstream is answered.
    fn begin(&self, raw: &[u8], tcp: bool) -> Step {
        let request = match Message::from_vec(raw) {
            Ok(m) => m,
            Err(_) if raw.len() >= 12 && raw[2] & 0x80 == 0 => {
                let id = u16::from_be_bytes([raw[0], raw[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return m.to_vec().map(Step::Reply).unwrap_or(Step::Ignore);
            }
            Err(_) => return Step::Ignore,
        };
        if request.message_type() != MessageType::Query {
            return Step::Ignore;
        }
        if request.op_code() != OpCode::Query {
            return self.error(&request, ResponseCode::NotImp, tcp);
        }
        let Some(query) = request
            .queries()
            .first()
            .filter(|_| request.queries().len() == 1)
        else {
            return self.error(&request, ResponseCode::FormErr, tcp);
        };
        let answer = self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .lookup(query.name(), query.query_type());
        if answer.next == Next::Done || self.upstream.is_none() {
            return self.reply(&request, answer, tcp);
        }
        Step::Upstream(Box::new(Pending { request, answer }))
    }

    /// Completes a query that needs the upstream.
    async fn finish(&self, raw: &[u8], pending: Pending, tcp: bool) -> Option<Vec<u8>> {
        let Pending {
            request,
            mut answer,
        } = pending;
        let upstream = self.upstream.as_ref()?;
        match answer.next.clone() {
            Next::Forward => match upstream.exchange(raw, tcp).await {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::debug!(error = %e, "dns forward failed");
                    step_bytes(self.error(&request, ResponseCode::ServFail, tcp))
                }
            },
            Next::Chase { target, qtype } => {
                // CoreDNS sends the CNAME alone when the upstream has nothing.
                if let Ok(m) = resolve(upstream.as_ref(), &target, qtype).await {
                    answer.answers.extend(m.answers().iter().cloned());
                }
                answer.next = Next::Done;
                step_bytes(self.reply(&request, answer, tcp))
            }
            Next::Done => step_bytes(self.reply(&request, answer, tcp)),
        }
    }

    fn error(&self, request: &Message, rcode: ResponseCode, tcp: bool) -> Step {
        let answer = Answer {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            next: Next::Done,
        };
        self.reply(request, answer, tcp)
    }

    fn reply(&self, request: &Message, answer: Answer, tcp: bool) -> Step {
        let turn = self.rotation.fetch_add(1, Ordering::Relaxed);
        let response = response_message(request, answer, turn);
        let limit = if tcp {
            usize::from(u16::MAX)
        } else {
            request
                .extensions()
                .as_ref()
                .map(|e| usize::from(e.max_payload()).max(UDP_MIN))
                .unwrap_or(UDP_MIN)
        };
        match encode_limited(response, limit) {
            Ok(bytes) => Step::Reply(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "dns encode failed");
                Step::Ignore
            }
        }
    }
}

fn step_bytes(step: Step) -> Option<Vec<u8>> {
    match step {
        Step::Reply(bytes) => Some(bytes),
        _ => None,
    }
}

/// The response to `request` carrying `answer`; address records are rotated by `turn`.
pub fn response_message(request: &Message, answer: Answer, turn: usize) -> Message {
    let mut m = Message::new();
    m.set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_authoritative(answer.authoritative)
        .set_recursion_desired(request.recursion_desired())
        .set_checking_disabled(request.checking_disabled())
        .set_response_code(answer.rcode)
        .add_queries(request.queries().iter().cloned());
    let mut answers = answer.answers;
    rotate_addresses(&mut answers, turn);
    m.insert_answers(answers);
    m.insert_name_servers(answer.authority);
    m.insert_additionals(answer.additional);
    if let Some(req_edns) = request.extensions() {
        let mut edns = Edns::new();
        edns.set_max_payload(req_edns.max_payload().max(UDP_MIN as u16))
            .set_version(0)
            .set_dnssec_ok(req_edns.flags().dnssec_ok);
        m.set_edns(edns);
    }
    m
}

/// Rotates the A/AAAA records of an answer (after any CNAMEs) by `turn`, so successive
/// answers for a headless Service start with different endpoints.
fn rotate_addresses(records: &mut [Record], turn: usize) {
    let start = records
        .iter()
        .position(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA));
    let Some(start) = start else {
        return;
    };
    let len = records[start..]
        .iter()
        .take_while(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
        .count();
    if len > 1 {
        records[start..start + len].rotate_left(turn % len);
    }
}

/// Encodes `m` in at most `limit` bytes: drops the additional section first, then keeps
/// as many answers as fit and sets TC (RFC 2181 9: TC only when the answer is cut).
pub fn encode_limited(mut m: Message, limit: usize) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let bytes = m.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    m.additionals_mut().clear();
    let bytes = m.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    let answers = m.take_answers();
    m.set_truncated(true);
    // Largest prefix of answers that fits, by bisection.
    let (mut lo, mut hi) = (0usize, answers.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        *m.answers_mut() = answers[..mid].to_vec();
        if m.to_vec()?.len() <= limit {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    *m.answers_mut() = answers[..lo].to_vec();
    let bytes = m.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    // Even the authority does not fit: header and question only.
    m.name_servers_mut().clear();
    m.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::forward::ForwardError;
    use crate::dns::index::{
        EndpointRecord, PortRecord, Resource, ServiceKind, ServiceRecord, SliceRecord,
    };
    use async_trait::async_trait;
    use hickory_client::client::{Client, ClientHandle};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{DNSClass, Name, RData};
    use hickory_proto::runtime::TokioRuntimeProvider;
    use hickory_proto::tcp::TcpClientStream;
    use hickory_proto::udp::UdpClientStream;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Mutex;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// default/web (ClusterIP 10.43.0.20, http/80), default/db (headless, `eps` endpoints),
    /// default/ext (ExternalName example.com), plus `extra` filler services.
    fn test_index(eps: usize, extra: usize) -> SharedIndex {
        let mut ix = DnsIndex::new("cluster.local", 30).unwrap();
        ix.apply_namespace("default");
        ix.apply_service(ServiceRecord {
            namespace: "default".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec!["10.43.0.20".parse().unwrap()]),
            ports: vec![PortRecord {
                name: "http".into(),
                protocol: "TCP".into(),
                port: Some(80),
            }],
        });
        ix.apply_service(ServiceRecord {
            namespace: "default".into(),
            name: "db".into(),
            kind: ServiceKind::Headless,
            ports: vec![],
        });
        ix.apply_slice(SliceRecord {
            namespace: "default".into(),
            name: "db-1".into(),
            service: "db".into(),
            ports: vec![PortRecord {
                name: "pg".into(),
                protocol: "TCP".into(),
                port: Some(5432),
            }],
            endpoints: (0..eps)
                .map(|i| EndpointRecord {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 42, (i / 250) as u8, (i % 250) as u8 + 1)),
                    hostname: None,
                })
                .collect(),
        });
        ix.apply_service(ServiceRecord {
            namespace: "default".into(),
            name: "ext".into(),
            kind: ServiceKind::ExternalName("example.com".into()),
            ports: vec![],
        });
        for i in 0..extra {
            ix.apply_service(ServiceRecord {
                namespace: "default".into(),
                name: format!("svc-{i}"),
                kind: ServiceKind::ClusterIp(vec![IpAddr::V4(Ipv4Addr::new(
                    10,
                    43,
                    (1 + i / 250) as u8,
                    (i % 250) as u8 + 1,
                ))]),
                ports: vec![PortRecord {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: Some(80),
                }],
            });
        }
        ix.set_synced(Resource::Services);
        ix.set_synced(Resource::EndpointSlices);
        ix.set_synced(Resource::Namespaces);
        Arc::new(RwLock::new(ix))
    }

    /// An upstream that records queries and answers A 192.0.2.1 for every name.
    #[derive(Default)]
    struct FakeUpstream {
        seen: Mutex<Vec<(Name, RecordType, bool)>>,
    }

    #[async_trait]
    impl Upstream for FakeUpstream {
        async fn exchange(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
            let q = Message::from_vec(query).map_err(ForwardError::Decode)?;
            let question = q.queries()[0].clone();
            self.seen
                .lock()
                .unwrap()
                .push((question.name().clone(), question.query_type(), tcp));
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true)
                .add_query(question.clone());
            r.add_answer(Record::from_rdata(
                question.name().clone(),
                60,
                RData::A(A::new(192, 0, 2, 1)),
            ));
            r.to_vec().map_err(ForwardError::Encode)
        }
    }

    async fn start(
        index: SharedIndex,
        upstream: Option<Arc<dyn Upstream>>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Result<(), DnsError>>) {
        let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()])
            .await
            .unwrap();
        let addr = listeners.local_addrs()[0];
        let task = tokio::spawn(serve(index, listeners, upstream));
        (addr, task)
    }

    async fn udp_client(addr: SocketAddr) -> Client {
        let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::new()).build();
        let (client, bg) = Client::connect(stream).await.unwrap();
        tokio::spawn(bg);
        client
    }

    async fn tcp_client(addr: SocketAddr) -> Client {
        let (stream, sender) = TcpClientStream::new(addr, None, None, TokioRuntimeProvider::new());
        let (client, bg) = Client::new(stream, sender, None).await.unwrap();
        tokio::spawn(bg);
        client
    }

    fn a_ips(m: &Message) -> Vec<Ipv4Addr> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_over_udp_and_tcp() {
        let (addr, task) = start(test_index(3, 0), None).await;
        let mut udp = udp_client(addr).await;
        let mut tcp = tcp_client(addr).await;
        for client in [&mut udp, &mut tcp] {
            let r = client
                .query(
                    n("web.default.svc.cluster.local."),
                    DNSClass::IN,
                    RecordType::A,
                )
                .await
                .unwrap();
            assert_eq!(r.response_code(), ResponseCode::NoError);
            assert!(r.authoritative());
            assert_eq!(a_ips(&r), vec![Ipv4Addr::new(10, 43, 0, 20)]);

            let r = client
                .query(
                    n("nope.default.svc.cluster.local."),
                    DNSClass::IN,
                    RecordType::A,
                )
                .await
                .unwrap();
            assert_eq!(r.response_code(), ResponseCode::NXDomain);
            assert_eq!(r.name_servers()[0].record_type(), RecordType::SOA);

            let r = client
                .query(
                    n("_http._tcp.web.default.svc.cluster.local."),
                    DNSClass::IN,
                    RecordType::SRV,
                )
                .await
                .unwrap();
            assert_eq!(r.answers().len(), 1);
            assert_eq!(r.additionals().len(), 1);

            let r = client
                .query(n("20.0.43.10.in-addr.arpa."), DNSClass::IN, RecordType::PTR)
                .await
                .unwrap();
            assert_eq!(r.answers().len(), 1);

            // Outside the cluster domain without upstream: SERVFAIL.
            let r = client
                .query(n("example.com."), DNSClass::IN, RecordType::A)
                .await
                .unwrap();
            assert_eq!(r.response_code(), ResponseCode::ServFail);
        }
        task.abort();
    }

    #[tokio::test]
    async fn big_udp_answers_are_truncated_and_whole_over_tcp() {
        let (addr, task) = start(test_index(100, 0), None).await;
        let mut udp = udp_client(addr).await;
        let mut tcp = tcp_client(addr).await;
        let name = n("db.default.svc.cluster.local.");
        // The hickory client sends EDNS with a larger size; a plain 512-byte query:
        let mut q = Message::new();
        q.set_id(7)
            .set_message_type(MessageType::Query)
            .add_query(hickory_proto::op::Query::query(name.clone(), RecordType::A));
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let (len, _) = sock.recv_from(&mut buf).await.unwrap();
        assert!(len <= 512, "{len}");
        let r = Message::from_vec(&buf[..len]).unwrap();
        assert!(r.truncated());
        assert!(!r.answers().is_empty() && r.answers().len() < 100);
        assert_eq!(r.id(), 7);

        let r = tcp
            .query(name.clone(), DNSClass::IN, RecordType::A)
            .await
            .unwrap();
        assert!(!r.truncated());
        assert_eq!(r.answers().len(), 100);
        // Through hickory's UDP client (EDNS) the answer is cut at its advertised size.
        let r = udp.query(name, DNSClass::IN, RecordType::A).await.unwrap();
        assert!(r.truncated());
        let size = r.extensions().as_ref().map(|e| e.max_payload()).unwrap();
        assert!(r.to_vec().unwrap().len() <= usize::from(size));
        assert!(
            r.answers().len() > 30 && r.answers().len() < 100,
            "{}",
            r.answers().len()
        );
        task.abort();
    }

    #[tokio::test]
    async fn forwards_outside_names_and_chases_external_names() {
        let upstream = Arc::new(FakeUpstream::default());
        let (addr, task) = start(test_index(1, 0), Some(upstream.clone())).await;
        let mut udp = udp_client(addr).await;
        let mut tcp = tcp_client(addr).await;
        let r = udp
            .query(n("example.org."), DNSClass::IN, RecordType::A)
            .await
            .unwrap();
        assert_eq!(a_ips(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert!(
            r.recursion_available(),
            "forwarded answers come from upstream as they are"
        );
        let r = tcp
            .query(n("example.org."), DNSClass::IN, RecordType::A)
            .await
            .unwrap();
        assert_eq!(a_ips(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        let r = udp
            .query(
                n("ext.default.svc.cluster.local."),
                DNSClass::IN,
                RecordType::A,
            )
            .await
            .unwrap();
        assert_eq!(r.answers()[0].record_type(), RecordType::CNAME);
        assert_eq!(a_ips(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        // Reverse misses fall through to the upstream too.
        let r = udp
            .query(
                n("1.1.168.192.in-addr.arpa."),
                DNSClass::IN,
                RecordType::PTR,
            )
            .await
            .unwrap();
        assert_eq!(r.response_code(), ResponseCode::NoError);
        let seen = upstream.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                (n("example.org."), RecordType::A, false),
                (n("example.org."), RecordType::A, true),
                (n("example.com."), RecordType::A, false),
                (n("1.1.168.192.in-addr.arpa."), RecordType::PTR, false),
            ]
        );
        task.abort();
    }

    #[tokio::test]
    async fn index_changes_show_at_once() {
        let index = test_index(1, 0);
        let (addr, task) = start(index.clone(), None).await;
        let mut udp = udp_client(addr).await;
        index.write().unwrap().delete_service("default", "web");
        let r = udp
            .query(
                n("web.default.svc.cluster.local."),
                DNSClass::IN,
                RecordType::A,
            )
            .await
            .unwrap();
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        task.abort();
    }

    #[tokio::test]
    async fn malformed_and_unsupported_messages() {
        let (addr, task) = start(test_index(1, 0), None).await;
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = vec![0u8; 4096];
        // Header claiming one question that is missing: FORMERR with the same ID.
        let bad = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        sock.send_to(&bad, addr).await.unwrap();
        let (len, _) = sock.recv_from(&mut buf).await.unwrap();
        let r = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!((r.id(), r.response_code()), (0x1234, ResponseCode::FormErr));
        // NOTIFY is not implemented.
        let mut q = Message::new();
        q.set_id(9)
            .set_op_code(OpCode::Notify)
            .add_query(hickory_proto::op::Query::query(
                n("cluster.local."),
                RecordType::SOA,
            ));
        sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
        let (len, _) = sock.recv_from(&mut buf).await.unwrap();
        let r = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(r.response_code(), ResponseCode::NotImp);
        task.abort();
    }

    #[test]
    fn rotation_moves_addresses_after_cnames() {
        let rec = |ip: [u8; 4]| {
            Record::from_rdata(n("a."), 30, RData::A(A::new(ip[0], ip[1], ip[2], ip[3])))
        };
        let cname = Record::from_rdata(
            n("x."),
            30,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(n("a."))),
        );
        let mut v = vec![
            cname,
            rec([1, 1, 1, 1]),
            rec([2, 2, 2, 2]),
            rec([3, 3, 3, 3]),
        ];
        rotate_addresses(&mut v, 1);
        assert_eq!(v[0].record_type(), RecordType::CNAME);
        assert_eq!(v[1].data(), &RData::A(A::new(2, 2, 2, 2)));
        assert_eq!(v[3].data(), &RData::A(A::new(1, 1, 1, 1)));
    }

    #[test]
    fn encode_limited_drops_additionals_before_answers() {
        let mut m = Message::new();
        m.set_message_type(MessageType::Response);
        for i in 0..10u8 {
            m.add_answer(Record::from_rdata(
                n("a.example."),
                30,
                RData::A(A::new(10, 0, 0, i)),
            ));
            m.add_additional(Record::from_rdata(
                n(&format!("host-{i}.example.")),
                30,
                RData::A(A::new(10, 1, 0, i)),
            ));
        }
        let full = m.to_vec().unwrap().len();
        let no_extra = {
            let mut c = m.clone();
            c.additionals_mut().clear();
            c.to_vec().unwrap().len()
        };
        let out = Message::from_vec(&encode_limited(m.clone(), no_extra).unwrap()).unwrap();
        assert!(!out.truncated());
        assert_eq!((out.answers().len(), out.additionals().len()), (10, 0));
        let out = Message::from_vec(&encode_limited(m.clone(), no_extra - 1).unwrap()).unwrap();
        assert!(out.truncated());
        assert_eq!(out.answers().len(), 9);
        let out = Message::from_vec(&encode_limited(m, full).unwrap()).unwrap();
        assert_eq!(out.additionals().len(), 10);
    }

    /// Not a timed test: prints loopback latency with 1,000 services; run with
    /// `cargo test --lib latency -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn latency_with_1000_services() {
        let (addr, task) = start(test_index(3, 1000), None).await;
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut samples = Vec::new();
        for i in 0..20_000u32 {
            let name = n(&format!("svc-{}.default.svc.cluster.local.", i % 1000));
            let mut q = Message::new();
            q.set_id(i as u16)
                .add_query(hickory_proto::op::Query::query(name, RecordType::A));
            let bytes = q.to_vec().unwrap();
            let t = std::time::Instant::now();
            sock.send(&bytes).await.unwrap();
            let len = sock.recv(&mut buf).await.unwrap();
            let dt = t.elapsed();
            assert!(len > 12);
            if i >= 1000 {
                samples.push(dt);
            }
        }
        samples.sort();
        let p = |q: f64| samples[((samples.len() as f64) * q) as usize];
        println!(
            "udp A with 1000 services: p50 {:?} p99 {:?} max {:?}",
            p(0.50),
            p(0.99),
            samples[samples.len() - 1]
        );
        let ix = test_index(3, 1000);
        let ix = ix.read().unwrap();
        let t = std::time::Instant::now();
        for i in 0..100_000u32 {
            let name = n(&format!("svc-{}.default.svc.cluster.local.", i % 1000));
            let a = ix.lookup(&name, RecordType::A);
            assert_eq!(a.answers.len(), 1);
        }
        println!("lookup alone: {:?} per query", t.elapsed() / 100_000);
        task.abort();
    }
}
