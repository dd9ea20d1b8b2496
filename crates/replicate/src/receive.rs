//! The receive agent (DMZ side): verifies datagrams into the image and serves the image as a
//! read-only Modbus TCP server under the same unit ids and addresses.
//!
//! The agent never sends a byte towards the transmit side: its UDP socket is only read. The
//! replica server answers FC 1-4 from the image; every other function (writes, diagnostics,
//! anything else) gets 0x01, and a block older than its `max_age` gets 0x0B (see [`Image`]).
//!
//! Every gap, bad tag, replay, foreign datagram and staleness change is an alert: a tracing
//! warning and an `alert` record on the receive side's own audit chain. Under a flood (a
//! forger sending thousands of datagrams a second) records of one reason are aggregated: the
//! first is written at once, the rest within the next second as one record with `count`.
//! Refused requests on the replica are `request` records with decision `deny`.
//!
//! With a `tls:` block the replica speaks Modbus/TCP Security with the gateway's own listener
//! configuration (`zonegate_gateway::mbaps`: mutual TLS against `client_ca`, the CRL,
//! `min_version`): an established session is a `connection` record with the client's role,
//! subject and fingerprint (which its denials carry too), a refused handshake a `connection`
//! record with the gateway's reason (aggregated like alerts).
//!
//! With a state file ([`ReceiveOptions::state`]) the epoch and highest sequence number
//! accepted are saved (atomically, at most every 100 ms when they changed, and at stop) and
//! restored at start, so a datagram captured before a restart is still `replayed` after it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{watch, Semaphore};
use zonegate_audit::{AuditHandle, Decision, Event, Kind as EventKind};
use zonegate_gateway::mbaps::{self, ClientIdentity, ServerConfig};
use zonegate_modbus::{
    tcp, CoilValues, ExceptionCode, RegisterValues, Request, Response, TcpDeframer, MAX_TCP_ADU_LEN,
};
use zonegate_policy::{ReplicaTable, Replication};

use crate::auth::VerifyKey;
use crate::datagram::{stream_id, MAX_DATAGRAM_LEN};
use crate::image::Image;
use crate::state::{ReplayState, StateError};
use crate::verify::{Outcome, Receiver};

/// How often staleness is checked and aggregated alerts are flushed.
const TICK: Duration = Duration::from_millis(100);
/// Aggregation interval of alerts of one reason.
const AGGREGATE: Duration = Duration::from_secs(1);
/// A replica client idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A TLS handshake of a replica client must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receive agent runs with besides the model: the TLS listener configuration and
/// the replay state file.
#[derive(Clone, Default)]
pub struct ReceiveOptions {
    /// Serve the replica over Modbus/TCP Security (`mbaps::server_config` of the `tls:`
    /// block); `None`: plaintext Modbus/TCP.
    pub tls: Option<Arc<ServerConfig>>,
    /// Keep the replay window's position in this file (see `state.rs`).
    pub state: Option<PathBuf>,
}

/// Who is on the other end of a replica connection.
struct Client {
    addr: SocketAddr,
    tls: Option<ClientIdentity>,
}

/// What the receive side has seen, for the probe and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveCounters {
    /// Datagrams applied.
    pub accepted: u64,
    /// Repeats dropped.
    pub duplicates: u64,
    /// Datagrams rejected.
    pub rejected: u64,
    /// Sequence numbers lost.
    pub lost: u64,
    /// Alerts raised (before aggregation).
    pub alerts: u64,
}

struct Shared {
    replication: Replication,
    receiver: Mutex<Receiver>,
    audit: AuditHandle,
    alerts: Mutex<Alerts>,
    started: Instant,
    state: Option<PathBuf>,
    /// The position last saved to `state`.
    saved: Mutex<Option<(u64, u64)>>,
}

#[derive(Default)]
struct Alerts {
    raised: u64,
    /// reason -> (last written, pending count, last message, kind)
    pending: BTreeMap<&'static str, (Instant, u64, String, EventKind)>,
}

