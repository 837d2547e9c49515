//! Forwarding of names outside the cluster zones to the resolvers of a resolv.conf (what
//! k3s's `forward . /etc/resolv.conf` does): the [`Upstream`] trait the server talks to,
//! and [`Forwarder`], its UDP/TCP implementation that relays the client's query bytes.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

use super::DnsError;

/// Why a forwarded query got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("encode the upstream query: {0}")]
    Encode(#[source] hickory_proto::ProtoError),
    #[error("decode the upstream answer: {0}")]
    Decode(#[source] hickory_proto::ProtoError),
    #[error("bind a socket for {server}: {source}")]
    Bind {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connect to {server}: {source}")]
    Connect {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("send to {server}: {source}")]
    Send {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("receive from {server}: {source}")]
    Receive {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {server} in time")]
    Timeout { server: SocketAddr },
    #[error("query of {0} bytes too long for tcp")]
    TooLong(usize),
    #[error("no upstream answered")]
    AllFailed,
}

/// Where queries for names the index does not own go.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// Sends the client's wire-format query and returns the wire-format answer (same ID).
    async fn exchange(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError>;
}

/// Builds a recursive query for (name, type) with a random ID, as used to chase CNAMEs.
pub fn query_message(name: &Name, qtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(random_u16())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), qtype));
    m
}

/// Resolves (name, type) upstream: UDP first, TCP when the answer is truncated.
pub async fn resolve(
    upstream: &dyn Upstream,
    name: &Name,
    qtype: RecordType,
) -> Result<Message, ForwardError> {
    let q = query_message(name, qtype);
    let bytes = q.to_vec().map_err(ForwardError::Encode)?;
    let mut answer = Message::from_vec(&upstream.exchange(&bytes, false).await?)
        .map_err(ForwardError::Decode)?;
    if answer.truncated() {
        answer = Message::from_vec(&upstream.exchange(&bytes, true).await?)
            .map_err(ForwardError::Decode)?;
    }
    Ok(answer)
}

fn random_u16() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() as u16
}

/// The `nameserver` addresses of a resolv.conf text, in order.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let addr = words.next()?;
            // Drop an IPv6 zone (`fe80::1%eth0`): std cannot carry it in an IpAddr.
            addr.split('%').next()?.parse().ok()
        })
        .collect()
}

/// Whether forwarding to `server` would reach this server listening on `own` (an
/// unspecified listen address answers on every loopback address too).
fn loops_back(server: SocketAddr, own: SocketAddr) -> bool {
    server.port() == own.port()
        && (server.ip() == own.ip() || (own.ip().is_unspecified() && server.ip().is_loopback()))
}

/// Relays queries to a list of DNS servers, rotating the first one tried.
#[derive(Debug)]
pub struct Forwarder {
    servers: Vec<SocketAddr>,
    /// Wait for one server before trying the next.
    attempt: Duration,
    /// Give up on a query after this long in all.
    total: Duration,
    next: AtomicUsize,
}

impl Forwarder {
    /// Forwards to `servers` (2 s a server, 5 s a query, as CoreDNS forward).
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Forwarder {
            servers,
            attempt: Duration::from_secs(2),
            total: Duration::from_secs(5),
            next: AtomicUsize::new(0),
        }
    }

    /// Changes the per-server and per-query time limits.
    pub fn with_timeouts(mut self, attempt: Duration, total: Duration) -> Self {
        self.attempt = attempt;
        self.total = total;
        self
    }

    /// The servers of the resolv.conf at `path` on port 53, less `exclude` (this server's
    /// own listen addresses: forwarding to itself would loop).
    pub fn from_resolv_conf(path: &Path, exclude: &[SocketAddr]) -> Result<Self, DnsError> {
        let text = std::fs::read_to_string(path).map_err(|source| DnsError::ReadResolvConf {
            path: path.to_path_buf(),
            source,
        })?;
        let servers: Vec<SocketAddr> = parse_resolv_conf(&text)
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .filter(|s| !exclude.iter().any(|own| loops_back(*s, *own)))
            .collect();
        if servers.is_empty() {
            return Err(DnsError::NoNameservers {
                path: path.to_path_buf(),
            });
        }
        Ok(Forwarder::new(servers))
    }

    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    async fn udp(
        &self,
        server: SocketAddr,
        query: &[u8],
        id: u16,
    ) -> Result<Vec<u8>, ForwardError> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|source| ForwardError::Bind { server, source })?;
        sock.connect(server)
            .await
            .map_err(|source| ForwardError::Connect { server, source })?;
        sock.send(query)
            .await
            .map_err(|source| ForwardError::Send { server, source })?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|source| ForwardError::Receive { server, source })?;
            // Ignore datagrams that do not answer this query.
            if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id && buf[2] & 0x80 != 0 {
                buf.truncate(n);
                return Ok(buf);
            }
        }
    }

    async fn tcp(&self, server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        let len = u16::try_from(query.len()).map_err(|_| ForwardError::TooLong(query.len()))?;
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|source| ForwardError::Connect { server, source })?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream
            .write_all(&framed)
            .await
            .map_err(|source| ForwardError::Send { server, source })?;
        let n = stream
            .read_u16()
            .await
            .map_err(|source| ForwardError::Receive { server, source })?;
        let mut buf = vec![0u8; usize::from(n)];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|source| ForwardError::Receive { server, source })?;
        Ok(buf)
    }
}

