//! Modbus/TCP Security (mbaps): rustls configurations from the model's PEM files, the
//! handshake of a client, and what the session keeps of its certificate.
//!
//! Provider: rustls's `ring`, deliberately. It is maintained by the rustls project, builds
//! with no C toolchain beyond a C compiler (aws-lc-rs needs cmake and a long build), and is
//! the provider the audit crate's syslog-over-TLS already uses, so the build holds one TLS
//! stack. Both providers offer the same suites here (ECDHE + AEAD only, see the README's
//! deviations: no NULL or CBC suites, no max_fragment_length).
//!
//! A configuration is built once per load of the model (start, reload), never per
//! connection: a reload swaps it with the conduit's state, so new handshakes use the new
//! files and sessions already established keep theirs. A file that cannot be read or parsed
//! fails the whole load, naming the file and the problem; the settings in force stay.
//!
//! Resumption: the server keeps rustls's in-memory session cache (TLS 1.2 session ids, TLS 1.3
//! stateful tickets), as the spec prefers. A new configuration comes with a new cache,
//! so a reload (a new CRL) also ends resumption of sessions made before it. The role is read
//! again from the certificate rustls keeps with the session, on every handshake.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use zonegate_policy::role::{read_leaf, NoRole};
use zonegate_policy::{TlsListener, TlsVersion};

/// Why a TLS configuration could not be built: the file, and what is wrong with it.
pub(crate) fn file_error(what: &str, path: &Path, problem: impl std::fmt::Display) -> String {
    format!("{what} {}: {problem}", path.display())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(min: TlsVersion) -> &'static [&'static SupportedProtocolVersion] {
    static BOTH: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        TlsVersion::V1_2 => &BOTH,
        _ => &ONLY_13,
    }
}

fn certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no CERTIFICATE in the PEM file"));
    }
    Ok(certs)
}

fn key(what: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(what, path, e))
}

fn roots(what: &str, path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(what, path)? {
        roots.add(c).map_err(|e| file_error(what, path, e))?;
    }
    Ok(roots)
}

/// The listener's configuration: its certificate, mutual TLS against `client_ca` (and the
/// CRL), versions from `min_version` up.
pub(crate) fn server_config(t: &TlsListener) -> Result<Arc<ServerConfig>, String> {
    let provider = provider();
    let roots = roots("tls.client_ca", &t.client_ca)?;
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
    if let Some(crl) = &t.crl {
        let crls = CertificateRevocationListDer::pem_file_iter(crl)
            .map_err(|e| file_error("tls.crl", crl, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error("tls.crl", crl, e))?;
        if crls.is_empty() {
            return Err(file_error("tls.crl", crl, "no X509 CRL in the PEM file"));
        }
        // Revocation of the client's own certificate; a CRL that does not cover it is an
        // error (rustls's default: unknown status is refused).
        verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
    }
    // No `allow_unauthenticated`: a client without a certificate is refused.
    let verifier = verifier
        .build()
        .map_err(|e| file_error("tls.client_ca", &t.client_ca, e))?;
    let chain = certs("tls.cert", &t.cert)?;
    let key = key("tls.key", &t.key)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(t.min_version))
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| file_error("tls.key", &t.key, format!("does not fit tls.cert: {e}")))?;
    Ok(Arc::new(config))
}

/// The device side of a `tls://` upstream: what the gateway verifies and presents.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTls {
    pub(crate) config: Arc<ClientConfig>,
    /// The name the device certificate must carry (`server_name`, else the host).
    pub(crate) server_name: ServerName<'static>,
}

/// The client configuration of a `tls://` upstream: the device must chain to `ca` and carry
/// `server_name`; the gateway presents `cert` (the device may require it, as the spec does).
pub(crate) fn upstream_config(
    host: &str,
    ca: Option<&Path>,
    cert: Option<&Path>,
    key_file: Option<&Path>,
    server_name: Option<&str>,
) -> Result<UpstreamTls, String> {
    let provider = provider();
    let ca = ca.ok_or("tls:// needs ca= (the CA bundle the device certificate chains to)")?;
    let roots = roots("upstream ca", ca)?;
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| file_error("upstream ca", ca, e))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(TlsVersion::V1_2))
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_webpki_verifier(verifier);
    let config = match (cert, key_file) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(certs("upstream cert", c)?, key("upstream key", k)?)
            .map_err(|e| file_error("upstream key", k, format!("does not fit cert: {e}")))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls:// takes cert= and key= together".to_owned()),
    };
    let name = server_name.unwrap_or(host).to_owned();
    let server_name =
        ServerName::try_from(name.clone()).map_err(|e| format!("server_name `{name}`: {e}"))?;
    Ok(UpstreamTls {
        config: Arc::new(config),
        server_name,
    })
}

/// What a session knows of its TLS client (every event of the session carries it).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// The role; `None` is the null role.
    pub(crate) role: Option<Arc<str>>,
    /// Why there is no role, when there is none.
    pub(crate) no_role: Option<NoRole>,
    pub(crate) subject: Arc<str>,
    pub(crate) fingerprint: Arc<str>,
    /// Whether the handshake resumed an earlier session.
    pub(crate) resumed: bool,
}

/// Why a client's handshake failed: the `reason` and `message` of its `connection` record.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

/// Runs the server handshake on `socket`, bounded by `limit`.
pub(crate) async fn accept(
    config: Arc<ServerConfig>,
    socket: TcpStream,
    limit: Duration,
) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, Peer), Refused> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = match tokio::time::timeout(limit, acceptor.accept(socket)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(refusal(&e)),
        Err(_) => {
            return Err(Refused {
                reason: "tls_handshake_timeout",
                message: format!("the TLS handshake did not complete within {limit:?}"),
            })
        }
    };
    let (_, conn) = stream.get_ref();
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    // The verifier required a certificate; rustls keeps it with a resumed session too.
    let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
        return Err(Refused {
            reason: "no_client_certificate",
            message: "the client presented no certificate".to_owned(),
        });
    };
    let cert = read_leaf(leaf);
    let (role, no_role) = match cert.role {
        Ok(r) => (Some(Arc::from(r.as_str())), None),
        Err(why) => (None, Some(why)),
    };
    Ok((
        stream,
        Peer {
            role,
            no_role,
            subject: cert.subject.into(),
            fingerprint: cert.fingerprint.into(),
            resumed,
        },
    ))
}

/// The record of a failed handshake, from the error rustls gave.
fn refusal(e: &std::io::Error) -> Refused {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let reason = match inner {
        Some(rustls::Error::NoCertificatesPresented) => "no_client_certificate",
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate_expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate_not_yet_valid"
            }
            CertificateError::Revoked => "certificate_revoked",
            CertificateError::UnknownIssuer => "certificate_unknown_issuer",
            CertificateError::UnknownRevocationStatus => "certificate_revocation_unknown",
            CertificateError::BadSignature => "certificate_bad_signature",
            _ => "certificate_invalid",
        },
        Some(rustls::Error::InvalidMessage(_)) => "not_tls",
        Some(rustls::Error::PeerIncompatible(_)) => "tls_incompatible",
        Some(rustls::Error::AlertReceived(_)) => "tls_alert_received",
        Some(_) => "tls_handshake_failed",
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => "tls_handshake_eof",
        None => "tls_handshake_failed",
    };
    Refused {
        reason,
        message: format!("TLS handshake refused: {e}"),
    }
}
