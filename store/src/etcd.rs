//! etcd v3 backend over `etcd-client`.
//!
//! Writes are single-key transactions: create compares `create_revision == 0`, update
//! compares `mod_revision == expected` and reads the key back on failure so the caller
//! gets the current value, delete likewise. Lists are ranges `[max(prefix, start), prefix+1)`.
//! Watches start at `after + 1` with `prev_kv`; a compaction cancel becomes
//! `Err(Compacted)`.
//!
//! etcd keeps its compaction revision to itself, so [`EtcdBackend::compacted_revision`]
//! remembers what it has seen (own compactions, compaction errors) and otherwise finds it
//! by bisecting with cheap `count_only` ranges, which fail below the compaction revision.

use crate::{Backend, Event, KeyValue, ListOptions, ListResult, Result, StoreError, WatchStream};
use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const WATCH_CAPACITY: usize = 1024;

/// Backend talking to an etcd cluster.
pub struct EtcdBackend {
    client: Client,
    /// Highest compaction revision seen so far.
    compacted: AtomicI64,
}

/// Split `http://h:p[,http://h2:p2]` into `h:p` endpoints (etcd-client adds the scheme).
pub fn parse_endpoints(s: &str) -> Result<Vec<String>> {
    let eps: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            if let Some(rest) = e.strip_prefix("https://") {
                return Err(StoreError::Unavailable(format!(
                    "etcd endpoint {rest}: tls is not supported"
                )));
            }
            Ok(e.strip_prefix("http://")
                .unwrap_or(e)
                .trim_end_matches('/')
                .to_string())
        })
        .collect::<Result<_>>()?;
    if eps.is_empty() {
        return Err(StoreError::Unavailable("no etcd endpoints given".into()));
    }
    Ok(eps)
}

fn map_err(e: etcd_client::Error) -> StoreError {
    match &e {
        etcd_client::Error::GRpcStatus(status) => {
            let msg = status.message();
            if msg.contains("required revision has been compacted") {
                StoreError::Compacted { compacted: 0 }
            } else if msg.contains("required revision is a future revision") {
                StoreError::FutureRevision { current: 0 }
            } else {
                match status.code() as i32 {
                    tonic_code::UNAVAILABLE | tonic_code::DEADLINE_EXCEEDED => {
                        StoreError::Unavailable(format!("etcd: {msg}"))
                    }
                    _ => StoreError::Internal(format!("etcd: {msg}")),
                }
            }
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            StoreError::Unavailable(format!("etcd: {e}"))
        }
        _ => StoreError::Internal(format!("etcd: {e}")),
    }
}

/// The gRPC codes we care about, matched by their numeric value to avoid a direct
/// dependency on tonic.
mod tonic_code {
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const UNAVAILABLE: i32 = 14;
}

fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|_| StoreError::Internal("etcd key is not utf-8".into()))?
            .to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_rev(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map(|h| h.revision()).unwrap_or(0)
}

fn prefix_end(prefix: &str) -> Vec<u8> {
    crate::fanout::prefix_end(prefix).unwrap_or_else(|| vec![0])
}

fn range_start(prefix: &str) -> Vec<u8> {
    if prefix.is_empty() {
        vec![0]
    } else {
        prefix.as_bytes().to_vec()
    }
}