impl Shared {
    fn receiver(&self) -> MutexGuard<'_, Receiver> {
        // A panic while holding the lock cannot leave the image half-written (apply is one
        // assignment per field); keep serving.
        self.receiver.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn alert(&self, reason: &'static str, src: Option<SocketAddr>, message: String) {
        tracing::warn!(replication = %self.replication.id, reason, %message, "replication alert");
        self.aggregated(EventKind::Alert, reason, src, message);
    }

    /// Writes the first record of `reason` at once, the rest within [`AGGREGATE`] as one.
    fn aggregated(
        &self,
        kind: EventKind,
        reason: &'static str,
        src: Option<SocketAddr>,
        message: String,
    ) {
        let now = Instant::now();
        let mut a = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        if kind == EventKind::Alert {
            a.raised += 1;
        }
        match a.pending.get_mut(reason) {
            Some((last, count, msg, _)) if now.duration_since(*last) < AGGREGATE => {
                *count += 1;
                *msg = message;
            }
            _ => {
                a.pending.insert(reason, (now, 0, String::new(), kind));
                drop(a);
                self.record_alert(kind, reason, src, message, None);
            }
        }
    }

    /// Saves the replay window's position when it moved since the last save.
    fn save_state(&self) {
        let Some(path) = &self.state else {
            return;
        };
        let (position, stream) = {
            let rx = self.receiver();
            (rx.position(), rx.stream())
        };
        let Some((epoch, seq)) = position else {
            return;
        };
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if *saved == Some((epoch, seq)) {
            return;
        }
        let state = ReplayState { stream, epoch, seq };
        match state.save(path) {
            Ok(()) => *saved = Some((epoch, seq)),
            Err(e) => {
                drop(saved);
                self.alert(
                    "state_not_saved",
                    None,
                    format!(
                        "cannot save the replay state {}: {e}; after a restart, datagrams \
                         accepted since the last save could be replayed once",
                        path.display()
                    ),
                );
            }
        }
    }

    fn flush_alerts(&self) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut a = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            for (reason, (last, count, msg, kind)) in a.pending.iter_mut() {
                if *count > 0 && now.duration_since(*last) >= AGGREGATE {
                    due.push((*kind, *reason, *count, std::mem::take(msg)));
                    *count = 0;
                    *last = now;
                }
            }
        }
        for (kind, reason, count, msg) in due {
            self.record_alert(kind, reason, None, msg, Some(count));
        }
    }

    fn record_alert(
        &self,
        kind: EventKind,
        reason: &'static str,
        src: Option<SocketAddr>,
        message: String,
        count: Option<u64>,
    ) {
        let mut e = Event::notice(kind, message);
        e.conduit = Some(self.replication.id.as_str().into());
        e.reason = Some(reason.into());
        e.src = src.map(|s| s.to_string().into());
        e.count = count;
        if let Err(err) = self.audit.record(e, true) {
            tracing::error!(error = %err, "cannot queue a replication audit record");
        }
    }
}

/// Why the receive agent could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The UDP socket could not be bound.
    BindUdp(std::io::Error),
    /// The replica server could not listen.
    Listen(std::io::Error),
    /// The replay state file cannot be used.
    State(StateError),
}

