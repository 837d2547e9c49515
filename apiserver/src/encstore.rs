//! Encryption at rest as a storage layer: a `store::Backend` that encrypts the values under
//! the key prefixes of the resources an EncryptionConfiguration covers (the store key is the
//! authenticated data, as upstream) and decrypts them on every read, list and watch, so
//! nothing above it — the watch cache, the registry, raw list streaming — sees ciphertext
//! and the store never holds plaintext for those resources. Also the start-up pass that
//! rewrites values not written with the current key (after a key rotation).

use crate::encryption::{Transformer, Transformers};
use crate::resources;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use store::{Backend, Event, KeyValue, ListOptions, ListResult, StoreError, WatchStream};

/// The encrypting backend.
pub struct EncryptedBackend {
    inner: Arc<dyn Backend>,
    transformers: Arc<Transformers>,
    /// (key prefix, group, resource) of every served resource the config covers.
    rules: Vec<(String, &'static str, &'static str)>,
}

impl EncryptedBackend {
    /// Wraps `inner`; the covered resources are those of the API server's table that the
    /// configuration names (exactly, by `*.<group>` or by `*.*`).
    pub fn new(inner: Arc<dyn Backend>, transformers: Transformers) -> Self {
        let rules = resources::all()
            .iter()
            .filter(|r| transformers.for_resource(r.group, r.plural).is_some())
            .map(|r| (crate::registry::prefix(r, None), r.group, r.plural))
            .collect();
        Self::with_rules(inner, transformers, rules)
    }

    /// Wraps `inner` with explicit prefixes (tests, and the store conformance suite).
    pub fn with_rules(
        inner: Arc<dyn Backend>,
        transformers: Transformers,
        rules: Vec<(String, &'static str, &'static str)>,
    ) -> Self {
        EncryptedBackend {
            inner,
            transformers: Arc::new(transformers),
            rules,
        }
    }

    /// The resources whose values are transformed, as `group/resource`.
    pub fn covered(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|(_, g, r)| format!("{g}/{r}"))
            .collect()
    }

    fn transformer(&self, key: &str) -> Option<&Transformer> {
        Shared::transformer_for(&self.transformers, &self.rules, key)
    }

    fn shared(&self) -> Shared {
        Shared {
            transformers: self.transformers.clone(),
            rules: self.rules.clone(),
        }
    }

    fn encrypt(&self, key: &str, value: Bytes) -> store::Result<Bytes> {
        match self.transformer(key) {
            None => Ok(value),
            Some(t) => t
                .encrypt(&value, key.as_bytes())
                .map(Bytes::from)
                .map_err(|e| StoreError::Internal(format!("encrypting {key}: {e}"))),
        }
    }

    fn decrypt_kv(&self, kv: KeyValue) -> store::Result<KeyValue> {
        self.shared().decrypt_kv(kv).map(|(kv, _)| kv)
    }

    /// Rewrites every covered value that was not written by the first provider's first key
    /// (compare-and-swap at its revision; a concurrent write already re-encrypted it).
    /// Returns how many values were rewritten.
    pub async fn reencrypt_stale(&self) -> store::Result<usize> {
        let mut rewritten = 0;
        for (prefix, _, _) in &self.rules {
            let mut start = String::new();
            loop {
                let page = self
                    .inner
                    .list(&ListOptions {
                        prefix: prefix.clone(),
                        start_key: start.clone(),
                        limit: 500,
                        ..Default::default()
                    })
                    .await?;
                for kv in &page.kvs {
                    let (plain, stale) = self.shared().decrypt_kv(kv.clone())?;
                    if !stale {
                        continue;
                    }
                    let value = self.encrypt(&kv.key, plain.value)?;
                    match self.inner.update(&kv.key, value, kv.mod_revision).await {
                        Ok(_) => rewritten += 1,
                        Err(StoreError::Conflict { .. } | StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                match page.kvs.last() {
                    Some(last) if page.more => start = format!("{}\0", last.key),
                    _ => break,
                }
            }
        }
        Ok(rewritten)
    }
}

/// What a watch forwarding task needs (owned, so it can move into the task).
#[derive(Clone)]
struct Shared {
    transformers: Arc<Transformers>,
    rules: Vec<(String, &'static str, &'static str)>,
}

impl Shared {
    fn transformer_for<'a>(
        transformers: &'a Transformers,
        rules: &[(String, &'static str, &'static str)],
        key: &str,
    ) -> Option<&'a Transformer> {
        rules
            .iter()
            .find(|(p, _, _)| key.starts_with(p.as_str()))
            .and_then(|(_, g, r)| transformers.for_resource(g, r))
    }

    /// The plaintext of a stored value and whether it needs rewriting.
    fn decrypt_kv(&self, mut kv: KeyValue) -> store::Result<(KeyValue, bool)> {
        let Some(t) = Self::transformer_for(&self.transformers, &self.rules, &kv.key) else {
            return Ok((kv, false));
        };
        let (plain, stale) = t
            .decrypt(&kv.value, kv.key.as_bytes())
            .map_err(|e| StoreError::Internal(format!("decrypting {}: {e}", kv.key)))?;
        kv.value = Bytes::from(plain);
        Ok((kv, stale))
    }

    fn decrypt_event(&self, ev: Event) -> store::Result<Event> {
        let d = |kv| self.decrypt_kv(kv).map(|(kv, _)| kv);
        Ok(match ev {
            Event::Create { kv } => Event::Create { kv: d(kv)? },
            Event::Update { kv, prev } => Event::Update {
                kv: d(kv)?,
                prev: prev.map(d).transpose()?,
            },
            Event::Delete { prev, revision } => Event::Delete {
                prev: d(prev)?,
                revision,
            },
        })
    }
}

