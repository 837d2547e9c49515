//! Cluster PKI: the CA, the API server's serving certificate and the admin client
//! certificate, kept as PEM files in a directory passed by the caller.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating certificate {name}: {source}")]
    Generate {
        name: &'static str,
        source: rcgen::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading ca from {path}: {source}")]
    LoadCa { path: PathBuf, source: rcgen::Error },
}

/// PEM material the server needs at run time.
#[derive(Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    dir: PathBuf,
}

fn write(path: &Path, data: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(data.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn gen(name: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { name, source }
}

impl Pki {
    /// Loads the CA from `dir` (creating it on first start), issues a fresh serving
    /// certificate for `sans` (DNS names or IPs) and ensures an admin client certificate.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let ca_crt = dir.join("server-ca.crt");
        let ca_key = dir.join("server-ca.key");
        if !ca_crt.exists() || !ca_key.exists() {
            let key = KeyPair::generate().map_err(gen("ca"))?;
            let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen("ca"))?;
            params
                .distinguished_name
                .push(DnType::CommonName, "minik8s-server-ca");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_after = rcgen::date_time_ymd(2036, 1, 1);
            let cert = params.self_signed(&key).map_err(gen("ca"))?;
            write(&ca_key, &key.serialize_pem(), 0o600)?;
            write(&ca_crt, &cert.pem(), 0o644)?;
        }
        let ca_cert_pem = read(&ca_crt)?;
        let ca_key_pem = read(&ca_key)?;
        let ca_keypair = KeyPair::from_pem(&ca_key_pem).map_err(|source| PkiError::LoadCa {
            path: ca_key.clone(),
            source,
        })?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_keypair).map_err(|source| {
            PkiError::LoadCa {
                path: ca_crt.clone(),
                source,
            }
        })?;

        // Serving certificate: reissued on every start so SAN changes take effect.
        let (serving_cert_pem, serving_key_pem) = issue_serving(&issuer, "kube-apiserver", sans)?;
        write(
            &dir.join("serving-kube-apiserver.crt"),
            &serving_cert_pem,
            0o644,
        )?;
        write(
            &dir.join("serving-kube-apiserver.key"),
            &serving_key_pem,
            0o600,
        )?;

        let admin_crt = dir.join("client-admin.crt");
        let admin_key = dir.join("client-admin.key");
        let admin_expiring = read(&admin_crt)
            .map(|c| expires_within(&c, RENEW_BEFORE_DAYS))
            .unwrap_or(true);
        if !admin_crt.exists() || !admin_key.exists() || admin_expiring {
            let (c, k) = issue_client(&issuer, "system:admin", &["system:masters"])?;
            write(&admin_key, &k, 0o600)?;
            write(&admin_crt, &c, 0o644)?;
        }
        Ok(Pki {
            ca_cert_pem,
            serving_cert_pem,
            serving_key_pem,
            admin_cert_pem: read(&admin_crt)?,
            admin_key_pem: read(&admin_key)?,
            dir: dir.to_path_buf(),
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let ca_key = self.dir.join("server-ca.key");
        let key_pem = read(&ca_key)?;
        let kp = KeyPair::from_pem(&key_pem).map_err(|source| PkiError::LoadCa {
            path: ca_key.clone(),
            source,
        })?;
        Issuer::from_ca_cert_pem(&self.ca_cert_pem, kp).map_err(|source| PkiError::LoadCa {
            path: ca_key,
            source,
        })
    }

    /// Issues a client certificate (CN = user, O = groups) signed by the cluster CA.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<(String, String), PkiError> {
        issue_client(&self.issuer()?, user, groups)
    }

    /// Issues a serving certificate (CN = `cn`) for DNS names or IPs, signed by the CA.
    pub fn issue_serving_cert(
        &self,
        cn: &str,
        sans: &[String],
    ) -> Result<(String, String), PkiError> {
        issue_serving(&self.issuer()?, cn, sans)
    }

    /// A kubeconfig for the admin user, embedding the CA and the client certificate.
    pub fn admin_kubeconfig(&self, server_url: &str) -> String {
        self.kubeconfig(server_url, &self.admin_cert_pem, &self.admin_key_pem)
    }

    /// A kubeconfig for any client certificate issued by the cluster CA.
    pub fn kubeconfig(&self, server_url: &str, cert_pem: &str, key_pem: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\npreferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&self.ca_cert_pem),
            server_url,
            b64(cert_pem),
            b64(key_pem)
        )
    }
}

/// How long serving and client certificates are valid (k3s: one year).
pub const LEAF_VALIDITY_DAYS: i64 = 365;
/// Certificates this close to expiry are reissued when the server or agent starts (k3s's
/// 90 days).
pub const RENEW_BEFORE_DAYS: i64 = 90;

fn set_leaf_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back for clock skew between machines.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(LEAF_VALIDITY_DAYS);
}

/// Whether a PEM certificate expires within `days` (or cannot be read).
pub fn expires_within(cert_pem: &str, days: i64) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return true;
    };
    let Ok(cert) = pem.parse_x509() else {
        return true;
    };
    let not_after = cert.validity().not_after.timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    not_after - now < days * 86_400
}

/// `minik8s certificate rotate`: removes the server's leaf client certificates so the next
/// start issues new ones (the serving certificate is reissued on every start; the CA and
/// the service account key stay). Returns the files removed.
pub fn rotate(dir: &Path) -> Result<Vec<PathBuf>, PkiError> {
    let mut removed = Vec::new();
    for f in ["client-admin.crt", "client-admin.key"] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|source| PkiError::Write {
                path: p.clone(),
                source,
            })?;
            removed.push(p);
        }
    }
    Ok(removed)
}

fn issue_serving(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: &[String],
) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(gen("serving"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen("serving"))?;
    params.distinguished_name.push(DnType::CommonName, cn);
    for s in sans {
        let san = match s.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.clone().try_into().map_err(gen("serving"))?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_leaf_validity(&mut params);
    let cert = params.signed_by(&key, issuer).map_err(gen("serving"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue_client(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(gen("client"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen("client"))?;
    for g in groups {
        params
            .distinguished_name
            .push(DnType::OrganizationName, g.to_string());
    }
    params.distinguished_name.push(DnType::CommonName, user);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    set_leaf_validity(&mut params);
    let cert = params.signed_by(&key, issuer).map_err(gen("client"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file with mode bits, atomically.
pub fn write_file(path: &Path, data: &str, mode: u32) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| PkiError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    write(path, data, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_certificates_last_a_year_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["127.0.0.1".into()]).unwrap();
        for pem in [&pki.admin_cert_pem, &pki.serving_cert_pem] {
            assert!(!expires_within(pem, RENEW_BEFORE_DAYS));
            assert!(expires_within(pem, LEAF_VALIDITY_DAYS + 1));
        }
        assert!(expires_within("not a certificate", 1));
        let removed = rotate(dir.path()).unwrap();
        assert_eq!(removed.len(), 2);
        let again = Pki::load_or_create(dir.path(), &["127.0.0.1".into()]).unwrap();
        assert_ne!(again.admin_cert_pem, pki.admin_cert_pem);
        assert_eq!(again.ca_cert_pem, pki.ca_cert_pem);
    }
}
