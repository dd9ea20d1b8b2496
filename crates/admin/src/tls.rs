//! HTTPS with mutual TLS for the admin endpoint (`admin: {tls: {cert, key, client_ca}}`).
//!
//! ```text
//!  TcpListener ─accept─▶ handshake task (one per connection, ≤ MAX_HANDSHAKES at once,
//!                        bounded by HANDSHAKE_LIMIT) ─ok─▶ channel ─▶ axum::serve
//!                                                   └─refused─▶ zonegate_admin_tls_refused_total
//! ```
//!
//! The rustls configuration is the gateway's own listener configuration
//! ([`zonegate_gateway::mbaps::server_config`]): the same PEM parsing, the same client
//! verifier (no `allow_unauthenticated`: a client without a certificate chaining to
//! `client_ca` is refused in the handshake), the same CRL and `min_version` handling, the one
//! TLS stack of the build. Only the ALPN list is the admin's own (`http/1.1`).
//!
//! Handshakes run in their own tasks, not in the accept loop, so one client that stalls its
//! handshake cannot hold up the operators behind it; their number is bounded, and past it the
//! listener stops accepting (the kernel backlog holds the newcomers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use zonegate_gateway::mbaps::{self, ClientTlsStream, ServerConfig};
use zonegate_gateway::Metrics;
use zonegate_policy::TlsListener;

/// Longest a client may take over its handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once.
const MAX_HANDSHAKES: usize = 32;

/// The admin server's rustls configuration from a `tls:` block whose paths are already
/// resolved: `Err` names the file and the problem.
pub fn tls_config(t: &TlsListener) -> Result<Arc<ServerConfig>, String> {
    let shared = mbaps::server_config(t)?;
    let mut config = (*shared).clone();
    // HTTP/1.1 only (axum is built with `http1`): say so, so no client tries h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The connections whose handshake succeeded, as axum's listener.
pub(crate) struct Incoming {
    rx: mpsc::Receiver<(ClientTlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for Incoming {
    type Io = ClientTlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The acceptor stopped (the endpoint is being stopped): serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Starts the accept loop on `listener`: returns the listener axum serves and the task.
pub(crate) fn incoming(
    listener: TcpListener,
    addr: SocketAddr,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
) -> (Incoming, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
    let task = tokio::spawn(accept_loop(listener, config, metrics, tx));
    (Incoming { rx, addr }, task)
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<(ClientTlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let last_log = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (socket, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin.
                tracing::warn!("admin endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (config, metrics, tx, last_log) = (
            Arc::clone(&config),
            Arc::clone(&metrics),
            tx.clone(),
            Arc::clone(&last_log),
        );
        tokio::spawn(async move {
            let _permit = permit;
            match mbaps::accept(config, socket, HANDSHAKE_LIMIT).await {
                Ok((stream, who)) => {
                    tracing::debug!(%peer, subject = %who.subject, "admin endpoint: client certificate accepted");
                    let _ = tx.send((stream, peer)).await;
                }
                Err(refused) => {
                    metrics.admin_tls_refused(refused.reason);
                    // At most one line a second: a scan must not flood the journal.
                    let now = started.elapsed().as_secs() + 1;
                    if last_log.swap(now, Ordering::Relaxed) != now {
                        tracing::warn!(%peer, reason = refused.reason, "admin endpoint: {}", refused.message);
                    }
                }
            }
        });
    }
}