#[async_trait]
impl Backend for EncryptedBackend {
    async fn current_revision(&self) -> store::Result<i64> {
        self.inner.current_revision().await
    }

    async fn get(&self, key: &str, revision: i64) -> store::Result<(Option<KeyValue>, i64)> {
        let (kv, rev) = self.inner.get(key, revision).await?;
        Ok((kv.map(|kv| self.decrypt_kv(kv)).transpose()?, rev))
    }

    async fn list(&self, opts: &ListOptions) -> store::Result<ListResult> {
        let mut page = self.inner.list(opts).await?;
        page.kvs = std::mem::take(&mut page.kvs)
            .into_iter()
            .map(|kv| self.decrypt_kv(kv))
            .collect::<store::Result<_>>()?;
        Ok(page)
    }

    async fn count(&self, prefix: &str) -> store::Result<i64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes) -> store::Result<i64> {
        let value = self.encrypt(key, value)?;
        self.inner.create(key, value).await
    }

    async fn update(&self, key: &str, value: Bytes, expected: i64) -> store::Result<i64> {
        let value = self.encrypt(key, value)?;
        match self.inner.update(key, value, expected).await {
            Err(StoreError::Conflict { current }) => Err(StoreError::Conflict {
                current: current.map(|kv| self.decrypt_kv(kv)).transpose()?,
            }),
            other => other,
        }
    }

    async fn delete(&self, key: &str, expected: i64) -> store::Result<(i64, KeyValue)> {
        match self.inner.delete(key, expected).await {
            Ok((rev, kv)) => Ok((rev, self.decrypt_kv(kv)?)),
            Err(StoreError::Conflict { current }) => Err(StoreError::Conflict {
                current: current.map(|kv| self.decrypt_kv(kv)).transpose()?,
            }),
            Err(e) => Err(e),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> store::Result<WatchStream> {
        let mut rx = self.inner.watch(prefix, after_revision).await?;
        let shared = self.shared();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let mapped = batch.and_then(|evs| {
                    evs.into_iter()
                        .map(|e| shared.decrypt_event(e))
                        .collect::<store::Result<Vec<_>>>()
                });
                let end = mapped.is_err();
                if tx.send(mapped).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(out)
    }

    async fn compact(&self, revision: i64) -> store::Result<()> {
        self.inner.compact(revision).await
    }

    async fn compacted_revision(&self) -> store::Result<i64> {
        self.inner.compacted_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: ["secrets"]
    providers:
      - aescbc:
          keys:
            - name: k1
              secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=
      - identity: {}
"#;

    fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Backend> {
        Arc::new(store::SqliteBackend::open(&dir.path().join("s.db")).unwrap())
    }

    #[tokio::test]
    async fn secrets_are_ciphertext_below_and_plaintext_above() {
        let dir = tempfile::tempdir().unwrap();
        let raw = sqlite(&dir);
        let enc =
            EncryptedBackend::new(raw.clone(), Transformers::load(CONFIG.as_bytes()).unwrap());
        assert_eq!(enc.covered(), ["/secrets"]);
        let key = "/registry/core/secrets/default/s1";
        let rev = enc
            .create(key, Bytes::from_static(b"{\"data\":\"hunter2\"}"))
            .await
            .unwrap();
        let (below, _) = raw.get(key, 0).await.unwrap();
        let below = below.unwrap().value;
        assert!(below.starts_with(b"k8s:enc:aescbc:v1:k1:"));
        assert!(!below.windows(7).any(|w| w == b"hunter2"));
        let (above, _) = enc.get(key, 0).await.unwrap();
        assert_eq!(&above.unwrap().value[..], b"{\"data\":\"hunter2\"}");
        // Other resources pass through untouched.
        enc.create(
            "/registry/core/configmaps/default/c",
            Bytes::from_static(b"plain"),
        )
        .await
        .unwrap();
        let (cm, _) = raw
            .get("/registry/core/configmaps/default/c", 0)
            .await
            .unwrap();
        assert_eq!(&cm.unwrap().value[..], b"plain");
        // Watches decrypt.
        let mut w = enc.watch("/registry/core/secrets/", rev).await.unwrap();
        enc.update(key, Bytes::from_static(b"v2"), rev)
            .await
            .unwrap();
        let evs = w.recv().await.unwrap().unwrap();
        match &evs[0] {
            Event::Update { kv, prev } => {
                assert_eq!(&kv.value[..], b"v2");
                assert_eq!(&prev.as_ref().unwrap().value[..], b"{\"data\":\"hunter2\"}");
            }
            e => panic!("unexpected {e:?}"),
        }
        // Plaintext written before encryption was enabled is rewritten by the stale pass.
        raw.create(
            "/registry/core/secrets/default/old",
            Bytes::from_static(b"legacy"),
        )
        .await
        .unwrap();
        assert_eq!(enc.reencrypt_stale().await.unwrap(), 1);
        let (old, _) = raw
            .get("/registry/core/secrets/default/old", 0)
            .await
            .unwrap();
        assert!(old.unwrap().value.starts_with(b"k8s:enc:aescbc:v1:k1:"));
        assert_eq!(enc.reencrypt_stale().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn passes_the_store_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CONFIG.replace("[\"secrets\"]", "[\"*.*\"]");
        // Every key the suite writes is covered.
        let enc = EncryptedBackend::with_rules(
            sqlite(&dir),
            Transformers::load(cfg.as_bytes()).unwrap(),
            vec![(String::new(), "", "secrets")],
        );
        store::conformance::run_all(Arc::new(enc)).await;
    }
}