impl EtcdBackend {
    /// Connect to etcd `endpoints` (`host:port`, an `http://` scheme is accepted) and check
    /// that the cluster answers; fails with `Unavailable` within a few seconds if not.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let eps: Vec<String> = endpoints
            .iter()
            .map(|e| parse_endpoints(e))
            .collect::<Result<Vec<_>>>()?
            .concat();
        if eps.is_empty() {
            return Err(StoreError::Unavailable("no etcd endpoints given".into()));
        }
        let opts = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let unavailable = |e: String| {
            StoreError::Unavailable(format!("cannot reach etcd at {}: {e}", eps.join(",")))
        };
        let client = tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(&eps, Some(opts)))
            .await
            .map_err(|_| unavailable("connect timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        // The channel connects lazily; prove the cluster answers.
        let mut kv = client.kv_client();
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            kv.get("/", Some(GetOptions::new().with_count_only())),
        )
        .await
        .map_err(|_| unavailable("no answer".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
        Ok(Self {
            client,
            compacted: AtomicI64::new(0),
        })
    }

    /// The underlying client, for callers needing more than the trait.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn note_compacted(&self, rev: i64) {
        self.compacted.fetch_max(rev, Ordering::AcqRel);
    }

    /// Fill in the revision numbers etcd's errors lack.
    async fn enrich(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Compacted { .. } => match self.find_compacted().await {
                Ok(c) => StoreError::Compacted { compacted: c },
                Err(e) => e,
            },
            StoreError::FutureRevision { .. } => match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { current },
                Err(e) => e,
            },
            e => e,
        }
    }

    /// Does a read at `rev` fail because it was compacted?
    async fn is_compacted(&self, rev: i64) -> Result<bool> {
        let mut kv = self.client.kv_client();
        match kv
            .get(
                "/",
                Some(GetOptions::new().with_count_only().with_revision(rev)),
            )
            .await
            .map_err(map_err)
        {
            Ok(_) => Ok(false),
            Err(StoreError::Compacted { .. }) => Ok(true),
            Err(StoreError::FutureRevision { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Smallest revision that can still be read, by bisection.
    async fn find_compacted(&self) -> Result<i64> {
        let known = self.compacted.load(Ordering::Acquire);
        let current = self.current_revision().await?;
        let mut lo = known.max(1);
        if lo >= current || !self.is_compacted(lo).await? {
            return Ok(known);
        }
        // Invariant: lo is compacted, hi is readable.
        let mut hi = current;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.is_compacted(mid).await? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.note_compacted(hi);
        Ok(hi)
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.client.kv_client().txn(txn).await.map_err(map_err)
    }
}

/// The key read back by the failure branch of a transaction.
fn failed_get(resp: &etcd_client::TxnResponse) -> Result<Option<KeyValue>> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(g) = op {
            return g.kvs().first().map(to_kv).transpose();
        }
    }
    Ok(None)
}

#[async_trait]
impl Backend for EtcdBackend {
    async fn current_revision(&self) -> Result<i64> {
        let resp = self
            .client
            .kv_client()
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(map_err)?;
        Ok(header_rev(resp.header()))
    }

    async fn get(&self, key: &str, revision: i64) -> Result<(Option<KeyValue>, i64)> {
        let opts = GetOptions::new().with_revision(revision);
        match self.client.kv_client().get(key, Some(opts)).await {
            Ok(resp) => {
                let kv = resp.kvs().first().map(to_kv).transpose()?;
                let rev = if revision > 0 {
                    revision
                } else {
                    header_rev(resp.header())
                };
                Ok((kv, rev))
            }
            Err(e) => Err(self.enrich(map_err(e)).await),
        }
    }

    async fn list(&self, opts: &ListOptions) -> Result<ListResult> {
        let start = if opts.start_key.as_str() > opts.prefix.as_str() {
            opts.start_key.as_bytes().to_vec()
        } else {
            range_start(&opts.prefix)
        };
        let mut get = GetOptions::new()
            .with_range(prefix_end(&opts.prefix))
            .with_revision(opts.revision);
        if opts.limit > 0 {
            get = get.with_limit(opts.limit);
        }
        match self.client.kv_client().get(start, Some(get)).await {
            Ok(resp) => Ok(ListResult {
                kvs: resp.kvs().iter().map(to_kv).collect::<Result<_>>()?,
                revision: if opts.revision > 0 {
                    opts.revision
                } else {
                    header_rev(resp.header())
                },
                more: resp.more(),
            }),
            Err(e) => Err(self.enrich(map_err(e)).await),
        }
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let get = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_count_only();
        let resp = self
            .client
            .kv_client()
            .get(range_start(prefix), Some(get))
            .await
            .map_err(map_err)?;
        Ok(resp.count())
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<i64> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None::<PutOptions>)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists);
        }
        Ok(header_rev(resp.header()))
    }

    async fn update(&self, key: &str, value: Bytes, expected_mod_revision: i64) -> Result<i64> {
        if expected_mod_revision <= 0 {
            // `mod_revision == 0` would match a missing key in etcd; no existing key has it.
            return match self.get(key, 0).await?.0 {
                None => Err(StoreError::NotFound),
                current => Err(StoreError::Conflict { current }),
            };
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key,
                CompareOp::Equal,
                expected_mod_revision,
            )])
            .and_then([TxnOp::put(key, value.to_vec(), None::<PutOptions>)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            return Ok(header_rev(resp.header()));
        }
        match failed_get(&resp)? {
            None => Err(StoreError::NotFound),
            current => Err(StoreError::Conflict { current }),
        }
    }

    async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<(i64, KeyValue)> {
        let del = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let txn = if expected_mod_revision == 0 {
            Txn::new().and_then([del])
        } else {
            Txn::new()
                .when([Compare::mod_revision(
                    key,
                    CompareOp::Equal,
                    expected_mod_revision,
                )])
                .and_then([del])
                .or_else([TxnOp::get(key, None)])
        };
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return match failed_get(&resp)? {
                None => Err(StoreError::NotFound),
                current => Err(StoreError::Conflict { current }),
            };
        }
        for op in resp.op_responses() {
            if let TxnOpResponse::Delete(d) = op {
                if let Some(prev) = d.prev_kvs().first() {
                    return Ok((header_rev(resp.header()), to_kv(prev)?));
                }
            }
        }
        Err(StoreError::NotFound)
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        // "From now" is pinned to the current revision so that a write acknowledged
        // before this call returns can never be missed nor replayed.
        let after_revision = if after_revision == 0 {
            self.current_revision().await?
        } else {
            after_revision
        };
        if after_revision > 0 {
            let known = self.compacted.load(Ordering::Acquire);
            if after_revision < known || self.is_compacted(after_revision).await? {
                let compacted = self.find_compacted().await?;
                return Err(StoreError::Compacted { compacted });
            }
        }
        let mut wopts = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_prev_key();
        if after_revision > 0 {
            wopts = wopts.with_start_revision(after_revision + 1);
        }
        let mut stream = self
            .client
            .watch_client()
            .watch(range_start(prefix), Some(wopts))
            .await
            .map_err(map_err)?;
        let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = tx.closed() => return,
                };
                let resp = match msg {
                    Ok(Some(resp)) => resp,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(StoreError::Unavailable("etcd watch closed".into())))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(map_err(e))).await;
                        return;
                    }
                };
                if resp.compact_revision() > 0 {
                    let _ = tx
                        .send(Err(StoreError::Compacted {
                            compacted: resp.compact_revision(),
                        }))
                        .await;
                    return;
                }
                if resp.canceled() {
                    let _ = tx
                        .send(Err(StoreError::Unavailable(format!(
                            "etcd watch canceled: {}",
                            resp.cancel_reason()
                        ))))
                        .await;
                    return;
                }
                let mut batch = Vec::with_capacity(resp.events().len());
                for ev in resp.events() {
                    match convert_event(ev) {
                        Ok(e) => batch.push(e),
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
                if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision { current });
        }
        if revision <= self.compacted.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.client.kv_client().compact(revision, None).await {
            Ok(_) => {}
            Err(e) => match map_err(e) {
                // Already compacted at or past `revision`: nothing to do.
                StoreError::Compacted { .. } => {}
                e => return Err(e),
            },
        }
        self.note_compacted(revision);
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<i64> {
        self.find_compacted().await
    }
}