impl std::fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BindUdp(e) => write!(f, "cannot bind the replication UDP socket: {e}"),
            Self::Listen(e) => write!(f, "cannot listen for replica clients: {e}"),
            Self::State(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReceiveError {}

/// The receive agent of one replication, bound and ready.
pub struct ReceiveAgent {
    shared: Arc<Shared>,
    udp: UdpSocket,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
}

/// A handle on a running receive agent.
#[derive(Clone)]
pub struct ReceiveHandle {
    shared: Arc<Shared>,
}

impl ReceiveHandle {
    /// The counters so far.
    pub fn counters(&self) -> ReceiveCounters {
        let c = self.shared.receiver().counters();
        let alerts = self
            .shared
            .alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .raised;
        ReceiveCounters {
            accepted: c.accepted,
            duplicates: c.duplicates,
            rejected: c.rejected,
            lost: c.lost,
            alerts,
        }
    }

    /// The source time (µs since the Unix epoch) of the value held at an address.
    pub fn source_us(&self, unit: u8, table: ReplicaTable, address: u16) -> Option<u64> {
        self.shared
            .receiver()
            .image()
            .source_us(unit, table, address)
    }
}

impl ReceiveAgent {
    /// Binds `receive.bind` (UDP) and `receive.serve` (TCP), plaintext and without a state
    /// file. `audit` is the receive side's own chain.
    pub async fn bind(
        replication: Replication,
        key: VerifyKey,
        audit: AuditHandle,
    ) -> Result<Self, ReceiveError> {
        Self::bind_with(replication, key, audit, ReceiveOptions::default()).await
    }

    /// [`ReceiveAgent::bind`] with TLS and a replay state file: the state is read (and the
    /// window restored) before anything is received.
    pub async fn bind_with(
        replication: Replication,
        key: VerifyKey,
        audit: AuditHandle,
        options: ReceiveOptions,
    ) -> Result<Self, ReceiveError> {
        let udp = UdpSocket::bind(replication.receive.bind)
            .await
            .map_err(ReceiveError::BindUdp)?;
        let listener = TcpListener::bind(replication.receive.serve)
            .await
            .map_err(ReceiveError::Listen)?;
        let image = Image::new(&replication);
        let stream = stream_id(&replication);
        let mut receiver = Receiver::new(key, stream, image, replication.blocks.len());
        let mut saved = None;
        if let Some(path) = &options.state {
            if let Some(st) = ReplayState::load(path, stream).map_err(ReceiveError::State)? {
                receiver.restore(st.epoch, st.seq);
                saved = Some((st.epoch, st.seq));
                tracing::info!(
                    replication = %replication.id, epoch = st.epoch, seq = st.seq,
                    "replay window restored: older datagrams are rejected as replayed"
                );
            }
        }
        Ok(Self {
            shared: Arc::new(Shared {
                replication,
                receiver: Mutex::new(receiver),
                audit,
                alerts: Mutex::new(Alerts::default()),
                started: Instant::now(),
                state: options.state,
                saved: Mutex::new(saved),
            }),
            udp,
            listener,
            tls: options.tls,
        })
    }

    /// The UDP address datagrams are read on.
    pub fn udp_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The replica's Modbus TCP address.
    pub fn serve_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle for counters and the image.
    pub fn handle(&self) -> ReceiveHandle {
        ReceiveHandle {
            shared: self.shared.clone(),
        }
    }

    /// Receives, checks staleness and serves until `stop` becomes true.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let Self {
            shared,
            udp,
            listener,
            tls,
        } = self;
        let udp_task = tokio::spawn(udp_loop(shared.clone(), udp, stop.clone()));
        let tick_task = tokio::spawn(tick_loop(shared.clone(), stop.clone()));
        serve_loop(shared.clone(), listener, tls, stop).await;
        let _ = udp_task.await;
        let _ = tick_task.await;
        shared.save_state();
        shared.flush_alerts();
    }
}

