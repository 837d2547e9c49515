//! Encryption of resources at rest, after upstream's
//! `k8s.io/apiserver/pkg/server/options/encryptionconfig` and
//! `pkg/storage/value/encrypt/{aes,identity,secretbox}`: the `EncryptionConfiguration` file
//! (`apiserver.config.k8s.io/v1`, YAML or JSON), its validation with upstream's messages, the
//! per-resource transformers that turn a stored value into `k8s:enc:<provider>:v1:<key>:<data>`
//! and back, and k3s's `--secrets-encryption` config generation and key rotation.
//!
//! Pure logic: the caller reads the file, passes the store key as authenticated data and
//! decides when to rewrite stale values. Randomness for nonces comes from the OS (ring's
//! `SystemRandom`); key generation takes the RNG as a parameter.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
pub const KIND: &str = "EncryptionConfiguration";

const AESCBC_PREFIX: &str = "k8s:enc:aescbc:v1:";
const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";
const SECRETBOX_PREFIX: &str = "k8s:enc:secretbox:v1:";
/// Reserved for encrypted data on disk; the identity provider refuses to read it.
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// The key name k3s gives the first aescbc key of `--secrets-encryption`.
pub const K3S_KEY_NAME: &str = "aescbckey";

const AES_KEY_SIZES: &[usize] = &[16, 24, 32];
const SECRETBOX_KEY_SIZES: &[usize] = &[32];
const GCM_NONCE_SIZE: usize = 12;
const GCM_TAG_SIZE: usize = 16;
const AES_BLOCK_SIZE: usize = 16;
const SECRETBOX_NONCE_SIZE: usize = 24;
const SECRETBOX_OVERHEAD: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncryptionError {
    /// Decoding or validating the configuration (upstream: `error while parsing file: ...`).
    #[error("error while parsing file: {0}")]
    ParseConfig(String),
    /// A KMS provider is configured: minik8s has no KMS plugin client.
    #[error("could not configure KMS plugin {0:?}: kms providers are not supported by minik8s, use aescbc, aesgcm, secretbox or identity")]
    KmsUnsupported(String),
    /// Building a cipher from a (validated) key.
    #[error("error while creating cipher for named key {0}: {1}")]
    CreateCipher(String, String),
    /// Writing a value to storage.
    #[error("{0}")]
    Encrypt(String),
    /// Reading a value from storage; the message is upstream's (aggregated like
    /// `utilerrors.NewAggregate` when several keys were tried).
    #[error("{0}")]
    Decrypt(String),
    /// `rotate` found no aescbc provider to add a key to.
    #[error("no aescbc provider found in the encryption configuration")]
    RotateNoAescbc,
    /// Serializing the configuration.
    #[error("could not encode encryption configuration: {0}")]
    EncodeConfig(String),
}

