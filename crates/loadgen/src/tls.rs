//! Modbus/TCP Security for the load generator: a rustls client with a client certificate, so
//! the benchmark can drive a mutual-TLS listener (the gateway's, or haproxy's) as a Modbus/TCP
//! Security client would. Resumption is off: with `--new-connection-each` every request then
//! costs one full handshake, which is what "handshakes per second" measures.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

/// A connection the workers use: plain TCP or TLS over TCP.
pub(crate) trait Link: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Link for T {}

/// What `--tls-*` gave.
pub(crate) struct Tls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) name: ServerName<'static>,
}

/// Builds the client from PEM files.
pub(crate) fn client(
    ca: &PathBuf,
    cert: &PathBuf,
    key: &PathBuf,
    name: &str,
) -> Result<Tls, String> {
    let bad =
        |what: &str, p: &PathBuf, e: &dyn std::fmt::Display| format!("{what} {}: {e}", p.display());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad("--tls-ca", ca, &e))? {
        roots
            .add(c.map_err(|e| bad("--tls-ca", ca, &e))?)
            .map_err(|e| bad("--tls-ca", ca, &e))?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("--tls-cert", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("--tls-cert", cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("--tls-key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| bad("--tls-key", key, &e))?;
    config.resumption = rustls::client::Resumption::disabled();
    let name =
        ServerName::try_from(name.to_owned()).map_err(|e| format!("--tls-server-name: {e}"))?;
    Ok(Tls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        name,
    })
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