async fn udp_loop(shared: Arc<Shared>, udp: UdpSocket, mut stop: watch::Receiver<bool>) {
    // One byte more than the largest datagram, so an oversize one is seen as such.
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1];
    loop {
        let (n, from) = tokio::select! {
            r = udp.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // Never a busy loop on a persistent socket error.
                    tracing::debug!(error = %e, "replication receive failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let outcome = shared.receiver().receive(&buf[..n], Instant::now());
        match outcome {
            Outcome::Accepted {
                lost, restarted, ..
            } => {
                if restarted {
                    shared.alert(
                        "transmit_restarted",
                        Some(from),
                        "the transmit side started a new epoch (restart)".into(),
                    );
                }
                if lost > 0 {
                    shared.alert(
                        "gap",
                        Some(from),
                        format!("{lost} datagram(s) lost on the way"),
                    );
                }
            }
            Outcome::Duplicate => {}
            Outcome::Rejected(r) => {
                if r.is_alert() {
                    shared.alert(
                        r.reason(),
                        Some(from),
                        format!("datagram of {n} bytes rejected: {r:?}"),
                    );
                }
            }
        }
    }
}

async fn tick_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        // Before data can have arrived, "never received" is not yet an alert.
        let longest = shared
            .replication
            .blocks
            .iter()
            .map(|b| shared.replication.receive.max_age_for(b.period))
            .max()
            .unwrap_or(Duration::from_secs(1));
        let startup_over = now.duration_since(shared.started) > longest;
        let changes = shared.receiver().stale_changes(now, startup_over);
        for c in changes {
            let (reason, what) = if c.stale {
                ("stale", "is older than max_age: reads answer 0x0B")
            } else {
                ("fresh", "is fresh again")
            };
            shared.alert(reason, None, format!("block {} {what}", c.block));
        }
        shared.save_state();
        shared.flush_alerts();
    }
}

async fn serve_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(shared.replication.receive.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "replica accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => {
                    let client = Client {
                        addr: peer,
                        tls: None,
                    };
                    serve_client(shared, stream, client, stop).await;
                }
                Some(config) => match mbaps::accept(config, stream, HANDSHAKE_TIMEOUT).await {
                    Ok((stream, identity)) => {
                        record_established(&shared, peer, &identity);
                        let client = Client {
                            addr: peer,
                            tls: Some(identity),
                        };
                        serve_client(shared, stream, client, stop).await;
                    }
                    Err(refused) => {
                        tracing::info!(%peer, "{}", refused.message);
                        shared.aggregated(
                            EventKind::Connection,
                            refused.reason,
                            Some(peer),
                            refused.message,
                        );
                    }
                },
            }
            drop(permit);
        });
    }
}

/// Records an established TLS session of a replica client (as the gateway does).
fn record_established(shared: &Shared, peer: SocketAddr, id: &ClientIdentity) {
    let mut e = Event::notice(
        EventKind::Connection,
        match &id.role {
            Some(r) => format!("TLS session established with the replica, role {r}"),
            None => "TLS session established with the replica, no role".to_owned(),
        },
    );
    e.conduit = Some(shared.replication.id.as_str().into());
    e.src = Some(peer.to_string().into());
    e.reason = Some("tls_established".into());
    e.role = id.role.as_deref().map(Into::into);
    e.peer_subject = Some(id.subject.as_str().into());
    e.peer_fingerprint = Some(id.fingerprint.as_str().into());
    if let Err(err) = shared.audit.record(e, false) {
        tracing::error!(error = %err, "cannot queue a replica audit record");
    }
}