#[async_trait]
impl Upstream for Forwarder {
    async fn exchange(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        if self.servers.is_empty() || query.len() < 12 {
            return Err(ForwardError::AllFailed);
        }
        let id = u16::from_be_bytes([query[0], query[1]]);
        let deadline = Instant::now() + self.total;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.servers.len() {
            let server = self.servers[(start + i) % self.servers.len()];
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let limit = self.attempt.min(left);
            let result = if tcp {
                timeout(limit, self.tcp(server, query)).await
            } else {
                timeout(limit, self.udp(server, query, id)).await
            };
            match result {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => tracing::debug!(error = %e, "dns forward failed"),
                Err(_) => tracing::debug!(%server, "dns forward timed out"),
            }
        }
        Err(ForwardError::AllFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# comment\nsearch example.com\nnameserver 192.168.1.1\n\
                    nameserver  fe80::1%eth0 # zone\nnameserver bogus\n;nameserver 9.9.9.9\n\
                    options ndots:5\nnameserver 2001:db8::53\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.168.1.1".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn resolv_conf_file_errors() {
        let dir = std::env::temp_dir().join(format!("dns-fwd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "nameserver 127.0.0.1\n").unwrap();
        let own: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert!(matches!(
            Forwarder::from_resolv_conf(&path, &[own]),
            Err(DnsError::NoNameservers { .. })
        ));
        let any: SocketAddr = "0.0.0.0:53".parse().unwrap();
        assert!(Forwarder::from_resolv_conf(&path, &[any]).is_err());
        let other: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let f = Forwarder::from_resolv_conf(&path, &[other]).unwrap();
        assert_eq!(f.servers(), &[own]);
        assert!(matches!(
            Forwarder::from_resolv_conf(&dir.join("missing"), &[]),
            Err(DnsError::ReadResolvConf { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A one-shot upstream on loopback answering every query with 192.0.2.1.
    async fn fake_upstream(sock: UdpSocket) {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_response_code(ResponseCode::NoError)
                .add_queries(q.queries().to_vec());
            if let Some(query) = q.query() {
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A::new(192, 0, 2, 1)),
                ));
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    }

    #[tokio::test]
    async fn forwards_over_udp_and_skips_dead_servers() {
        let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let up_addr = up.local_addr().unwrap();
        let task = tokio::spawn(fake_upstream(up));
        // A bound socket that never answers stands for a dead server.
        let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let f = Forwarder::new(vec![dead.local_addr().unwrap(), up_addr])
            .with_timeouts(Duration::from_millis(200), Duration::from_secs(2));
        let answer = resolve(
            &f,
            &Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        )
        .await
        .unwrap();
        assert_eq!(answer.answers().len(), 1);
        // Both servers dead: an error within the total limit.
        let f = Forwarder::new(vec![dead.local_addr().unwrap()])
            .with_timeouts(Duration::from_millis(100), Duration::from_millis(300));
        let err = resolve(
            &f,
            &Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        )
        .await;
        assert!(matches!(err, Err(ForwardError::AllFailed)));
        task.abort();
    }
}