// ---------------------------------------------------------------------------------------------
// Configuration types (apiserver.config.k8s.io/v1)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncryptionConfiguration {
    #[serde(default)]
    pub kind: String,
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub resources: Vec<ResourceConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceConfiguration {
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub providers: Vec<ProviderConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfiguration>,
    /// Kept only to refuse it with a clear error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeysConfiguration {
    #[serde(default)]
    pub keys: Vec<Key>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Key {
    #[serde(default)]
    pub name: String,
    /// Base64 (standard, padded) encoding of the raw key.
    #[serde(default)]
    pub secret: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdentityConfiguration {}

impl EncryptionConfiguration {
    /// JSON in the field order Go's `json.Marshal` writes (what k3s writes to disk).
    pub fn to_json(&self) -> Result<String, EncryptionError> {
        serde_json::to_string(self).map_err(|e| EncryptionError::EncodeConfig(e.to_string()))
    }
}

/// Decodes (YAML or JSON) and validates an `EncryptionConfiguration`.
pub fn parse_config(data: &[u8]) -> Result<EncryptionConfiguration, EncryptionError> {
    let bad = |m: String| EncryptionError::ParseConfig(m);
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(bad("encryption provider configuration file is empty".into()));
    }
    let trimmed = data.trim_ascii_start();
    let config: EncryptionConfiguration = if trimmed.starts_with(b"{") {
        serde_json::from_slice(trimmed).map_err(|e| bad(e.to_string()))?
    } else {
        serde_yaml::from_slice(data).map_err(|e| bad(e.to_string()))?
    };
    if config.kind.is_empty() {
        return Err(bad(
            "Object 'Kind' is missing in encryption configuration".into()
        ));
    }
    if config.kind != KIND || config.api_version != API_VERSION {
        return Err(bad(format!(
            "no kind {:?} is registered for version {:?}",
            config.kind, config.api_version
        )));
    }
    let errs = validate(&config);
    if !errs.is_empty() {
        return Err(bad(aggregate(&errs)));
    }
    Ok(config)
}

/// `utilerrors.NewAggregate(...).Error()`: one message alone, several as `[a, b]`, duplicates
/// removed.
fn aggregate(msgs: &[String]) -> String {
    let mut seen: Vec<&String> = Vec::new();
    for m in msgs {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    if seen.len() == 1 {
        return seen[0].clone();
    }
    let joined: Vec<&str> = seen.iter().map(|s| s.as_str()).collect();
    format!("[{}]", joined.join(", "))
}

fn required(path: &str, detail: &str) -> String {
    format!("{path}: Required value: {detail}")
}

fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

/// Go's `%#v` of a `[]string`.
fn go_string_slice(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `schema.ParseGroupResource`: `resource.group` split at the first dot.
fn parse_group_resource(s: &str) -> (String, String) {
    match s.split_once('.') {
        Some((resource, group)) => (group.to_string(), resource.to_string()),
        None => (String::new(), s.to_string()),
    }
}

/// The name upstream prints for a group/resource in masking errors.
fn gr_string(group: &str, resource: &str) -> String {
    if group.is_empty() && resource == "*" {
        "*.".to_string()
    } else if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// `ValidateEncryptionConfiguration` (validation_encryption.go), field errors as strings.
fn validate(c: &EncryptionConfiguration) -> Vec<String> {
    let mut errs = Vec::new();
    if c.resources.is_empty() {
        errs.push(required("resources", "at least one resources is required"));
        return errs;
    }
    for (i, conf) in c.resources.iter().enumerate() {
        let r = format!("resources[{i}].resources");
        let p = format!("resources[{i}].providers");
        if conf.resources.is_empty() {
            errs.push(required(&r, &format!("at least one {r} is required")));
        }
        validate_resource_overlap(&conf.resources, &r, &mut errs);
        validate_resource_names(&conf.resources, &r, &mut errs);
        if conf.providers.is_empty() {
            errs.push(required(&p, &format!("at least one {p} is required")));
        }
        for (j, provider) in conf.providers.iter().enumerate() {
            let path = format!("{p}[{j}]");
            let found = [
                provider.kms.is_some(),
                provider.aesgcm.is_some(),
                provider.aescbc.is_some(),
                provider.secretbox.is_some(),
                provider.identity.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            let shown = serde_json::to_string(provider).unwrap_or_default();
            if found == 0 {
                errs.push(invalid(
                    &path,
                    &shown,
                    "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity",
                ));
            } else if found > 1 {
                errs.push(invalid(
                    &path,
                    &shown,
                    "more than one provider specified in a single element, should split into different list elements",
                ));
            }
            if let Some(k) = &provider.aesgcm {
                validate_keys(
                    &k.keys,
                    &format!("{path}.aesgcm.keys"),
                    AES_KEY_SIZES,
                    &mut errs,
                );
            } else if let Some(k) = &provider.aescbc {
                validate_keys(
                    &k.keys,
                    &format!("{path}.aescbc.keys"),
                    AES_KEY_SIZES,
                    &mut errs,
                );
            } else if let Some(k) = &provider.secretbox {
                validate_keys(
                    &k.keys,
                    &format!("{path}.secretbox.keys"),
                    SECRETBOX_KEY_SIZES,
                    &mut errs,
                );
            }
        }
    }
    errs
}

fn validate_resource_overlap(resources: &[String], path: &str, errs: &mut Vec<String>) {
    if resources.len() < 2 {
        return;
    }
    let grs: Vec<(String, String)> = resources.iter().map(|r| parse_group_resource(r)).collect();
    let (mut has_overlap, mut has_duplicate) = (false, false);
    for (i, r1) in grs.iter().enumerate() {
        for (j, r2) in grs.iter().enumerate() {
            if i == j {
                continue;
            }
            if r1 == r2 && !has_duplicate {
                has_duplicate = true;
                continue;
            }
            if has_overlap {
                continue;
            }
            if r1.0 == "*" && r1.1 == "*" {
                has_overlap = true;
                continue;
            }
            if r1.0 != r2.0 {
                continue;
            }
            if r1.1 == "*" || r2.1 == "*" {
                has_overlap = true;
            }
        }
    }
    let shown = go_string_slice(resources);
    if has_duplicate {
        errs.push(invalid(
            path,
            &shown,
            "the same resource cannot be specified multiple times",
        ));
    }
    if has_overlap {
        errs.push(invalid(
            path,
            &shown,
            "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked",
        ));
    }
}

fn validate_resource_names(resources: &[String], path: &str, errs: &mut Vec<String>) {
    for (j, res) in resources.iter().enumerate() {
        let jj = format!("{path}[{j}]");
        let shown = format!("{res:?}");
        let (group, resource) = parse_group_resource(res);
        let detail = if res.to_lowercase() != *res {
            "resource name should not contain capital letters"
        } else if res == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if matches!(
            res.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            "resources which do not have REST API/s cannot be encrypted"
        } else if group == "events.k8s.io" {
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
        } else if group == "extensions" {
            "'extensions' group has been removed and cannot be used for encryption"
        } else if group == "*" && resource != "*" {
            "encrypting the same resource across groups is not supported"
        } else {
            continue;
        };
        errs.push(invalid(&jj, &shown, detail));
    }
}

fn validate_keys(keys: &[Key], path: &str, sizes: &[usize], errs: &mut Vec<String>) {
    if keys.is_empty() {
        errs.push(required(path, "at least one keys is required"));
        return;
    }
    for (i, key) in keys.iter().enumerate() {
        let kp = format!("{path}[{i}]");
        if key.name.is_empty() {
            errs.push(required(
                &format!("{kp}.name"),
                "name is a mandatory field for a key",
            ));
        }
        if key.secret.is_empty() {
            errs.push(required(
                &format!("{kp}.secret"),
                "secret is a mandatory field for a key",
            ));
            continue;
        }
        match BASE64.decode(&key.secret) {
            Err(_) => errs.push(invalid(
                &format!("{kp}.secret"),
                "\"REDACTED\"",
                "secrets must be base64 encoded",
            )),
            Ok(raw) if !sizes.contains(&raw.len()) => {
                let expected: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
                errs.push(invalid(
                    &format!("{kp}.secret"),
                    "\"REDACTED\"",
                    &format!(
                        "secret is not of the expected length, got {}, expected one of [{}]",
                        raw.len(),
                        expected.join(" ")
                    ),
                ));
            }
            Ok(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ciphers
// ---------------------------------------------------------------------------------------------

enum GcmKey {
    Ring(Box<ring::aead::LessSafeKey>),
    /// ring has no AES-192; upstream accepts 24-byte keys.
    Aes192(Box<aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>>),
}

#[derive(Clone)]
enum CbcKey {
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

enum Cipher {
    Gcm(GcmKey),
    Cbc(CbcKey),
    Secretbox(Box<crypto_secretbox::XSalsa20Poly1305>),
}

struct NamedKey {
    name: String,
    /// `<name>:`
    prefix: Vec<u8>,
    cipher: Cipher,
}

enum Provider {
    Identity,
    Keyed {
        /// `k8s:enc:<provider>:v1:`
        prefix: &'static str,
        /// Upstream's error when no key name matches.
        no_key_err: &'static str,
        keys: Vec<NamedKey>,
    },
}

/// The ordered providers for one group/resource: the first writes, all read.
pub struct Transformer {
    providers: Vec<Provider>,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .providers
            .iter()
            .map(|p| match p {
                Provider::Identity => "identity".to_string(),
                Provider::Keyed { prefix, keys, .. } => {
                    let k: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
                    format!("{prefix}[{}]", k.join(","))
                }
            })
            .collect();
        f.debug_struct("Transformer")
            .field("providers", &names)
            .finish()
    }
}

fn random_bytes(buf: &mut [u8]) -> Result<(), EncryptionError> {
    use ring::rand::SecureRandom as _;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| EncryptionError::Encrypt("unable to read sufficient random bytes".into()))
}

fn build_cipher(kind: &str, name: &str, raw: &[u8]) -> Result<Cipher, EncryptionError> {
    let cipher_err = |m: &str| EncryptionError::CreateCipher(name.to_string(), m.to_string());
    let aes_size_err = || cipher_err(&format!("crypto/aes: invalid key size {}", raw.len()));
    match kind {
        "aesgcm" => {
            use aes_gcm::KeyInit as _;
            let key = match raw.len() {
                16 | 32 => {
                    let alg = if raw.len() == 16 {
                        &ring::aead::AES_128_GCM
                    } else {
                        &ring::aead::AES_256_GCM
                    };
                    let unbound =
                        ring::aead::UnboundKey::new(alg, raw).map_err(|_| aes_size_err())?;
                    GcmKey::Ring(Box::new(ring::aead::LessSafeKey::new(unbound)))
                }
                24 => GcmKey::Aes192(Box::new(
                    aes_gcm::AesGcm::new_from_slice(raw).map_err(|_| aes_size_err())?,
                )),
                _ => return Err(aes_size_err()),
            };
            Ok(Cipher::Gcm(key))
        }
        "aescbc" => {
            let key = match raw.len() {
                16 => CbcKey::Aes128(raw.try_into().map_err(|_| aes_size_err())?),
                24 => CbcKey::Aes192(raw.try_into().map_err(|_| aes_size_err())?),
                32 => CbcKey::Aes256(raw.try_into().map_err(|_| aes_size_err())?),
                _ => return Err(aes_size_err()),
            };
            Ok(Cipher::Cbc(key))
        }
        _ => {
            use crypto_secretbox::KeyInit as _;
            if raw.len() != 32 {
                return Err(cipher_err(&format!(
                    "expected key size 32 for secretbox provider, got {}",
                    raw.len()
                )));
            }
            let c = crypto_secretbox::XSalsa20Poly1305::new_from_slice(raw)
                .map_err(|_| cipher_err("invalid key length"))?;
            Ok(Cipher::Secretbox(Box::new(c)))
        }
    }
}

macro_rules! cbc_encrypt {
    ($aes:ty, $key:expr, $iv:expr, $buf:expr, $len:expr) => {{
        use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut as _, KeyIvInit as _};
        cbc::Encryptor::<$aes>::new($key.into(), $iv.into())
            .encrypt_padded_mut::<NoPadding>($buf, $len)
            .map(|_| ())
            .map_err(|_| EncryptionError::Encrypt("invalid aes-cbc block size".into()))
    }};
}

macro_rules! cbc_decrypt {
    ($aes:ty, $key:expr, $iv:expr, $buf:expr) => {{
        use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut as _, KeyIvInit as _};
        cbc::Decryptor::<$aes>::new($key.into(), $iv.into())
            .decrypt_padded_mut::<NoPadding>($buf)
            .map(|_| ())
            .map_err(|_| {
                EncryptionError::Decrypt(
                    "the stored data is not a multiple of the block size".into(),
                )
            })
    }};
}

impl Cipher {
    /// The provider payload after `k8s:enc:<provider>:v1:<key>:`.
    fn seal(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        match self {
            Cipher::Gcm(key) => {
                let mut nonce = [0u8; GCM_NONCE_SIZE];
                random_bytes(&mut nonce)?;
                let mut out = Vec::with_capacity(GCM_NONCE_SIZE + plaintext.len() + GCM_TAG_SIZE);
                out.extend_from_slice(&nonce);
                match key {
                    GcmKey::Ring(k) => {
                        let mut body = plaintext.to_vec();
                        k.seal_in_place_append_tag(
                            ring::aead::Nonce::assume_unique_for_key(nonce),
                            ring::aead::Aad::from(ad),
                            &mut body,
                        )
                        .map_err(|_| EncryptionError::Encrypt("aes-gcm seal failed".into()))?;
                        out.extend_from_slice(&body);
                    }
                    GcmKey::Aes192(k) => {
                        use aes_gcm::aead::{Aead as _, Payload};
                        let body = k
                            .encrypt(
                                (&nonce).into(),
                                Payload {
                                    msg: plaintext,
                                    aad: ad,
                                },
                            )
                            .map_err(|_| EncryptionError::Encrypt("aes-gcm seal failed".into()))?;
                        out.extend_from_slice(&body);
                    }
                }
                Ok(out)
            }
            Cipher::Cbc(key) => {
                let mut iv = [0u8; AES_BLOCK_SIZE];
                random_bytes(&mut iv).map_err(|_| {
                    EncryptionError::Encrypt("unable to read sufficient random bytes".into())
                })?;
                let padding = AES_BLOCK_SIZE - plaintext.len() % AES_BLOCK_SIZE;
                let mut body = Vec::with_capacity(plaintext.len() + padding);
                body.extend_from_slice(plaintext);
                body.resize(plaintext.len() + padding, padding as u8);
                let len = body.len();
                match key {
                    CbcKey::Aes128(k) => cbc_encrypt!(aes::Aes128, k, &iv, &mut body, len)?,
                    CbcKey::Aes192(k) => cbc_encrypt!(aes::Aes192, k, &iv, &mut body, len)?,
                    CbcKey::Aes256(k) => cbc_encrypt!(aes::Aes256, k, &iv, &mut body, len)?,
                }
                let mut out = iv.to_vec();
                out.extend_from_slice(&body);
                Ok(out)
            }
            Cipher::Secretbox(c) => {
                use crypto_secretbox::aead::Aead as _;
                let mut nonce = [0u8; SECRETBOX_NONCE_SIZE];
                random_bytes(&mut nonce)?;
                let sealed = c
                    .encrypt((&nonce).into(), plaintext)
                    .map_err(|_| EncryptionError::Encrypt("secretbox seal failed".into()))?;
                let mut out = nonce.to_vec();
                out.extend_from_slice(&sealed);
                Ok(out)
            }
        }
    }

    fn open(&self, data: &[u8], ad: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        let short = || {
            EncryptionError::Decrypt("the stored data was shorter than the required size".into())
        };
        match self {
            Cipher::Gcm(key) => {
                if data.len() < GCM_NONCE_SIZE {
                    return Err(short());
                }
                let (nonce, body) = data.split_at(GCM_NONCE_SIZE);
                let auth_failed =
                    || EncryptionError::Decrypt("cipher: message authentication failed".into());
                let mut nonce_arr = [0u8; GCM_NONCE_SIZE];
                nonce_arr.copy_from_slice(nonce);
                match key {
                    GcmKey::Ring(k) => {
                        let mut buf = body.to_vec();
                        let plain = k
                            .open_in_place(
                                ring::aead::Nonce::assume_unique_for_key(nonce_arr),
                                ring::aead::Aad::from(ad),
                                &mut buf,
                            )
                            .map_err(|_| auth_failed())?;
                        let n = plain.len();
                        buf.truncate(n);
                        Ok(buf)
                    }
                    GcmKey::Aes192(k) => {
                        use aes_gcm::aead::{Aead as _, Payload};
                        k.decrypt((&nonce_arr).into(), Payload { msg: body, aad: ad })
                            .map_err(|_| auth_failed())
                    }
                }
            }
            Cipher::Cbc(key) => {
                if data.len() < AES_BLOCK_SIZE {
                    return Err(short());
                }
                let (iv, body) = data.split_at(AES_BLOCK_SIZE);
                if body.len() % AES_BLOCK_SIZE != 0 {
                    return Err(EncryptionError::Decrypt(
                        "the stored data is not a multiple of the block size".into(),
                    ));
                }
                let mut buf = body.to_vec();
                match key {
                    CbcKey::Aes128(k) => cbc_decrypt!(aes::Aes128, k, iv, &mut buf)?,
                    CbcKey::Aes192(k) => cbc_decrypt!(aes::Aes192, k, iv, &mut buf)?,
                    CbcKey::Aes256(k) => cbc_decrypt!(aes::Aes256, k, iv, &mut buf)?,
                }
                // Remove and verify PKCS#7 padding.
                let c = buf.last().copied().unwrap_or(0);
                let padding = c as usize;
                if padding == 0 || padding > buf.len() {
                    return Err(EncryptionError::Decrypt(
                        "invalid PKCS7 data (empty or not padded)".into(),
                    ));
                }
                let size = buf.len() - padding;
                if buf[size..].iter().any(|b| *b != c) {
                    return Err(EncryptionError::Decrypt("invalid padding on input".into()));
                }
                buf.truncate(size);
                Ok(buf)
            }
            Cipher::Secretbox(c) => {
                use crypto_secretbox::aead::Aead as _;
                if data.len() < SECRETBOX_OVERHEAD + SECRETBOX_NONCE_SIZE {
                    return Err(short());
                }
                let (nonce, body) = data.split_at(SECRETBOX_NONCE_SIZE);
                let mut nonce_arr = [0u8; SECRETBOX_NONCE_SIZE];
                nonce_arr.copy_from_slice(nonce);
                c.decrypt((&nonce_arr).into(), body).map_err(|_| {
                    EncryptionError::Decrypt(
                        "output array was not large enough for encryption".into(),
                    )
                })
            }
        }
    }
}

impl Transformer {
    fn from_providers(providers: &[ProviderConfiguration]) -> Result<Transformer, EncryptionError> {
        let mut out = Vec::with_capacity(providers.len());
        for p in providers {
            let (kind, prefix, no_key_err, keys) = if let Some(k) = &p.aesgcm {
                (
                    "aesgcm",
                    AESGCM_PREFIX,
                    "no matching key was found for the provided AES transformer",
                    &k.keys,
                )
            } else if let Some(k) = &p.aescbc {
                (
                    "aescbc",
                    AESCBC_PREFIX,
                    "no matching key was found for the provided AES transformer",
                    &k.keys,
                )
            } else if let Some(k) = &p.secretbox {
                (
                    "secretbox",
                    SECRETBOX_PREFIX,
                    "no matching key was found for the provided Secretbox transformer",
                    &k.keys,
                )
            } else if p.identity.is_some() {
                out.push(Provider::Identity);
                continue;
            } else if let Some(kms) = &p.kms {
                let name = kms
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string();
                return Err(EncryptionError::KmsUnsupported(name));
            } else {
                return Err(EncryptionError::ParseConfig(
                    "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity".into(),
                ));
            };
            let mut named = Vec::with_capacity(keys.len());
            for key in keys {
                let raw = BASE64.decode(&key.secret).map_err(|e| {
                    EncryptionError::ParseConfig(format!(
                        "could not obtain secret for named key {}: {e}",
                        key.name
                    ))
                })?;
                named.push(NamedKey {
                    name: key.name.clone(),
                    prefix: format!("{}:", key.name).into_bytes(),
                    cipher: build_cipher(kind, &key.name, &raw)?,
                });
            }
            out.push(Provider::Keyed {
                prefix,
                no_key_err,
                keys: named,
            });
        }
        Ok(Transformer { providers: out })
    }

    /// Writes with the first provider and its first key: `k8s:enc:<provider>:v1:<key>:` and the
    /// upstream binary layout; identity writes the plaintext unchanged. `key_path` is the store
    /// key, authenticated by aesgcm.
    pub fn encrypt(&self, plaintext: &[u8], key_path: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        match self.providers.first() {
            None | Some(Provider::Identity) => Ok(plaintext.to_vec()),
            Some(Provider::Keyed { prefix, keys, .. }) => {
                let key = keys.first().ok_or_else(|| {
                    EncryptionError::Encrypt("aes provider has no valid keys".into())
                })?;
                let sealed = key.cipher.seal(plaintext, key_path)?;
                let mut out = Vec::with_capacity(prefix.len() + key.prefix.len() + sealed.len());
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&key.prefix);
                out.extend_from_slice(&sealed);
                Ok(out)
            }
        }
    }

    /// Reads a stored value: providers are tried by prefix in order and keys by name; a value
    /// not written by the first provider's first key is reported stale (rewrite it). Unprefixed
    /// data is readable only when an identity provider is listed.
    pub fn decrypt(
        &self,
        stored: &[u8],
        key_path: &[u8],
    ) -> Result<(Vec<u8>, bool), EncryptionError> {
        let mut errs: Vec<String> = Vec::new();
        for (i, provider) in self.providers.iter().enumerate() {
            match provider {
                Provider::Identity => {
                    // An identity listed before encryption providers must not stop them from
                    // reading encrypted data.
                    if stored.starts_with(ENCRYPTED_PREFIX) {
                        continue;
                    }
                    return Ok((stored.to_vec(), i != 0));
                }
                Provider::Keyed {
                    prefix,
                    no_key_err,
                    keys,
                } => {
                    let Some(rest) = stored.strip_prefix(prefix.as_bytes()) else {
                        continue;
                    };
                    let mut key_errs: Vec<String> = Vec::new();
                    let mut opened = None;
                    for (j, key) in keys.iter().enumerate() {
                        let Some(payload) = rest.strip_prefix(key.prefix.as_slice()) else {
                            continue;
                        };
                        match key.cipher.open(payload, key_path) {
                            Ok(plain) => {
                                opened = Some((plain, j != 0));
                                break;
                            }
                            Err(e) => key_errs.push(e.to_string()),
                        }
                    }
                    match opened {
                        Some((plain, stale)) => return Ok((plain, stale || i != 0)),
                        None if key_errs.is_empty() => errs.push(no_key_err.to_string()),
                        None => errs.push(aggregate(&key_errs)),
                    }
                }
            }
        }
        if !errs.is_empty() {
            return Err(EncryptionError::Decrypt(aggregate(&errs)));
        }
        Err(EncryptionError::Decrypt("no matching prefix found".into()))
    }

    /// Whether the writing provider is identity (values are stored in the clear).
    pub fn writes_plaintext(&self) -> bool {
        matches!(self.providers.first(), None | Some(Provider::Identity))
    }

    /// `<provider>:<key>` of the writing key (e.g. `aescbc:aescbckey`), `identity` otherwise;
    /// for status output.
    pub fn write_key_id(&self) -> String {
        match self.providers.first() {
            Some(Provider::Keyed { prefix, keys, .. }) => {
                let provider = prefix
                    .trim_start_matches("k8s:enc:")
                    .trim_end_matches(":v1:");
                let key = keys.first().map(|k| k.name.as_str()).unwrap_or_default();
                format!("{provider}:{key}")
            }
            _ => "identity".to_string(),
        }
    }
}

/// The transformers of a configuration, by group/resource.
#[derive(Debug)]
pub struct Transformers {
    by_resource: HashMap<(String, String), Transformer>,
}

impl Transformers {
    /// Parses, validates and builds.
    pub fn load(data: &[u8]) -> Result<Transformers, EncryptionError> {
        Transformers::from_config(&parse_config(data)?)
    }

    /// Builds from a validated configuration. A resource listed in several entries gets the
    /// providers of all of them in order; a rule masked by an earlier `*.<group>` or `*.*` is
    /// an error, as upstream.
    pub fn from_config(config: &EncryptionConfiguration) -> Result<Transformers, EncryptionError> {
        let mut lists: HashMap<(String, String), Vec<ProviderConfiguration>> = HashMap::new();
        for rc in &config.resources {
            for res in &rc.resources {
                let (group, resource) = parse_group_resource(res);
                for (mg, mr) in [(group.as_str(), "*"), ("*", "*")] {
                    if lists.contains_key(&(mg.to_string(), mr.to_string())) {
                        return Err(EncryptionError::ParseConfig(format!(
                            "resource {:?} is masked by earlier rule {:?}",
                            gr_string(&group, &resource),
                            gr_string(mg, mr)
                        )));
                    }
                }
                lists
                    .entry((group, resource))
                    .or_default()
                    .extend(rc.providers.iter().cloned());
            }
        }
        let mut by_resource = HashMap::with_capacity(lists.len());
        for (gr, providers) in lists {
            by_resource.insert(gr, Transformer::from_providers(&providers)?);
        }
        Ok(Transformers { by_resource })
    }

    /// The transformer for a group/resource: exact, then `*.<group>`, then `*.*`. `None` means
    /// the resource is stored as is.
    pub fn for_resource(&self, group: &str, resource: &str) -> Option<&Transformer> {
        let get = |g: &str, r: &str| self.by_resource.get(&(g.to_string(), r.to_string()));
        get(group, resource)
            .or_else(|| get(group, "*"))
            .or_else(|| get("*", "*"))
    }
}

// ---------------------------------------------------------------------------------------------
// k3s --secrets-encryption
// ---------------------------------------------------------------------------------------------

fn new_aescbc_key<R: rand::RngCore + ?Sized>(rng: &mut R, name: String) -> Key {
    let mut raw = [0u8; 32];
    rng.fill_bytes(&mut raw);
    Key {
        name,
        secret: BASE64.encode(raw),
    }
}

/// A fresh configuration as k3s's `--secrets-encryption` writes it: secrets encrypted with a
/// random 32-byte aescbc key named `aescbckey`, identity as the fallback for values written
/// before encryption was turned on. JSON, Go field order.
pub fn generate_config<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> String {
    let config = EncryptionConfiguration {
        kind: KIND.into(),
        api_version: API_VERSION.into(),
        resources: vec![ResourceConfiguration {
            resources: vec!["secrets".into()],
            providers: vec![
                ProviderConfiguration {
                    aescbc: Some(KeysConfiguration {
                        keys: vec![new_aescbc_key(rng, K3S_KEY_NAME.to_string())],
                    }),
                    ..Default::default()
                },
                ProviderConfiguration {
                    identity: Some(IdentityConfiguration {}),
                    ..Default::default()
                },
            ],
        }],
    };
    // Serializing plain strings and vectors cannot fail.
    serde_json::to_string(&config).unwrap_or_default()
}

/// k3s `secrets-encrypt rotate`: prepends a new random key `aescbckey-<unix time>` to the first
/// aescbc provider, so new writes use it while the old keys still read (their values come back
/// stale until rewritten).
pub fn rotate<R: rand::CryptoRng + ?Sized>(
    config: &EncryptionConfiguration,
    rng: &mut R,
    now_unix: i64,
) -> Result<EncryptionConfiguration, EncryptionError> {
    let mut out = config.clone();
    let keys = out
        .resources
        .iter_mut()
        .flat_map(|r| r.providers.iter_mut())
        .find_map(|p| p.aescbc.as_mut())
        .ok_or(EncryptionError::RotateNoAescbc)?;
    let base = format!("{K3S_KEY_NAME}-{now_unix}");
    let mut name = base.clone();
    let mut n = 1;
    while keys.keys.iter().any(|k| k.name == name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    keys.keys.insert(0, new_aescbc_key(rng, name));
    Ok(out)
}

/// `rotate` on the file's text; returns the new file (JSON).
pub fn rotate_text<R: rand::CryptoRng + ?Sized>(
    config: &[u8],
    rng: &mut R,
    now_unix: i64,
) -> Result<String, EncryptionError> {
    rotate(&parse_config(config)?, rng, now_unix)?.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const KEY16: &str = "MTIzNDU2Nzg5MDEyMzQ1Ng=="; // "1234567890123456"
    const KEY24: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0"; // 24 bytes
    const KEY32: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="; // 32 bytes
    const KEY32B: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY="; // 32 bytes

    fn cfg(providers: &str) -> String {
        format!(
            r#"{{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1",
               "resources":[{{"resources":["secrets"],"providers":[{providers}]}}]}}"#
        )
    }

    fn secrets(config: &str) -> Transformers {
        Transformers::load(config.as_bytes()).expect("config loads")
    }

    const PATH: &[u8] = b"/registry/secrets/default/s1";

    #[test]
    fn round_trip_each_provider_and_key_size() {
        for (kind, key) in [
            ("aesgcm", KEY16),
            ("aesgcm", KEY24),
            ("aesgcm", KEY32),
            ("aescbc", KEY16),
            ("aescbc", KEY24),
            ("aescbc", KEY32),
            ("secretbox", KEY32),
        ] {
            let t = secrets(&cfg(&format!(
                r#"{{"{kind}":{{"keys":[{{"name":"k1","secret":"{key}"}}]}}}}"#
            )));
            let tr = t.for_resource("", "secrets").expect("secrets configured");
            for plain in [
                &b""[..],
                b"x",
                b"0123456789abcdef",
                b"{\"kind\":\"Secret\",\"data\":{}}",
            ] {
                let stored = tr.encrypt(plain, PATH).unwrap();
                let prefix = format!("k8s:enc:{kind}:v1:k1:");
                assert!(stored.starts_with(prefix.as_bytes()), "{kind}");
                let body = &stored[prefix.len()..];
                match kind {
                    "aesgcm" => assert_eq!(body.len(), 12 + plain.len() + 16),
                    "aescbc" => assert_eq!(body.len(), 16 + (plain.len() / 16 + 1) * 16),
                    _ => assert_eq!(body.len(), 24 + 16 + plain.len()),
                }
                if plain.len() >= 8 {
                    assert!(!stored.windows(plain.len()).any(|w| w == plain));
                }
                let (back, stale) = tr.decrypt(&stored, PATH).unwrap();
                assert_eq!(back, plain, "{kind} {key}");
                assert!(!stale);
            }
            // Random nonces: two writes differ.
            assert_ne!(
                tr.encrypt(b"same", PATH).unwrap(),
                tr.encrypt(b"same", PATH).unwrap()
            );
        }
    }

    #[test]
    fn aesgcm_authenticates_the_store_key_but_aescbc_does_not() {
        let gcm = secrets(&cfg(&format!(
            r#"{{"aesgcm":{{"keys":[{{"name":"k1","secret":"{KEY32}"}}]}}}}"#
        )));
        let tr = gcm.for_resource("", "secrets").unwrap();
        let stored = tr.encrypt(b"secret data", PATH).unwrap();
        let err = tr
            .decrypt(&stored, b"/registry/secrets/default/other")
            .unwrap_err();
        assert_eq!(err.to_string(), "cipher: message authentication failed");
        // Tampering fails too.
        let mut bad = stored.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(tr.decrypt(&bad, PATH).is_err());

        let cbc = secrets(&cfg(&format!(
            r#"{{"aescbc":{{"keys":[{{"name":"k1","secret":"{KEY32}"}}]}}}}"#
        )));
        let tr = cbc.for_resource("", "secrets").unwrap();
        let stored = tr.encrypt(b"secret data", PATH).unwrap();
        assert_eq!(
            tr.decrypt(&stored, b"/elsewhere").unwrap().0,
            b"secret data"
        );
    }

    #[test]
    fn aescbc_known_answer_matches_go_layout() {
        // IV || AES-128-CBC(PKCS#7("hello")) built by hand with the aes block cipher.
        use aes::cipher::{BlockEncrypt, KeyInit};
        let key = b"1234567890123456";
        let iv = [7u8; 16];
        let mut block = [0u8; 16];
        block[..5].copy_from_slice(b"hello");
        for (b, p) in block[5..].iter_mut().zip(std::iter::repeat(11u8)) {
            *b = p;
        }
        for (b, v) in block.iter_mut().zip(iv.iter()) {
            *b ^= v;
        }
        let mut ga = aes::cipher::generic_array::GenericArray::from(block);
        aes::Aes128::new(key.into()).encrypt_block(&mut ga);
        let mut stored = b"k8s:enc:aescbc:v1:k1:".to_vec();
        stored.extend_from_slice(&iv);
        stored.extend_from_slice(&ga);
        let t = secrets(&cfg(&format!(
            r#"{{"aescbc":{{"keys":[{{"name":"k1","secret":"{KEY16}"}}]}}}}"#
        )));
        let (plain, stale) = t
            .for_resource("", "secrets")
            .unwrap()
            .decrypt(&stored, PATH)
            .unwrap();
        assert_eq!(plain, b"hello");
        assert!(!stale);
    }

    #[test]
    fn aescbc_corrupt_data_errors_with_upstream_messages() {
        let t = secrets(&cfg(&format!(
            r#"{{"aescbc":{{"keys":[{{"name":"k1","secret":"{KEY16}"}}]}}}}"#
        )));
        let tr = t.for_resource("", "secrets").unwrap();
        let err = tr.decrypt(b"k8s:enc:aescbc:v1:k1:short", PATH).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the stored data was shorter than the required size"
        );
        let mut data = b"k8s:enc:aescbc:v1:k1:".to_vec();
        data.extend_from_slice(&[0u8; 20]);
        let err = tr.decrypt(&data, PATH).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the stored data is not a multiple of the block size"
        );
    }

    #[test]
    fn rotation_old_key_reads_stale_new_key_writes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let text = generate_config(&mut rng);
        let config = parse_config(text.as_bytes()).unwrap();
        let old = Transformers::from_config(&config).unwrap();
        let old_tr = old.for_resource("", "secrets").unwrap();
        assert_eq!(old_tr.write_key_id(), "aescbc:aescbckey");
        let written_before = old_tr.encrypt(b"v1", PATH).unwrap();
        assert!(written_before.starts_with(b"k8s:enc:aescbc:v1:aescbckey:"));

        let rotated_text = rotate_text(text.as_bytes(), &mut rng, 1_700_000_000).unwrap();
        let rotated = parse_config(rotated_text.as_bytes()).unwrap();
        let keys = &rotated.resources[0].providers[0]
            .aescbc
            .as_ref()
            .unwrap()
            .keys;
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name, "aescbckey-1700000000");
        assert_eq!(keys[1].name, "aescbckey");
        assert_ne!(keys[0].secret, keys[1].secret);

        let new = Transformers::from_config(&rotated).unwrap();
        let tr = new.for_resource("", "secrets").unwrap();
        let (plain, stale) = tr.decrypt(&written_before, PATH).unwrap();
        assert_eq!(plain, b"v1");
        assert!(stale, "old key must be reported stale");
        let rewritten = tr.encrypt(&plain, PATH).unwrap();
        assert!(rewritten.starts_with(b"k8s:enc:aescbc:v1:aescbckey-1700000000:"));
        assert_eq!(
            tr.decrypt(&rewritten, PATH).unwrap(),
            (b"v1".to_vec(), false)
        );
        // The old configuration cannot read what the new key wrote.
        let err = old_tr.decrypt(&rewritten, PATH).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching key was found for the provided AES transformer"
        );

        // Rotating twice in the same second still yields unique names.
        let twice = rotate(&rotated, &mut rng, 1_700_000_000).unwrap();
        let names: Vec<&str> = twice.resources[0].providers[0]
            .aescbc
            .as_ref()
            .unwrap()
            .keys
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "aescbckey-1700000000-1",
                "aescbckey-1700000000",
                "aescbckey"
            ]
        );
    }

    #[test]
    fn generated_config_is_k3s_shaped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let text = generate_config(&mut rng);
        assert!(text.starts_with(
            r#"{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets"],"providers":[{"aescbc":{"keys":[{"name":"aescbckey","secret":""#
        ), "{text}");
        assert!(text.ends_with(r#""}]}},{"identity":{}}]}]}"#), "{text}");
        let c = parse_config(text.as_bytes()).unwrap();
        let secret = &c.resources[0].providers[0].aescbc.as_ref().unwrap().keys[0].secret;
        assert_eq!(BASE64.decode(secret).unwrap().len(), 32);
        assert_ne!(generate_config(&mut rng), text);
    }

    #[test]
    fn wrong_key_errors() {
        let a = secrets(&cfg(&format!(
            r#"{{"aesgcm":{{"keys":[{{"name":"k1","secret":"{KEY32}"}}]}}}}"#
        )));
        let b = secrets(&cfg(&format!(
            r#"{{"aesgcm":{{"keys":[{{"name":"k1","secret":"{KEY32B}"}}]}}}}"#
        )));
        let stored = a
            .for_resource("", "secrets")
            .unwrap()
            .encrypt(b"x", PATH)
            .unwrap();
        let err = b
            .for_resource("", "secrets")
            .unwrap()
            .decrypt(&stored, PATH)
            .unwrap_err();
        assert_eq!(err.to_string(), "cipher: message authentication failed");

        let sa = secrets(&cfg(&format!(
            r#"{{"secretbox":{{"keys":[{{"name":"k1","secret":"{KEY32}"}}]}}}}"#
        )));
        let sb = secrets(&cfg(&format!(
            r#"{{"secretbox":{{"keys":[{{"name":"k1","secret":"{KEY32B}"}}]}}}}"#
        )));
        let stored = sa
            .for_resource("", "secrets")
            .unwrap()
            .encrypt(b"x", PATH)
            .unwrap();
        let err = sb
            .for_resource("", "secrets")
            .unwrap()
            .decrypt(&stored, PATH)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "output array was not large enough for encryption"
        );

        // Same name, different secret, two providers of the same kind: both are tried and
        // the errors aggregated when none works.
        let two = secrets(&cfg(&format!(
            r#"{{"aesgcm":{{"keys":[{{"name":"k1","secret":"{KEY16}"}}]}}}},
               {{"aesgcm":{{"keys":[{{"name":"k1","secret":"{KEY32B}"}}]}}}}"#
        )));
        let err = two
            .for_resource("", "secrets")
            .unwrap()
            .decrypt(&stored, PATH)
            .unwrap_err();
        assert_eq!(err.to_string(), "no matching prefix found");
        let stored = a
            .for_resource("", "secrets")
            .unwrap()
            .encrypt(b"x", PATH)
            .unwrap();
        let err = two
            .for_resource("", "secrets")
            .unwrap()
            .decrypt(&stored, PATH)
            .unwrap_err();
        // Identical messages are deduplicated as `utilerrors.NewAggregate` does.
        assert_eq!(err.to_string(), "cipher: message authentication failed");
    }

    #[test]
    fn second_provider_of_same_kind_reads_and_is_stale() {
        let t = secrets(&cfg(&format!(
            r#"{{"aesgcm":{{"keys":[{{"name":"new","secret":"{KEY32B}"}}]}}}},
               {{"aesgcm":{{"keys":[{{"name":"old","secret":"{KEY32}"}}]}}}}"#
        )));
        let old = secrets(&cfg(&format!(
            r#"{{"aesgcm":{{"keys":[{{"name":"old","secret":"{KEY32}"}}]}}}}"#
        )));
        let stored = old
            .for_resource("", "secrets")
            .unwrap()
            .encrypt(b"v", PATH)
            .unwrap();
        assert_eq!(
            t.for_resource("", "secrets")
                .unwrap()
                .decrypt(&stored, PATH)
                .unwrap(),
            (b"v".to_vec(), true)
        );
    }

    #[test]
    fn identity_fallback_and_no_identity() {
        let with_identity = secrets(&cfg(&format!(
            r#"{{"aescbc":{{"keys":[{{"name":"k1","secret":"{KEY32}"}}]}}}},{{"identity":{{}}}}"#
        )));
        let tr = with_identity.for_resource("", "secrets").unwrap();
        let (plain, stale) = tr.decrypt(b"{\"kind\":\"Secret\"}", PATH).unwrap();
        assert_eq!(plain, b"{\"kind\":\"Secret\"}");
        assert!(stale, "plaintext must be rewritten encrypted");

        let without = secrets(&cfg(&format!(
            r#"{{"aescbc":{{"keys":[{{"name":"k1","secret":"{KEY32}"}}]}}}}"#
        )));
        let err = without
            .for_resource("", "secrets")
            .unwrap()
            .decrypt(b"{\"kind\":\"Secret\"}", PATH)
            .unwrap_err();
        assert_eq!(err.to_string(), "no matching prefix found");

        // Identity first (decrypting everything): writes plaintext, still reads encrypted data.
        let enc = tr.encrypt(b"v", PATH).unwrap();
        let identity_first = secrets(&cfg(&format!(
            r#"{{"identity":{{}}}},{{"aescbc":{{"keys":[{{"name":"k1","secret":"{KEY32}"}}]}}}}"#
        )));
        let tr2 = identity_first.for_resource("", "secrets").unwrap();
        assert!(tr2.writes_plaintext());
        assert_eq!(tr2.encrypt(b"v", PATH).unwrap(), b"v");
        assert_eq!(tr2.decrypt(&enc, PATH).unwrap(), (b"v".to_vec(), true));
        assert_eq!(tr2.decrypt(b"v", PATH).unwrap(), (b"v".to_vec(), false));

        // Identity only cannot read encrypted data.
        let only = secrets(&cfg(r#"{"identity":{}}"#));
        let err = only
            .for_resource("", "secrets")
            .unwrap()
            .decrypt(&enc, PATH)
            .unwrap_err();
        assert_eq!(err.to_string(), "no matching prefix found");
    }

    #[test]
    fn resource_lookup_exact_group_wildcard_and_all() {
        let config = format!(
            r#"
kind: EncryptionConfiguration
apiVersion: apiserver.config.k8s.io/v1
resources:
  - resources: [secrets, configmaps]
    providers:
      - aesgcm:
          keys: [{{name: k1, secret: "{KEY32}"}}]
  - resources: ["*.apps"]
    providers:
      - secretbox:
          keys: [{{name: k2, secret: "{KEY32}"}}]
  - resources: ["*.*"]
    providers:
      - aescbc:
          keys: [{{name: k3, secret: "{KEY16}"}}]
      - identity: {{}}
"#
        );
        let t = Transformers::load(config.as_bytes()).unwrap();
        let id = |g: &str, r: &str| t.for_resource(g, r).map(|t| t.write_key_id());
        assert_eq!(id("", "secrets").as_deref(), Some("aesgcm:k1"));
        assert_eq!(id("", "configmaps").as_deref(), Some("aesgcm:k1"));
        assert_eq!(id("apps", "deployments").as_deref(), Some("secretbox:k2"));
        assert_eq!(id("", "pods").as_deref(), Some("aescbc:k3"));
        assert_eq!(
            id("rbac.authorization.k8s.io", "roles").as_deref(),
            Some("aescbc:k3")
        );

        let only_secrets = secrets(&cfg(r#"{"identity":{}}"#));
        assert!(only_secrets.for_resource("", "configmaps").is_none());
        assert!(only_secrets.for_resource("apps", "secrets").is_none());
    }

    #[test]
    fn masked_rules_are_refused() {
        let config = format!(
            r#"{{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1",
               "resources":[{{"resources":["*.*"],"providers":[{{"identity":{{}}}}]}},
                            {{"resources":["secrets"],"providers":[{{"aescbc":{{"keys":[{{"name":"k","secret":"{KEY16}"}}]}}}}]}}]}}"#
        );
        let err = Transformers::load(config.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"error while parsing file: resource "secrets" is masked by earlier rule "*.*""#
        );
    }

    fn load_err(config: &str) -> String {
        Transformers::load(config.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn config_parse_and_validation_errors() {
        assert_eq!(
            load_err(&cfg(r#"{"aescbc":{"keys":[{"name":"k1","secret":"c2hvcnQ="}]}}"#)),
            "error while parsing file: resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5, expected one of [16 24 32]"
        );
        assert_eq!(
            load_err(&cfg(&format!(
                r#"{{"secretbox":{{"keys":[{{"name":"k1","secret":"{KEY16}"}}]}}}}"#
            ))),
            "error while parsing file: resources[0].providers[0].secretbox.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 16, expected one of [32]"
        );
        assert_eq!(
            load_err(&cfg(r#"{"aesgcm":{"keys":[{"name":"k1","secret":"not base64!"}]}}"#)),
            "error while parsing file: resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"
        );
        assert_eq!(
            load_err(&cfg(r#"{"aesgcm":{"keys":[{"secret":""}]}}"#)),
            "error while parsing file: [resources[0].providers[0].aesgcm.keys[0].name: Required value: name is a mandatory field for a key, resources[0].providers[0].aesgcm.keys[0].secret: Required value: secret is a mandatory field for a key]"
        );
        assert_eq!(
            load_err(&cfg(r#"{"aesgcm":{"keys":[]}}"#)),
            "error while parsing file: resources[0].providers[0].aesgcm.keys: Required value: at least one keys is required"
        );
        assert_eq!(
            load_err(&cfg(&format!(
                r#"{{"identity":{{}},"aescbc":{{"keys":[{{"name":"k","secret":"{KEY16}"}}]}}}}"#
            ))),
            format!("error while parsing file: resources[0].providers[0]: Invalid value: {{\"aescbc\":{{\"keys\":[{{\"name\":\"k\",\"secret\":\"{KEY16}\"}}]}},\"identity\":{{}}}}: more than one provider specified in a single element, should split into different list elements")
        );
        assert_eq!(
            load_err(&cfg(r#"{}"#)),
            "error while parsing file: resources[0].providers[0]: Invalid value: {}: provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity"
        );
        assert_eq!(
            load_err(r#"{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[]}"#),
            "error while parsing file: resources: Required value: at least one resources is required"
        );
        assert_eq!(
            load_err(r#"{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets","secrets","*."],"providers":[]}]}"#),
            "error while parsing file: [resources[0].resources: Invalid value: []string{\"secrets\", \"secrets\", \"*.\"}: the same resource cannot be specified multiple times, resources[0].resources: Invalid value: []string{\"secrets\", \"secrets\", \"*.\"}: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked, resources[0].providers: Required value: at least one resources[0].providers is required]"
        );
        assert_eq!(
            load_err(r#"{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["Secrets","*","deployments.extensions","events.events.k8s.io","secrets.*","serviceipallocations"],"providers":[{"identity":{}}]}]}"#),
            "error while parsing file: [resources[0].resources: Invalid value: []string{\"Secrets\", \"*\", \"deployments.extensions\", \"events.events.k8s.io\", \"secrets.*\", \"serviceipallocations\"}: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked, resources[0].resources[0]: Invalid value: \"Secrets\": resource name should not contain capital letters, resources[0].resources[1]: Invalid value: \"*\": use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources, resources[0].resources[2]: Invalid value: \"deployments.extensions\": 'extensions' group has been removed and cannot be used for encryption, resources[0].resources[3]: Invalid value: \"events.events.k8s.io\": '*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file, resources[0].resources[4]: Invalid value: \"secrets.*\": encrypting the same resource across groups is not supported, resources[0].resources[5]: Invalid value: \"serviceipallocations\": resources which do not have REST API/s cannot be encrypted]"
        );
        assert_eq!(
            load_err(&cfg(r#"{"kms":{"name":"vault","endpoint":"unix:///tmp/kms.sock"}}"#)),
            "could not configure KMS plugin \"vault\": kms providers are not supported by minik8s, use aescbc, aesgcm, secretbox or identity"
        );
        assert_eq!(
            load_err(r#"{"apiVersion":"apiserver.config.k8s.io/v1","resources":[]}"#),
            "error while parsing file: Object 'Kind' is missing in encryption configuration"
        );
        assert_eq!(
            load_err(r#"{"kind":"EncryptionConfig","apiVersion":"apiserver.config.k8s.io/v1","resources":[]}"#),
            "error while parsing file: no kind \"EncryptionConfig\" is registered for version \"apiserver.config.k8s.io/v1\""
        );
        assert_eq!(
            load_err("  \n"),
            "error while parsing file: encryption provider configuration file is empty"
        );
        assert!(load_err("kind: [unclosed").starts_with("error while parsing file: "));
    }
}
