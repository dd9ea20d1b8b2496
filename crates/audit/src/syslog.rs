//! SIEM export: every record the writer has written is offered to a bounded queue
//! (`try_send`, never blocking the writer or the data path; a full queue drops the record and
//! counts it in `Stats::export_dropped`) and sent by an exporter thread as syslog.
//!
//! # Message format (RFC 5424)
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [zonegate@32473 seq="N" kind="K" decision="D" conduit="C" hash="H"] MSG
//! ```
//! - PRI = facility × 8 + severity; severity 3 (err) for `audit_failure`, 4 (warning) for `deny`,
//!   `policy_rejected`, an `alert` by its detector kind ([`alert_severity`]: 2-5), `audit_recovered`, `storage_low`, 5 (notice) for `would_deny` and lifecycle
//!   records, 6 (info) otherwise.
//! - TIMESTAMP is the record's `ts`; HOSTNAME the gateway identity (or `SyslogConfig::hostname`);
//!   PROCID the process id; MSGID the record `kind`.
//! - STRUCTURED-DATA: one element `zonegate@32473` (32473 is the documentation enterprise number
//!   of RFC 5612) with `seq`, `kind`, and when present `decision`, `conduit`, `hash`.
//! - When the log itself cannot be written, an `audit_failure` record (not chained: no `seq`,
//!   `prev`, `hash`) is sent here too, so the SIEM hears of the outage.
//! - MSG is the record's JSON line exactly as in the log file (so a SIEM can re-verify the hash
//!   chain of what it received).
//!
//! # Transports
//! - UDP (RFC 5426): one message per datagram.
//! - TCP (RFC 6587 octet counting): `LEN SP MESSAGE`, one persistent connection, reconnect at
//!   most once a second; messages that cannot be sent are dropped and counted.
//! - TLS (RFC 5425): the same framing inside TLS 1.2/1.3 (rustls, ring provider); the collector
//!   certificate must chain to a CA in `ca_file` and name `server_name` (default: the host part
//!   of `address`). With `client_cert` and `client_key` the gateway authenticates itself
//!   (mutual TLS).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::{SyslogConfig, SyslogTransport};
use crate::error::AuditError;
use crate::event::{Decision, Event, Kind};
use crate::writer::Counters;

