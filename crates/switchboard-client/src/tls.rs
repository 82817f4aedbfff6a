//! TLS for `wss://` (feature `tls`): rustls with its default provider, aws-lc-rs (no OpenSSL), trusting the
//! system's root certificates (rustls-native-certs) plus the extra CAs given to the builder, or
//! a `rustls::ClientConfig` of the application's own.
//!
//! The configuration is built at the first `wss://` connection and kept for the next ones; a
//! configuration that cannot be built, or a certificate that is not trusted, is a
//! [`ConnectionError::Tls`]: retrying cannot fix it, so the client stops and says why.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::ConnectionError;

/// What the builder was told about TLS.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// PEM texts of CA certificates to trust beside the system's roots.
    pub(crate) extra_roots: Vec<Vec<u8>>,
    /// A complete configuration that replaces everything else.
    pub(crate) custom: Option<Arc<ClientConfig>>,
}

/// Opens TLS streams with the configuration of [`TlsOptions`], built once.
pub(crate) struct TlsConnector {
    options: TlsOptions,
    config: OnceLock<Result<Arc<ClientConfig>, ConnectionError>>,
}

impl TlsConnector {
    pub(crate) fn new(options: TlsOptions) -> Self {
        Self { options, config: OnceLock::new() }
    }

    fn config(&self) -> Result<Arc<ClientConfig>, ConnectionError> {
        self.config.get_or_init(|| build(&self.options)).clone()
    }

    /// What a connection to `host` needs, checked before any socket is opened: the
    /// configuration, and `host` as a TLS server name.
    pub(crate) fn prepare(&self, host: &str) -> Result<TlsClient, ConnectionError> {
        let config = self.config()?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| ConnectionError::Tls(format!("{host:?} is not a valid TLS server name: {e}")))?;
        Ok(TlsClient { config, name })
    }
}

/// A prepared TLS connection to one server name.
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// The TLS handshake over `tcp`, verifying the server's certificate. A rustls error
    /// (untrusted certificate, an alert from the server) is [`ConnectionError::Tls`]; an I/O
    /// error on the way is [`ConnectionError::Network`].
    pub(crate) async fn handshake(self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ConnectionError> {
        let host = self.name.to_str().into_owned();
        tokio_rustls::TlsConnector::from(self.config).connect(self.name, tcp).await.map_err(|e| {
            match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(tls) => ConnectionError::Tls(format!("{host}: {tls}")),
                None => ConnectionError::Network(format!("the TLS handshake with {host} failed: {e}")),
            }
        })
    }
}

/// The system's roots plus the extra CAs, or the application's configuration.
fn build(options: &TlsOptions) -> Result<Arc<ClientConfig>, ConnectionError> {
    if let Some(custom) = &options.custom {
        return Ok(Arc::clone(custom));
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "a system root certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates");
    for pem in &options.extra_roots {
        for cert in parse_pem(pem)? {
            roots.add(cert).map_err(|e| {
                ConnectionError::Tls(format!("the extra CA is not a usable certificate: {e}"))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(ConnectionError::Tls(
            "no root certificate to trust: the system has none and no extra CA was given".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectionError::Tls(format!("cannot configure TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM text; an error when it has none.
fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConnectionError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConnectionError::Tls(format!("the extra CA is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ConnectionError::Tls(
            "the extra CA has no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_that_is_not_a_certificate_is_a_fatal_tls_error() {
        for pem in
            [&b"not a certificate"[..], b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"]
        {
            let options = TlsOptions { extra_roots: vec![pem.to_vec()], custom: None };
            let e = TlsConnector::new(options).config().unwrap_err();
            assert!(matches!(&e, ConnectionError::Tls(m) if m.contains("extra CA")), "{e:?}");
            assert!(e.is_fatal());
        }
    }
}