fn convert_event(ev: &etcd_client::Event) -> Result<Event> {
    let kv = ev
        .kv()
        .ok_or_else(|| StoreError::Internal("etcd event without kv".into()))?;
    let prev = ev.prev_kv().map(to_kv).transpose()?;
    Ok(match ev.event_type() {
        EventType::Put => {
            let kv = to_kv(kv)?;
            if kv.create_revision == kv.mod_revision {
                Event::Create { kv }
            } else {
                Event::Update { kv, prev }
            }
        }
        EventType::Delete => {
            let revision = kv.mod_revision();
            let prev = match prev {
                Some(p) => p,
                None => KeyValue {
                    key: to_kv(kv)?.key,
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: 0,
                },
            };
            Event::Delete { prev, revision }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_parsed() {
        assert_eq!(
            parse_endpoints("http://a:1, http://b:2/").unwrap(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(parse_endpoints("").is_err());
    }

    #[tokio::test]
    async fn unreachable_etcd_fails_fast() {
        let started = std::time::Instant::now();
        let err = EtcdBackend::connect(&["http://127.0.0.1:1".to_string()])
            .await
            .err()
            .expect("connect must fail");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(8));
    }

    #[tokio::test]
    async fn blackholed_etcd_times_out() {
        // TEST-NET-1 (RFC 5737): packets go nowhere, so only the timeouts can end this.
        let started = std::time::Instant::now();
        let err = EtcdBackend::connect(&["http://192.0.2.1:2379".to_string()])
            .await
            .err()
            .expect("connect must fail");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("192.0.2.1:2379"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(8));
    }
}
