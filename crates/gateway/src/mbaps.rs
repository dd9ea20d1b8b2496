//! The gateway's Modbus/TCP Security (mbaps) configuration for zonegate's other agents.
//!
//! The one-way replication's receive side serves its replica with the gateway's listener
//! settings (mutual TLS against `client_ca`, CRL, `min_version`, the role read from the client
//! certificate), and its transmit side reads a `tls://` device with the gateway's upstream
//! settings (`ca`, `cert`, `key`, `server_name`). This module is the public face of the
//! crate's `tls` module, so the build holds one TLS stack and one set of rules for it: a fix
//! there is a fix for every agent.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use zonegate_policy::{TlsListener, Upstream};

pub use rustls::{ClientConfig, ServerConfig};
pub use tokio_rustls::client::TlsStream as DeviceTlsStream;
pub use tokio_rustls::server::TlsStream as ClientTlsStream;

/// The listener configuration of a `tls:` block (files already resolved), exactly as the
/// gateway builds it: `Err` names the file and the problem.
pub fn server_config(t: &TlsListener) -> Result<Arc<ServerConfig>, String> {
    crate::tls::server_config(t)
}

/// The client side of a `tls://` upstream: what is verified and presented.
#[derive(Debug, Clone)]
pub struct DeviceTls {
    config: Arc<ClientConfig>,
    server_name: rustls_pki_types::ServerName<'static>,
    /// `host:port` to connect to.
    pub address: (String, u16),
}

impl DeviceTls {
    /// The configuration of a `tls://` upstream (files already resolved, see
    /// `Model::resolve_upstream`), as the gateway builds it; `Err` for another kind or a file
    /// that cannot be used.
    pub fn for_upstream(upstream: &Upstream) -> Result<Self, String> {
        let Upstream::Tls {
            host,
            port,
            ca,
            cert,
            key,
            server_name,
        } = upstream
        else {
            return Err(format!("upstream {upstream} is not tls://"));
        };
        let t = crate::tls::upstream_config(
            host,
            ca.as_deref(),
            cert.as_deref(),
            key.as_deref(),
            server_name.as_deref(),
        )?;
        Ok(Self {
            config: t.config,
            server_name: t.server_name,
            address: (host.clone(), *port),
        })
    }

    /// The handshake on a connected socket, bounded by `limit`: the device certificate must
    /// chain to `ca` and carry `server_name`.
    pub async fn connect(
        &self,
        socket: TcpStream,
        limit: Duration,
    ) -> Result<DeviceTlsStream<TcpStream>, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        match tokio::time::timeout(limit, connector.connect(self.server_name.clone(), socket)).await
        {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(format!("TLS handshake with the device failed: {e}")),
            Err(_) => Err(format!(
                "TLS handshake with the device did not complete within {limit:?}"
            )),
        }
    }
}

/// What a TLS client's certificate says, for its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The role (Modbus/TCP Security R-21); `None`: the null role.
    pub role: Option<String>,
    /// Subject of the leaf certificate (RFC 4514 form).
    pub subject: String,
    /// Lowercase hex SHA-256 of the leaf certificate (DER).
    pub fingerprint: String,
}

/// A refused handshake: the stable `reason` and the `message` of its `connection` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `no_client_certificate`, `certificate_unknown_issuer`, `not_tls`, ...
    pub reason: &'static str,
    /// For a person.
    pub message: String,
}

/// The server handshake of one client, bounded by `limit`, as the gateway runs it.
pub async fn accept(
    config: Arc<ServerConfig>,
    socket: TcpStream,
    limit: Duration,
) -> Result<(ClientTlsStream<TcpStream>, ClientIdentity), Refusal> {
    match crate::tls::accept(config, socket, limit).await {
        Ok((stream, peer)) => Ok((
            stream,
            ClientIdentity {
                role: peer.role.map(|r| r.to_string()),
                subject: peer.subject.to_string(),
                fingerprint: peer.fingerprint.to_string(),
            },
        )),
        Err(r) => Err(Refusal {
            reason: r.reason,
            message: r.message,
        }),
    }
}
