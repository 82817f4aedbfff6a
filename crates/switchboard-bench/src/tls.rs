//! TLS for the `wss` scenarios (S1-TLS, S2-TLS, S4-TLS): a certificate authority and a server
//! certificate made at run time, the files the servers are given, the load generator's client
//! configuration (trusting that CA only), the bench servers' configuration, and a stream that is
//! plain TCP or TLS over it.
//!
//! rustls with the aws-lc-rs provider on both sides (TLS 1.3 and 1.2, ALPN `http/1.1`, the
//! provider's default cipher suites and key exchange groups). The client never resumes a
//! session: every connection is a full handshake, which is what S4-TLS counts.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use switchboard_bench::tls::{Pki, Stream};
//! let pki = Pki::generate(std::path::Path::new("target/bench-logs/tls"))?;
//! // A server started with env TLS_CERT / TLS_KEY (see `Pki::env`) listens on 127.0.0.1:port.
//! let tcp = tokio::net::TcpStream::connect(("127.0.0.1", 9000)).await?;
//! let stream = Stream::connect(tcp, Some(&pki.client)).await?;
//! println!("{}", stream.describe());
//! # Ok(()) }
//! ```

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Environment variable naming the server's certificate chain (PEM) in the TLS scenarios.
pub const CERT_ENV: &str = "TLS_CERT";
/// Environment variable naming the server's private key (PEM, PKCS#8) in the TLS scenarios.
pub const KEY_ENV: &str = "TLS_KEY";

/// The crypto provider of every TLS endpoint of the bench: aws-lc-rs.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates of one TLS scenario: a CA, and a server certificate for `127.0.0.1` and
/// `localhost` signed by it (ECDSA P-256 keys), written as PEM files.
pub struct Pki {
    /// The server's chain: its certificate, then the CA's.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
    /// The CA certificate (what the load generator trusts).
    pub ca: PathBuf,
    /// The load generator's client configuration, trusting [`Pki::ca`] only.
    pub client: Arc<ClientConfig>,
}

impl Pki {
    /// Makes a fresh CA and server certificate and writes `cert.pem`, `key.pem` and `ca.pem`
    /// into `dir` (created if needed).
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "switchboard-bench CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        leaf.distinguished_name.push(DnType::CommonName, "switchboard-bench server");
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &issuer)?;
        let (cert_path, key_path, ca_path) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("ca.pem"));
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), issuer.pem()))?;
        std::fs::write(&key_path, key.serialize_pem())?;
        std::fs::write(&ca_path, issuer.pem())?;
        let client = client_config(&ca_path)?;
        Ok(Self { cert: cert_path, key: key_path, ca: ca_path, client })
    }

    /// The environment a server is started with: [`CERT_ENV`] and [`KEY_ENV`].
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (CERT_ENV.to_owned(), self.cert.display().to_string()),
            (KEY_ENV.to_owned(), self.key.display().to_string()),
        ]
    }
}

/// A client configuration trusting only the CA in `ca_pem`: TLS 1.3 and 1.2, ALPN `http/1.1`,
/// no session resumption (every connection does a full handshake).
pub fn client_config(ca_pem: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).with_context(|| format!("read {}", ca_pem.display()))? {
        roots.add(cert?)?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// A server configuration from PEM files (the chain, then the key): TLS 1.3 and 1.2, ALPN
/// `http/1.1`, rustls's defaults otherwise (as the standalone server).
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("read {}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The bench servers' acceptor: `Some` when env [`CERT_ENV`] and [`KEY_ENV`] are both set
/// (then the server speaks only TLS), `None` when neither is.
///
/// # Errors
/// One of the two is set without the other, or the files cannot be used.
pub fn acceptor_from_env() -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    match (var(CERT_ENV), var(KEY_ENV)) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(tokio_rustls::TlsAcceptor::from(server_config(&cert, &key)?))),
        _ => anyhow::bail!("{CERT_ENV} and {KEY_ENV} go together: set both or neither"),
    }
}

/// A client connection: plain TCP, or TLS over TCP.
#[derive(Debug)]
pub enum Stream {
    /// `ws://`.
    Tcp(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// `tcp` as is (`config` `None`), or after a TLS handshake for the server name `127.0.0.1`.
    pub async fn connect(tcp: TcpStream, config: Option<&Arc<ClientConfig>>) -> anyhow::Result<Self> {
        let Some(config) = config else { return Ok(Self::Tcp(tcp)) };
        let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        Ok(Self::Tls(Box::new(tls)))
    }

    /// What the TLS handshake settled (`TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519MLKEM768`), or
    /// `plain TCP`.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(_) => "plain TCP".to_owned(),
            Self::Tls(tls) => {
                let c = tls.get_ref().1;
                let version = c.protocol_version().map_or("?".to_owned(), |v| format!("{v:?}"));
                let suite =
                    c.negotiated_cipher_suite().map_or("?".to_owned(), |s| format!("{:?}", s.suite()));
                let group =
                    c.negotiated_key_exchange_group().map_or("?".to_owned(), |g| format!("{:?}", g.name()));
                format!("{version} {suite} {group}")
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client trusting the generated CA completes a handshake with a server using the generated
    /// files, over a real socket; a client trusting another CA is refused.
    #[tokio::test]
    async fn generated_certificates_are_trusted_by_the_client_only() {
        let dir = std::env::temp_dir().join(format!("switchboard-bench-tls-test-{}", std::process::id()));
        let pki = Pki::generate(&dir).unwrap();
        let other = Pki::generate(&dir.join("other")).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&pki.cert, &pki.key).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            // The first connection echoes one line; the second fails its handshake.
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(&buf).await.unwrap();
            tls.flush().await.unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let refused = acceptor.accept(tcp).await.is_err();
            (alpn, refused)
        });
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut s = Stream::connect(tcp, Some(&pki.client)).await.unwrap();
        assert!(s.describe().starts_with("TLSv1_3 "), "{}", s.describe());
        s.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let e = Stream::connect(tcp, Some(&other.client)).await.unwrap_err();
        assert!(format!("{e:#}").contains("TLS handshake"), "{e:#}");
        let (alpn, refused) = server.await.unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(refused);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
