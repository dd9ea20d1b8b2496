//! The probe's Modbus/TCP Security client: a blocking rustls connection with a client
//! certificate, for `zonegate probe --cert/--key/--ca` against a conduit whose gateway has a
//! `tls:` listener.
//!
//! The probe tests the conduit as a real client would: it verifies the gateway's certificate
//! chain against the CA it is given and the server name (the listen IP unless
//! `--server-name` says otherwise), presents the client certificate, and reads the role from
//! that certificate with the gateway's own parser (`zonegate_policy::role`), so the plan is
//! derived for the role the gateway will see. rustls with the ring provider, as in the gateway.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use zonegate_policy::role::{read_leaf, PeerCertificate};

/// What the probe presents and trusts over Modbus/TCP Security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTls {
    /// CA bundle (PEM) the gateway's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate (PEM) and its key; `None` connects without one (a must-fail test).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name the gateway's certificate must carry (DNS name or IP address).
    pub server_name: String,
}

/// The name a gateway's certificate must carry when none is given: the IP address connected
/// to (`localhost` for an unspecified listen address, which the probe reaches on loopback).
pub fn default_server_name(target: std::net::SocketAddr) -> String {
    if target.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        target.ip().to_string()
    }
}

/// A connection to the gateway: plain TCP, or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

fn certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {}: no CERTIFICATE in it", path.display()));
    }
    Ok(certs)
}

/// Subject, fingerprint and role of the client certificate, as the gateway will read them.
pub fn identity_of(cert: &Path) -> Result<PeerCertificate, String> {
    let chain = certs("client certificate", cert)?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("client certificate {}: empty", cert.display()))?;
    Ok(read_leaf(leaf.as_ref()))
}

/// Builds the client configuration once per probe run.
pub(crate) fn config(tls: &ProbeTls) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in certs("CA bundle", &tls.ca)? {
        roots
            .add(c)
            .map_err(|e| format!("CA bundle {}: {e}", tls.ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match &tls.identity {
        Some((cert, key)) => {
            let chain = certs("client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Wraps a connected socket and completes the handshake (bounded by the socket's timeouts).
pub(crate) fn connect(
    config: &Arc<ClientConfig>,
    server_name: &str,
    mut tcp: TcpStream,
) -> Result<Stream, String> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| format!("`{server_name}` is not a server name: {e}"))?;
    let mut conn =
        ClientConnection::new(Arc::clone(config), name).map_err(|e| format!("TLS: {e}"))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}