const IO_TIMEOUT: Duration = Duration::from_secs(5);
const RECONNECT_GAP: Duration = Duration::from_secs(1);
/// How long a new TLS connection listens for a rejection alert after the handshake.
const ALERT_WAIT: Duration = Duration::from_millis(100);
/// After shutdown starts, the exporter sends what is queued for at most this long.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The writer's side of the export queue.
pub(crate) struct Exporter {
    tx: Option<Sender<String>>,
    closing: Arc<std::sync::Mutex<Option<Instant>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Exporter {
    /// Validates the config (TLS trust anchors) and starts the exporter thread.
    pub(crate) fn start(
        cfg: &SyslogConfig,
        gateway: &str,
        counters: Arc<Counters>,
    ) -> Result<Self, AuditError> {
        let tls = match cfg.transport {
            SyslogTransport::Tls => Some(tls_config(cfg)?),
            _ => None,
        };
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue.max(1));
        let closing = Arc::new(std::sync::Mutex::new(None));
        let mut conn = Conn {
            closing: Arc::clone(&closing),
            cfg: cfg.clone(),
            hostname: sanitize(cfg.hostname.as_deref().unwrap_or(gateway), 255),
            tls,
            link: None,
            last_attempt: None,
            counters: Arc::clone(&counters),
        };
        let thread = thread::Builder::new()
            .name("zonegate-audit-syslog".into())
            .spawn(move || {
                crate::priority::run_in_background();
                conn.run(&rx)
            })
            .map_err(|e| AuditError::Config(format!("cannot spawn the syslog exporter: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            closing,
            thread: Some(thread),
            counters,
        })
    }

    /// Offers one JSON line (with its `\n`); drops and counts it when the queue is full.
    pub(crate) fn offer(&self, line: String) {
        if let Some(tx) = &self.tx {
            match tx.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.counters.export_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Closes the queue and waits for the exporter to send what is queued.
    pub(crate) fn finish(mut self) {
        if let Ok(mut c) = self.closing.lock() {
            *c = Some(Instant::now());
        }
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tls_config(cfg: &SyslogConfig) -> Result<Arc<rustls::ClientConfig>, AuditError> {
    let ca = cfg.ca_file.as_deref().ok_or_else(|| {
        AuditError::Config("audit.syslog: transport tls needs ca_file (PEM)".into())
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let iter = CertificateDer::pem_file_iter(ca)
        .map_err(|e| AuditError::Config(format!("{}: cannot read CA file: {e}", ca.display())))?;
    for cert in iter {
        let cert = cert.map_err(|e| {
            AuditError::Config(format!("{}: bad PEM certificate: {e}", ca.display()))
        })?;
        roots.add(cert).map_err(|e| {
            AuditError::Config(format!("{}: unusable CA certificate: {e}", ca.display()))
        })?;
    }
    if roots.is_empty() {
        return Err(AuditError::Config(format!(
            "{}: no certificate in CA file",
            ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AuditError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let config = match (&cfg.client_cert, &cfg.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    AuditError::Config(format!("{}: bad client certificate: {e}", cert.display()))
                })?;
            if chain.is_empty() {
                return Err(AuditError::Config(format!(
                    "{}: no certificate in client_cert",
                    cert.display()
                )));
            }
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                AuditError::Config(format!("{}: bad client key: {e}", key.display()))
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| AuditError::Config(format!("client certificate and key: {e}")))?
        }
        _ => {
            return Err(AuditError::Config(
                "audit.syslog: client_cert and client_key go together".into(),
            ))
        }
    };
    Ok(Arc::new(config))
}

enum Link {
    Udp(UdpSocket, std::net::SocketAddr),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

struct Conn {
    closing: Arc<std::sync::Mutex<Option<Instant>>>,
    cfg: SyslogConfig,
    hostname: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    link: Option<Link>,
    last_attempt: Option<Instant>,
    counters: Arc<Counters>,
}

impl Conn {
    fn run(&mut self, rx: &Receiver<String>) {
        while let Ok(line) = rx.recv() {
            let late = self
                .closing
                .lock()
                .ok()
                .and_then(|c| *c)
                .is_some_and(|t| t.elapsed() > DRAIN_LIMIT);
            if late {
                // Shutting down and the collector is slow: drop the rest, counted.
                self.counters.export_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let msg = format_message(&self.cfg, &self.hostname, line.trim_end_matches('\n'));
            match self.send(msg.as_bytes()) {
                Ok(()) => {
                    self.counters.export_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counters.export_errors.fetch_add(1, Ordering::Relaxed);
                    self.counters.export_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, collector = %self.cfg.address, "syslog export failed");
                }
            }
        }
        if let Some(Link::Tls(mut s)) = self.link.take() {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        if let Some(t) = self.last_attempt {
            if t.elapsed() < RECONNECT_GAP {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "collector unreachable (waiting before reconnecting)",
                ));
            }
        }
        self.last_attempt = Some(Instant::now());
        let addr = self
            .cfg
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("{}: no address", self.cfg.address)))?;
        let link = match self.cfg.transport {
            SyslogTransport::Udp => {
                let bind = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                Link::Udp(UdpSocket::bind(bind)?, addr)
            }
            SyslogTransport::Tcp | SyslogTransport::Tls => {
                let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                match &self.tls {
                    None => Link::Tcp(s),
                    Some(cfg) => {
                        let name = self
                            .cfg
                            .server_name
                            .clone()
                            .unwrap_or_else(|| host_part(&self.cfg.address).to_owned());
                        let name = ServerName::try_from(name)
                            .map_err(|e| io::Error::other(format!("bad server name: {e}")))?;
                        let conn = rustls::ClientConnection::new(Arc::clone(cfg), name)
                            .map_err(io::Error::other)?;
                        let mut stream = rustls::StreamOwned::new(conn, s);
                        // Finish the handshake now so certificate errors surface here.
                        while stream.conn.is_handshaking() {
                            stream.conn.complete_io(&mut stream.sock)?;
                        }
                        // With TLS 1.3 a collector that rejects our certificate says so only
                        // after the handshake: listen briefly so that shows up as a failed
                        // connection instead of records silently lost.
                        stream.sock.set_read_timeout(Some(ALERT_WAIT))?;
                        let mut byte = [0u8; 1];
                        match stream.read(&mut byte) {
                            Ok(0) => {
                                return Err(io::Error::new(
                                    io::ErrorKind::ConnectionAborted,
                                    "collector closed the TLS connection",
                                ))
                            }
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                ) => {}
                            Err(e) => return Err(e),
                        }
                        stream.sock.set_read_timeout(Some(IO_TIMEOUT))?;
                        Link::Tls(Box::new(stream))
                    }
                }
            }
        };
        self.link = Some(link);
        self.last_attempt = None;
        Ok(())
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.link.is_none() {
            self.connect()?;
        }
        let result = match &mut self.link {
            Some(Link::Udp(sock, addr)) => sock.send_to(msg, *addr).map(|_| ()),
            Some(Link::Tcp(s)) => write_framed(s, msg),
            Some(Link::Tls(s)) => write_framed(s.as_mut(), msg),
            None => Err(io::Error::other("not connected")),
        };
        if result.is_err() {
            self.link = None;
            self.last_attempt = Some(Instant::now());
        }
        result
    }
}

fn write_framed<W: Write>(w: &mut W, msg: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(msg.len() + 8);
    frame.extend_from_slice(msg.len().to_string().as_bytes());
    frame.push(b' ');
    frame.extend_from_slice(msg);
    w.write_all(&frame)?;
    w.flush()
}

fn host_part(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(h, _)| h)
}

/// Printable US-ASCII without spaces, at most `max` bytes, `-` when empty (RFC 5424 header).
fn sanitize(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if out.is_empty() {
        "-".into()
    } else {
        out
    }
}

fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The syslog severity of a monitor alert, by its detector kind (the `reason` of an `alert`
/// record): 2 (critical) for a device told to stop answering, 3 (error) for restarts, scans
/// and writes outside the baseline, 5 (notice) for reconnaissance reads and rate or capture
/// notes, 4 (warning) for the rest and for the gateway's own response alerts. The monitor
/// crate's detector table carries the same numbers (a gateway test compares them).
pub fn alert_severity(reason: &str) -> u8 {
    match reason {
        "diagnostics_listen_only" => 2,
        "diagnostics_restart" | "function_code_scan" | "address_scan" | "write_out_of_baseline" => {
            3
        }
        "device_identification"
        | "report_server_id"
        | "poll_rate_change"
        | "stream_gap"
        | "truncated_capture" => 5,
        _ => 4,
    }
}

fn severity(e: &Event) -> u8 {
    match (e.kind, e.decision) {
        (Kind::AuditFailure, _) => 3,
        (Kind::Alert, _) => e.reason.as_deref().map_or(4, alert_severity),
        (Kind::PolicyRejected | Kind::AuditRecovered | Kind::StorageLow, _) => 4,
        (_, Some(Decision::Deny)) => 4,
        (_, Some(Decision::WouldDeny)) => 5,
        (Kind::Genesis | Kind::Start | Kind::Stop | Kind::PolicyLoad | Kind::PolicyReload, _) => 5,
        _ => 6,
    }
}

/// Builds the RFC 5424 message for one JSON line (see the module docs).
pub fn format_message(cfg: &SyslogConfig, hostname: &str, json_line: &str) -> String {
    let event: Event = serde_json::from_str(json_line).unwrap_or_default();
    let pri = u16::from(cfg.facility.min(23)) * 8 + u16::from(severity(&event));
    let ts = event
        .ts
        .as_deref()
        .map_or_else(|| "-".to_owned(), |t| sanitize(t, 64));
    let mut sd = String::from("[zonegate@32473");
    if let Some(seq) = event.seq {
        sd.push_str(&format!(" seq=\"{seq}\""));
    }
    sd.push_str(&format!(" kind=\"{}\"", event.kind.as_str()));
    if let Some(d) = event.decision {
        sd.push_str(&format!(" decision=\"{}\"", d.as_str()));
    }
    if let Some(c) = &event.conduit {
        sd.push_str(&format!(" conduit=\"{}\"", sd_escape(c)));
    }
    if let Some(h) = &event.hash {
        sd.push_str(&format!(" hash=\"{}\"", sd_escape(h)));
    }
    sd.push(']');
    format!(
        "<{pri}>1 {ts} {host} {app} {pid} {msgid} {sd} {json_line}",
        host = sanitize(hostname, 255),
        app = sanitize(&cfg.app_name, 48),
        pid = std::process::id(),
        msgid = sanitize(event.kind.as_str(), 32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_rfc5424() {
        let cfg = SyslogConfig::new(SyslogTransport::Udp, "127.0.0.1:514");
        let line = r#"{"ts":"2026-01-01T00:00:00.000001Z","seq":4,"kind":"request","conduit":"C\"1","decision":"deny","prev":"00","hash":"ab"}"#;
        let m = format_message(&cfg, "gw 1", line);
        assert!(
            m.starts_with("<108>1 2026-01-01T00:00:00.000001Z gw1 zonegate "),
            "{m}"
        );
        assert!(m.contains(
            r#"[zonegate@32473 seq="4" kind="request" decision="deny" conduit="C\"1" hash="ab"] {"#
        ));
        assert!(m.ends_with(line));
    }

    #[test]
    fn host_part_handles_v6() {
        assert_eq!(host_part("[::1]:6514"), "::1");
        assert_eq!(host_part("log.example:6514"), "log.example");
    }

    #[test]
    fn framing_is_octet_counting() {
        let mut out = Vec::new();
        write_framed(&mut out, b"hello").unwrap();
        assert_eq!(out, b"5 hello");
    }
}
