//! TLS with rustls (feature `rustls`, on by default): `wss://` for the [`Dialer`](crate::Dialer)
//! and certificate loading for servers.
//!
//! # Provider and roots
//! The crypto provider is *ring*, passed explicitly to every configuration built here (so the
//! process-wide default provider is never consulted, and a dependency that enables rustls's
//! aws-lc feature cannot make a build panic or require cmake). The default client
//! configuration trusts Mozilla's root certificates as bundled by `webpki-roots`: a client
//! verifies servers the same way on every machine and in every container, even one without
//! a CA bundle, with no dependency on the platform's store. To trust a private CA, or to use
//! the system store, build a [`rustls::ClientConfig`] (see [`client_config_with_roots`]) and
//! pass it to [`Dialer::tls_config`](crate::Dialer::tls_config).
//!
//! # Servers
//! [`Upgrader::accept`](crate::Upgrader::accept) works over any `AsyncRead + AsyncWrite`, so a
//! TLS stream from a [`TlsAcceptor`] just works:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrosocket::{Upgrader, tls};
//! let acceptor = tls::TlsAcceptor::from(tls::server_config_from_pem("cert.pem", "key.pem")?);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! let upgrader = Upgrader::new();
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let (acceptor, upgrader) = (acceptor.clone(), upgrader.clone());
//!     tokio::spawn(async move {
//!         let Ok(tls) = acceptor.accept(tcp).await else { return };
//!         let Ok(mut conn) = upgrader.accept(tls).await else { return };
//!         while let Ok(msg) = conn.recv().await {
//!             if conn.send(msg).await.is_err() { break }
//!         }
//!     });
//! }
//! # }
//! ```
//! Run the TLS handshake under a timeout of your own: the upgrader's handshake timeout starts
//! once it has the stream.

use crate::error::Error;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use rustls;
pub use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::client::TlsStream as ClientTlsStream;
pub use tokio_rustls::server::TlsStream as ServerTlsStream;

/// The only application protocol spoken: WebSocket upgrades are HTTP/1.1 requests.
const ALPN_HTTP11: &[u8] = b"http/1.1";

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn config_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}: {e}"),
    ))
}

/// The client configuration the [`Dialer`](crate::Dialer) uses by default: Mozilla's roots
/// (`webpki-roots`), TLS 1.2 and 1.3, ALPN `http/1.1`. Built once and shared.
///
/// # Errors
/// None in practice: [`Error::Io`] if the crypto provider rejects the default protocol
/// versions.
pub fn webpki_client_config() -> Result<Arc<ClientConfig>, Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config = client_config_with_roots(webpki_roots())?;
    Ok(CONFIG.get_or_init(|| config).clone())
}

/// Mozilla's root certificates (`webpki-roots`), as a store to extend with a private CA:
///
/// ```
/// use ferrosocket::tls;
/// let mut roots = tls::webpki_roots();
/// assert!(!roots.is_empty());
/// // roots.add(my_ca_der)?;
/// let dialer = ferrosocket::Dialer::new().tls_config(tls::client_config_with_roots(roots).unwrap());
/// ```
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A client configuration that trusts exactly `roots` (for a private CA or a self-signed
/// server certificate), with ALPN `http/1.1`, for
/// [`Dialer::tls_config`](crate::Dialer::tls_config).
///
/// ```
/// use ferrosocket::tls::{client_config_with_roots, rustls::RootCertStore};
/// let roots = RootCertStore::empty(); // add_parsable_certificates(...) in real code
/// let config = client_config_with_roots(roots).unwrap();
/// let dialer = ferrosocket::Dialer::new().tls_config(config);
/// ```
///
/// # Errors
/// None in practice: [`Error::Io`] if the crypto provider rejects the default protocol
/// versions.
pub fn client_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("tls client configuration rejected", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration from a certificate chain (leaf first) and its private key, with
/// ALPN `http/1.1`, for [`TlsAcceptor::from`].
///
/// # Errors
/// [`Error::Io`] (`InvalidInput`) when the key does not suit the certificate or is of an
/// unsupported type.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    if certs.is_empty() {
        return Err(config_error(
            "tls server configuration rejected",
            "no certificate given; pass the chain, leaf first",
        ));
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("tls server configuration rejected", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            config_error(
                "tls server configuration rejected",
                format!("{e}; check that the key belongs to the certificate"),
            )
        })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration from PEM files: `cert_path` holds the chain (`BEGIN CERTIFICATE`
/// blocks, leaf first), `key_path` the private key (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// [`Error::Io`] (`InvalidInput`) naming the file when one cannot be read or holds no usable
/// PEM block, or when the key does not suit the certificate.
pub fn server_config_from_pem(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, Error> {
    let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
    let cert_err = |e: &dyn std::fmt::Display| {
        config_error(
            &format!("cannot load certificates from {}", cert_path.display()),
            format!("{e}; expected PEM `BEGIN CERTIFICATE` blocks, leaf first"),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(&e))?;
    if certs.is_empty() {
        return Err(cert_err(&"no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        config_error(
            &format!("cannot load the private key from {}", key_path.display()),
            format!("{e}; expected a PEM `BEGIN PRIVATE KEY` (or RSA/EC PRIVATE KEY) block"),
        )
    })?;
    server_config(certs, key)
}