/// Answers one request PDU from the image.
fn answer(shared: &Shared, unit: u8, pdu: &[u8], peer: &Client) -> Vec<u8> {
    let fc = pdu.first().copied().unwrap_or(0);
    let request = match Request::parse(pdu) {
        Ok(r) => r,
        Err(e) => {
            return exception_pdu(
                fc,
                e.exception_code().unwrap_or(ExceptionCode::IllegalFunction),
            )
        }
    };
    let now = Instant::now();
    let result = {
        let rx = shared.receiver();
        let image = rx.image();
        match request {
            Request::ReadCoils(r) => {
                image.read_bits(unit, ReplicaTable::Coils, r.start(), r.count(), now)
            }
            Request::ReadDiscreteInputs(r) => {
                image.read_bits(unit, ReplicaTable::Discrete, r.start(), r.count(), now)
            }
            Request::ReadHoldingRegisters(r) => {
                image.read_registers(unit, ReplicaTable::Holding, r.start(), r.count(), now)
            }
            Request::ReadInputRegisters(r) => {
                image.read_registers(unit, ReplicaTable::Input, r.start(), r.count(), now)
            }
            _ => {
                drop(rx);
                record_denial(shared, unit, fc, &request, peer);
                return exception_pdu(fc, ExceptionCode::IllegalFunction);
            }
        }
    };
    let values = match result {
        Ok(v) => v,
        Err(code) => return exception_pdu(fc, code),
    };
    let response = match request {
        Request::ReadCoils(r) => CoilValues::new(&values, r.count()).map(Response::ReadCoils),
        Request::ReadDiscreteInputs(r) => {
            CoilValues::new(&values, r.count()).map(Response::ReadDiscreteInputs)
        }
        Request::ReadHoldingRegisters(_) => {
            RegisterValues::new(&values).map(Response::ReadHoldingRegisters)
        }
        _ => RegisterValues::new(&values).map(Response::ReadInputRegisters),
    };
    let mut out = vec![0u8; 253];
    match response.map(|r| r.encode(&mut out)) {
        Some(Ok(n)) => {
            out.truncate(n);
            out
        }
        _ => exception_pdu(fc, ExceptionCode::ServerDeviceFailure),
    }
}

fn record_denial(shared: &Shared, unit: u8, fc: u8, request: &Request<'_>, peer: &Client) {
    let mut e = Event::new(EventKind::Request);
    e.conduit = Some(shared.replication.id.as_str().into());
    e.src = Some(peer.addr.to_string().into());
    if let Some(id) = &peer.tls {
        e.role = id.role.as_deref().map(Into::into);
        e.peer_subject = Some(id.subject.as_str().into());
        e.peer_fingerprint = Some(id.fingerprint.as_str().into());
    }
    e.unit = Some(unit);
    e.fc = Some(fc);
    e.function = request.function().name().map(Into::into);
    e.access = Some(request.access().as_str().into());
    e.decision = Some(Decision::Deny);
    e.reason = Some("replica_is_read_only".into());
    e.exception = Some(ExceptionCode::IllegalFunction.to_u8());
    if let Err(err) = shared.audit.record(e, true) {
        tracing::error!(error = %err, "cannot queue a replica audit record");
    }
}

fn exception_pdu(fc: u8, code: ExceptionCode) -> Vec<u8> {
    vec![fc | 0x80, code.to_u8()]
}

async fn serve_client<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: Client,
    mut stop: watch::Receiver<bool>,
) {
    let mut deframer = TcpDeframer::new();
    let mut buf = [0u8; 1024];
    let mut unfed: Vec<u8> = Vec::new();
    let mut out = [0u8; MAX_TCP_ADU_LEN];
    loop {
        // Answer every whole ADU buffered, in order.
        loop {
            let (tid, unit, pdu) = match deframer.next_adu() {
                Ok(Some(adu)) => (adu.transaction_id(), adu.unit_id(), adu.pdu.to_vec()),
                Ok(None) => break,
                // A broken frame closes the connection (DESIGN.md, "What the wire sees").
                Err(_) => return,
            };
            let response = answer(&shared, unit.get(), &pdu, &peer);
            let Ok(n) = tcp::encode_adu(tid, unit, &response, &mut out) else {
                return;
            };
            // A TLS stream holds the record until flushed.
            if stream.write_all(&out[..n]).await.is_err() || stream.flush().await.is_err() {
                return;
            }
        }
        if !unfed.is_empty() {
            let taken = deframer.feed(&unfed);
            unfed.drain(..taken);
            if taken > 0 {
                continue;
            }
        }
        let got = tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => n,
            },
            _ = stop.changed() => return,
        };
        unfed.extend_from_slice(&buf[..got]);
    }
}
