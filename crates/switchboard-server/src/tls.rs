//! TLS with rustls (aws-lc-rs provider, no OpenSSL): the server's certificate from PEM files, read
//! again on SIGHUP and when the files change, and the roots trusted for outbound `https`.
//!
//! A new certificate applies to handshakes from then on; connections already open keep theirs.
//! A certificate or key that cannot be read or does not match leaves the previous pair in
//! place (with an ERROR line), so a half-copied rotation never takes the server down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

/// The crypto provider: aws-lc-rs, the only one compiled in.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM certificate chain and its private key and checks that they belong together.
pub(crate) fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let pair = CertifiedKey::from_der(chain, der, &provider())
        .map_err(|e| format!("{} and {} do not make a usable pair: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(pair))
}

/// The server's current certificate, swapped when the files change.
#[derive(Debug)]
pub(crate) struct Certificate {
    /// The chain file.
    cert: PathBuf,
    /// The key file.
    key: PathBuf,
    /// What new handshakes are served.
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times at the last load (changed: load again).
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Certificate {
    /// Loads the pair; the error says which file is wrong.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, String> {
        let stamps = (modified(cert), modified(key));
        let pair = load_pair(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(pair),
            stamps: Mutex::new(stamps),
        }))
    }

    /// Loads the files again if they changed (or always, with `force`): whether the certificate
    /// was replaced. A failure keeps the previous certificate.
    pub(crate) fn reload(&self, force: bool) -> Result<bool, String> {
        let stamps = (modified(&self.cert), modified(&self.key));
        {
            let mut last = self.stamps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !force && *last == stamps {
                return Ok(false);
            }
            // Tried once per change: a broken file is reported once, not at every poll.
            *last = stamps;
        }
        let pair = load_pair(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = pair;
        Ok(true)
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The rustls acceptor serving this certificate: TLS 1.2 and 1.3, ALPN `http/1.1`.
    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads on SIGHUP (always) and every `interval` (if the files changed) until `stop`.
    pub(crate) fn watch(self: Arc<Self>, interval: Option<Duration>, stop: CancellationToken) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: the certificate is reloaded only when its files change");
                None
            }
        };
        tokio::spawn(async move {
            loop {
                let poll = async {
                    match interval {
                        Some(i) => tokio::time::sleep(i).await,
                        None => std::future::pending().await,
                    }
                };
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let force = tokio::select! {
                    () = stop.cancelled() => return,
                    () = poll => false,
                    _ = hangup => true,
                };
                match self.reload(force) {
                    Ok(true) => tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::error!("{e}; keeping the previous certificate"),
                }
            }
        });
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The roots for outbound `https`: the system's, plus those of `ca_file` if given.
pub(crate) fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "a system root certificate could not be read");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "system root certificates");
    if let Some(file) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(Iterator::collect)
            .map_err(|e| format!("cannot read the CA file {}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!("no certificate in the CA file {}", file.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("unusable CA certificate in {}: {e}", file.display()))?;
        }
    }
    Ok(roots)
}

/// The client configuration for outbound `https` (proxy calls, the JWKS URL).
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let roots = roots(ca_file)?;
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| format!("TLS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_bad_new_pair_keeps_the_old_one() {
        let dir = std::env::temp_dir().join(format!("sb-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c1, k1) = pair(&dir, "one.test");
        let (_, k2) = pair(&dir, "two.test");
        let cert = Certificate::load(&c1, &k1).unwrap();
        let first = cert.current().cert[0].clone();
        assert!(!cert.reload(false).unwrap(), "unchanged files are not read again");
        // A key of another certificate: refused, the old pair stays.
        std::fs::copy(&k2, &k1).unwrap();
        assert!(cert.reload(true).unwrap_err().contains("do not make a usable pair"));
        assert_eq!(cert.current().cert[0], first);
        std::fs::write(&c1, "not PEM").unwrap();
        assert!(cert.reload(true).is_err());
        assert!(load_pair(&dir.join("missing.crt"), &k1).unwrap_err().contains("missing.crt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
