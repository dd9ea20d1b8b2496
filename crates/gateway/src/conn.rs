//! One client session: the data path of the gateway.
//!
//! ```text
//!   client ──bytes──▶ deframe (codec) ──▶ Request::parse ──▶ decide ──▶ [durable audit] ──▶ pooled link
//!   client ◀──in order── slot queue ◀── match by upstream tid + Response::parse_for ◀── pooled link
//! ```
//!
//! Each accepted client connection runs as ONE tokio task. It owns the client socket and, while
//! it has requests at the device, a device connection borrowed from the conduit's pool
//! (upstream.rs); it gives the connection back once every answer is in. The only shared state
//! it touches is the conduit's current policy (an `ArcSwap` load per read batch), the pool and
//! the audit handle.
//!
//! Pipelining: up to `max_in_flight` requests of one client may be outstanding, answered in
//! request order by the slot queue (slots.rs). Requests go upstream under the connection's own
//! transaction ids, so a late or forged device response never matches a slot: it is dropped and
//! reported. A response that does carry a request's id but does not answer it (wrong function,
//! byte count, unit) is answered to the client at once with 0x04 and reported.
//!
//! Lock-out: only an allowed request counts as activity for the idle timer; a session that has
//! made none is closed after `unauthenticated_idle_timeout`.
//!
//! Writes to the sockets are batched: all requests of one client read go upstream in one write,
//! all answers that became ready go back in one write.
//!
//! Backpressure: answers go to the client without waiting (`write_now`). What its socket does
//! not take stays in `cout`, and until the client has taken it the session reads no request
//! from it and takes none it already sent: a client that never reads its answers gets nothing
//! more served, and the device connection goes back to the pool as soon as its answers are in
//! (never held while the session waits for the client). A client that takes none of its
//! answers for `idle_timeout` is closed and recorded (`client_not_reading`).
//!
//! This file holds the session's state and its loop; [`request`] the request path (decide,
//! record, answer) and [`device`] the device side (borrow, write, match, time out).
//!
//! Modbus/TCP Security: on a TLS listener the session first runs the handshake (tls.rs),
//! bounded by `unauthenticated_idle_timeout`; a refused handshake is one `connection` record
//! with why. Then the same data path runs on the TLS stream ([`ClientStream`]): the ADU
//! stream inside TLS is deframed like TCP, and the client certificate's role goes into every
//! decision (R-31: a role no rule allows gets 0x01) and, with the certificate's subject and
//! fingerprint, into every event of the session.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use zonegate_audit::{Decision, Event, Kind};
use zonegate_modbus::tcp::decode_adu;

use crate::io::{ClientStream, Stream};
use crate::metrics::{Metrics, SessionMeter};
use crate::slots::{SlotState, Slots, MAX_PDU};
use crate::state::{ConduitShared, ConduitState};
use crate::tls::Peer;
use crate::upstream::Link;

mod device;
mod request;

use device::read_upstream;

/// Read chunk for both sockets.
const READ_CHUNK: usize = 4096;

#[cfg(any(target_os = "linux", target_os = "android"))]
/// Most bytes of answers a client's socket holds unsent before it stops taking more
/// (`TCP_NOTSENT_LOWAT`). Without it the kernel grows the send buffer of a client that never
/// reads to megabytes, and the session goes on serving it: 10,000 answers for one such client
/// in the regression test, and gigabytes of kernel memory for a thousand of them.
const CLIENT_UNSENT_LIMIT: u32 = 16 * 1024;

/// How the message of a request the device never answered starts (slots.rs sets it too).
const UNANSWERED: &str = "unanswered";
/// How the message of a request the device answered wrongly starts.
const MISMATCHED: &str = "mismatched response";

/// The gateway-wide request id counter: unique across conduits and sessions of one process.
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Why a session ended (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientClosed,
    ClientError,
    Idle,
    FrameError,
    IncompleteFrame,
    PolicyClose,
    NotReading,
    Drained,
    DrainDeadline,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client closed the connection",
            Self::ClientError => "client socket error",
            Self::Idle => "idle timeout",
            Self::FrameError => "broken Modbus frame from the client",
            Self::IncompleteFrame => "a frame from the client stayed incomplete too long",
            Self::PolicyClose => "denied request with deny action `close`",
            Self::NotReading => "the client took none of its answers for idle_timeout",
            Self::Drained => "gateway shutting down (in-flight requests answered)",
            Self::DrainDeadline => "gateway shutting down (drain deadline passed)",
        }
    }
}

/// The session's place in the shutdown tracker, given back when the session is dropped,
/// however it ends (a return, an error, a panic). Its place in `max_connections` and
/// `max_connections_per_source` is the accept loop's [`crate::state::ConnectionPermit`], held
/// by the session's task in the same way.
struct Admission(Arc<ConduitShared>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.tracker.leave();
    }
}

/// The names every record of a session carries, copied into allocations of the session's own.
/// Each request's record holds them (`Arc` clones), and the audit writer and the monitor drop
/// them on their threads: with the conduit's one shared `Arc`, every session of every session
/// thread incremented and decremented the same reference count several times per request,
/// a cache line passed between the cores each time.
struct Labels {
    conduit: Arc<str>,
    /// The device label of the policy snapshot this copy was made from (compared by pointer:
    /// a reload that points the conduit elsewhere makes a new copy).
    device_of: Arc<str>,
    device: Arc<str>,
}

impl Labels {
    fn new(conduit: &str, device: &Arc<str>) -> Self {
        Self {
            conduit: Arc::from(conduit),
            device_of: Arc::clone(device),
            device: Arc::from(&**device),
        }
    }

    /// The session's copy of `device`, the snapshot's device label.
    fn device(&self, device: &Arc<str>) -> Arc<str> {
        if Arc::ptr_eq(&self.device_of, device) {
            Arc::clone(&self.device)
        } else {
            Arc::clone(device)
        }
    }

    /// Follows a reload's new device label.
    fn follow(&mut self, device: &Arc<str>) {
        if !Arc::ptr_eq(&self.device_of, device) {
            *self = Self::new(&self.conduit, device);
        }
    }
}

/// The state of one client session.
pub(crate) struct Session {
    shared: Arc<ConduitShared>,
    client: ClientStream,
    peer: SocketAddr,
    peer_label: Arc<str>,
    /// The conduit's and the device's names as the session's own copies (see [`Labels`]).
    labels: Labels,
    /// The TLS client's certificate (role, subject, fingerprint); `None` on plaintext.
    tls_peer: Option<Peer>,
    /// The device connection lent by the pool while requests are at the device.
    link: Option<Link>,
    /// Bytes from the client not yet deframed.
    cbuf: BytesMut,
    /// Bytes from the device not yet deframed.
    ubuf: BytesMut,
    /// Answers ready to go to the client (one write per batch), and those its socket has not
    /// taken yet.
    cout: BytesMut,
    /// Since when the client's socket has not taken all of `cout` (backpressure: no request is
    /// read or taken meanwhile).
    unsent_since: Option<Instant>,
    /// Requests ready to go to the device (one write per batch).
    uout: BytesMut,
    slots: Slots,
    /// When the last allowed request came (denied ones never count: lock-out).
    last_activity: Instant,
    /// Whether the client has made an allowed request (then `idle_timeout` applies, not
    /// `unauthenticated_idle_timeout`).
    authenticated: bool,
    /// When the partial frame now in `cbuf` started (a frame must complete within the
    /// request timeout: trickling one byte at a time cannot hold a session forever).
    partial_since: Option<Instant>,
    client_eof: bool,
    end: Option<End>,
    /// The metric handles this session updates per request.
    meter: SessionMeter,
    _admission: Admission,
}

impl Session {
    /// A session with empty buffers, before its first request: TCP, TLS and serial lines alike.
    fn new(
        client: ClientStream,
        peer: SocketAddr,
        peer_label: String,
        tls_peer: Option<Peer>,
        shared: Arc<ConduitShared>,
        cap: usize,
        admission: Admission,
    ) -> Self {
        // The masters view is keyed by the source address; a serial line's label is none.
        let meter = Metrics::session_meter(peer_label.parse::<SocketAddr>().ok().map(|a| a.ip()));
        let labels = Labels::new(
            &shared.conduit,
            &shared.state.load().settings.upstream.label,
        );
        Self {
            labels,
            peer_label: Arc::from(peer_label),
            shared,
            client,
            peer,
            tls_peer,
            link: None,
            // Empty until first used (a read reserves READ_CHUNK, a write what it needs): a
            // connection that never sends costs no buffer, and 10,000 idle HMIs cost no 160 MB.
            cbuf: BytesMut::new(),
            ubuf: BytesMut::new(),
            cout: BytesMut::new(),
            unsent_since: None,
            uout: BytesMut::new(),
            slots: Slots::with_capacity(cap),
            last_activity: Instant::now(),
            authenticated: false,
            partial_since: None,
            client_eof: false,
            end: None,
            meter,
            _admission: admission,
        }
    }

    /// Serves one accepted client connection until it ends; never panics on input.
    ///
    /// The accept loop has counted the session in the tracker (and holds its connection
    /// permit); the tracker place is given back when this returns (or unwinds).
    pub(crate) async fn serve(client: TcpStream, peer: SocketAddr, shared: Arc<ConduitShared>) {
        let admission = Admission(Arc::clone(&shared));
        if let Err(e) = client.set_nodelay(true) {
            debug!(%peer, "cannot set TCP_NODELAY on the client socket: {e}");
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = socket2::SockRef::from(&client).set_tcp_notsent_lowat(CLIENT_UNSENT_LIMIT) {
            debug!(%peer, "cannot set TCP_NOTSENT_LOWAT on the client socket: {e}");
        }
        let (cap, tls) = {
            let state = shared.state.load();
            let s = &state.settings;
            (
                s.max_in_flight.max(1),
                s.tls.clone().map(|c| (c, s.unauthenticated_idle_timeout)),
            )
        };
        let (client, tls_peer) = match tls {
            None => (Stream::Plain(client), None),
            Some((config, limit)) => match crate::tls::accept(config, client, limit).await {
                Ok((stream, tls_peer)) => {
                    established(&shared, peer, &tls_peer);
                    (Stream::Tls(Box::new(stream)), Some(tls_peer))
                }
                Err(refused) => {
                    handshake_refused(&shared, peer, refused);
                    return;
                }
            },
        };
        let mut s = Self::new(
            client,
            peer,
            peer.to_string(),
            tls_peer,
            shared,
            cap,
            admission,
        );
        let end = s.run().await;
        s.abandon(end);
        debug!(conduit = %s.shared.conduit, peer = %s.peer, "session ended: {}", end.as_str());
    }

    /// Serves requests arriving on a serial line (serial_listen.rs) with the same data path:
    /// `peer` is the line's source identity, `label` its `src` in events. The caller counted
    /// the session in the tracker. Returns true when the line failed (reopen it).
    pub(crate) async fn serve_line(
        client: ClientStream,
        peer: SocketAddr,
        label: String,
        shared: Arc<ConduitShared>,
    ) -> bool {
        let admission = Admission(Arc::clone(&shared));
        let cap = shared.state.load().settings.max_in_flight.max(1);
        let mut s = Self::new(client, peer, label, None, shared, cap, admission);
        let end = s.run().await;
        s.abandon(end);
        debug!(conduit = %s.shared.conduit, line = %s.peer_label, "line session ended: {}", end.as_str());
        matches!(end, End::ClientClosed | End::ClientError)
    }

    async fn run(&mut self) -> End {
        // One shutdown future for the whole session: `watch::Receiver::changed()` registers a
        // waiter on a Notify that every session shares, and dropping a registered waiter takes
        // its lock, so re-creating it per request would put a shared lock on the hot path.
        let mut shutdown = self.shared.shutdown.clone();
        let shutdown_signal = async move {
            loop {
                if *shutdown.borrow_and_update() || shutdown.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::pin!(shutdown_signal);
        let mut draining_until: Option<Instant> = None;
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;

        // The policy snapshot: re-read only when a reload swapped it (a pointer compare).
        let mut state = self.shared.state.load_full();
        loop {
            {
                let current = self.shared.state.load();
                if !Arc::ptr_eq(&current, &state) {
                    state = arc_swap::Guard::into_inner(current);
                    self.labels.follow(&state.settings.upstream.label);
                }
            }
            // Answer what is ready, then take new requests while slots are free. Requests already
            // in `cbuf` are taken here, not after the next socket read: the client may have sent
            // its whole pipeline already and be waiting for answers.
            loop {
                self.collect_answers();
                // Others wait for a device connection: this one goes back between two
                // requests, and the next request waits its turn behind theirs, so a client
                // that pipelines thousands cannot keep a connection for all of them.
                if self.link.is_some() && self.shared.pool.contended() {
                    self.give_back_link();
                }
                if let Err(end) = self.take_requests(&state).await {
                    return end;
                }
                self.collect_answers();
                let room = self.slots.len() < state.settings.max_in_flight.max(1);
                if self.end.is_some()
                    || !room
                    || self.unsent_since.is_some()
                    || matches!(decode_adu(&self.cbuf), Ok(None))
                {
                    break;
                }
            }
            if let Err(end) = self.flush(&state).await {
                return end;
            }
            self.give_back_link();
            if let Some(end) = self.end {
                return end;
            }
            // Its answers are out: while the audit writer is behind, the session waits for it
            // before it takes more requests, rather than lose their records.
            self.shared
                .recorder
                .keep_pace(state.settings.request_timeout)
                .await;
            // The client took its answers at last: requests it sent meanwhile are taken now,
            // not after its next segment (it may be waiting for their answers).
            if self.unsent_since.is_none()
                && self.slots.len() < state.settings.max_in_flight.max(1)
                && !matches!(decode_adu(&self.cbuf), Ok(None))
            {
                continue;
            }
            if self.slots.is_empty() && self.unsent_since.is_none() {
                if self.client_eof {
                    return End::ClientClosed;
                }
                if draining_until.is_some() {
                    return End::Drained;
                }
            }

            // Next timer: the oldest request deadline, the idle deadline, the drain deadline,
            // the end of a busy device connection's quiet period.
            let settings = &state.settings;
            let idle_limit = self.idle_limit(settings);
            let mut deadline = self.slots.next_deadline();
            if self.slots.is_empty() {
                let idle = self.last_activity + idle_limit;
                deadline = Some(deadline.map_or(idle, |d| d.min(idle)));
            }
            if let Some(d) = draining_until {
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
            if let Some(t) = self.unsent_since {
                let d = t + settings.idle_timeout;
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
            if let Some(d) = self.link.as_ref().and_then(|l| l.conn.busy_until()) {
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
            self.partial_since = match decode_adu(&self.cbuf) {
                Ok(None) if !self.cbuf.is_empty() => {
                    Some(self.partial_since.unwrap_or_else(Instant::now))
                }
                _ => None,
            };
            if let Some(p) = self.partial_since {
                let d = p + settings.request_timeout;
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
            let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            // Re-arm only when the timer would fire too late. Firing early is harmless (the
            // handler re-checks every deadline), and it spares a timer update per request.
            if armed.is_none_or(|a| deadline < a) {
                sleep.as_mut().reset(deadline);
                armed = Some(deadline);
            }

            let client_io = if self.unsent_since.is_some() {
                Some(ClientIo::Writable)
            } else if !self.client_eof
                && draining_until.is_none()
                && self.slots.len() < settings.max_in_flight.max(1)
            {
                Some(ClientIo::Read)
            } else {
                None
            };
            let up_open = self.link.is_some();

            tokio::select! {
                biased;
                r = read_upstream(&mut self.link, &mut self.ubuf), if up_open => {
                    match r {
                        Ok(0) => self.upstream_lost("device closed the connection"),
                        Ok(_) => self.take_responses(),
                        Err(e) => self.upstream_lost(&format!("device read failed: {e}")),
                    }
                }
                r = client_io_ready(&mut self.client, &mut self.cbuf, client_io), if client_io.is_some() => {
                    match r {
                        Ok(0) => self.client_eof = true,
                        // Bytes read, or the socket takes answers again (the loop writes them).
                        Ok(_) => {}
                        Err(e) => {
                            debug!(peer = %self.peer, "client read or write failed: {e}");
                            return End::ClientError;
                        }
                    }
                }
                () = &mut sleep => {
                    armed = None;
                    let now = Instant::now();
                    if let Some(d) = draining_until {
                        if now >= d {
                            return End::DrainDeadline;
                        }
                    }
                    // Before the idle check: a client that stopped reading is idle too, and
                    // this says why.
                    if self
                        .unsent_since
                        .is_some_and(|t| now >= t + settings.idle_timeout)
                    {
                        self.not_reading(&state);
                        return End::NotReading;
                    }
                    if self.slots.is_empty()
                        && !self.client_eof
                        && now >= self.last_activity + idle_limit
                    {
                        return End::Idle;
                    }
                    if self
                        .partial_since
                        .is_some_and(|p| now >= p + settings.request_timeout)
                    {
                        self.incomplete_frame(&state);
                        return End::IncompleteFrame;
                    }
                    self.expire_requests(now, settings.request_timeout);
                    if let Some(link) = &mut self.link {
                        if link.conn.busy_until().is_some_and(|d| now >= d) {
                            link.conn.quiet();
                        }
                    }
                }
                () = &mut shutdown_signal, if draining_until.is_none() => {
                    draining_until = Some(Instant::now() + self.shared.drain_timeout);
                }
            }
        }
    }

    /// The idle timeout that applies now: the short one until the first allowed request.
    fn idle_limit(&self, settings: &crate::state::Settings) -> Duration {
        if self.authenticated {
            settings.idle_timeout
        } else {
            settings
                .unauthenticated_idle_timeout
                .min(settings.idle_timeout)
        }
    }

    /// Deframes and handles every whole request in `cbuf`, as long as a slot is free.
    async fn take_requests(&mut self, state: &Arc<ConduitState>) -> Result<(), End> {
        let mut pdu = [0u8; MAX_PDU];
        while self.end.is_none()
            && self.unsent_since.is_none()
            && self.slots.len() < state.settings.max_in_flight.max(1)
        {
            let (tid, unit, len) = match decode_adu(&self.cbuf) {
                Ok(None) => break,
                Ok(Some(adu)) => {
                    let n = adu.pdu.len().min(MAX_PDU);
                    pdu[..n].copy_from_slice(&adu.pdu[..n]);
                    let wire = adu.wire_len();
                    let h = adu.header;
                    self.cbuf.advance(wire);
                    // A partial frame after this one gets its own clock.
                    self.partial_since = None;
                    (h.transaction_id, h.unit_id, n)
                }
                Err(e) => {
                    warn!(
                        conduit = %self.shared.conduit, peer = %self.peer,
                        "closing the connection: broken Modbus/TCP frame: {e}"
                    );
                    let mut ev = self.base_event(state);
                    ev.decision = Some(Decision::Deny);
                    ev.reason = Some("malformed_frame".into());
                    ev.message = Some(e.to_string());
                    self.shared.recorder.record_denial(ev);
                    self.cbuf.clear();
                    self.end = Some(End::FrameError);
                    break;
                }
            };
            self.handle_request(state, tid, unit, &pdu[..len]).await?;
        }
        Ok(())
    }

    /// Logs and records a client whose frame did not complete in time.
    fn incomplete_frame(&self, state: &ConduitState) {
        let limit = state.settings.request_timeout;
        let message = format!(
            "{} bytes of an unfinished frame after {limit:?}",
            self.cbuf.len()
        );
        self.closing(state, "incomplete_frame", message);
    }

    /// Writes pending requests to the device, and to the client the answers its socket takes
    /// now (never waiting for it: see "Backpressure" in the module docs).
    async fn flush(&mut self, state: &Arc<ConduitState>) -> Result<(), End> {
        self.flush_upstream(state).await?;
        if self.cout.is_empty() && !self.client.has_unsent() {
            self.unsent_since = None;
            return Ok(());
        }
        match self
            .client
            .write_now(&self.cout, state.settings.idle_timeout)
            .await
        {
            Ok(n) => self.cout.advance(n),
            Err(e) => {
                debug!(peer = %self.peer, "client write failed: {e}");
                self.cout.clear();
                return Err(End::ClientError);
            }
        }
        if self.cout.is_empty() && !self.client.has_unsent() {
            self.unsent_since = None;
        } else if self.unsent_since.is_none() {
            self.unsent_since = Some(Instant::now());
        }
        Ok(())
    }

    /// Logs and records a client closed because it took none of its answers for
    /// `idle_timeout` (a peer that never reads must not hold a session for ever).
    fn not_reading(&self, state: &ConduitState) {
        let limit = state.settings.idle_timeout;
        let message = format!(
            "{} bytes of answers not taken after {limit:?}",
            self.cout.len()
        );
        self.closing(state, "client_not_reading", message);
    }

    /// Logs that the gateway closes this client and why, and records it as a denial (so it
    /// is aggregated per source like every record a host no rule names can cause).
    fn closing(&self, state: &ConduitState, reason: &'static str, message: String) {
        warn!(
            conduit = %self.shared.conduit, peer = %self.peer,
            "closing the connection ({reason}): {message}"
        );
        let mut ev = self.base_event(state);
        ev.decision = Some(Decision::Deny);
        ev.reason = Some(reason.into());
        ev.message = Some(message);
        self.shared.recorder.record_denial(ev);
    }

    /// Records the requests still queued when a session ends.
    fn abandon(&mut self, end: End) {
        let now = Instant::now();
        let owed = self.slots.has_pending();
        while let Some(mut slot) = self.slots.pop_any() {
            if slot.state != SlotState::Ready {
                slot.event.message = Some(format!("unanswered: {}", end.as_str()));
            }
            let latency = now.saturating_duration_since(slot.started);
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.finish_event(slot, latency_us, now);
        }
        let device = self.shared.state.load().settings.upstream.label.clone();
        crate::watch::session_ended(&self.shared, self.peer, device);
        if owed {
            // Requests still at the device: the link is dropped (closed), never given back.
            self.link = None;
        } else {
            self.give_back_link();
        }
    }
}

/// What the session waits for on the client's socket: a request, or room for its answers.
#[derive(Debug, Clone, Copy)]
enum ClientIo {
    Read,
    Writable,
}

/// Reads from the client (`Ok(0)`: end of stream) or waits until its socket takes bytes
/// again (`Ok(1)`), as `io` says; waits forever for `None` (the branch is disabled then).
async fn client_io_ready(
    client: &mut ClientStream,
    cbuf: &mut BytesMut,
    io: Option<ClientIo>,
) -> std::io::Result<usize> {
    match io {
        Some(ClientIo::Read) => client.read_some(cbuf, READ_CHUNK).await,
        Some(ClientIo::Writable) => client.writable().await.map(|()| 1),
        None => std::future::pending().await,
    }
}

/// Records an established TLS session: who the client is, and its role or why it has none
/// (the null role, R-23: the policy decides, and no rule with `roles:` matches it).
fn established(shared: &ConduitShared, peer: SocketAddr, p: &Peer) {
    let kind = if p.resumed { "resumed" } else { "full" };
    let message = match (&p.role, &p.no_role) {
        (Some(role), _) => format!("TLS session established ({kind} handshake), role {role}"),
        (None, Some(why)) => {
            format!("TLS session established ({kind} handshake), no role: {why}")
        }
        (None, None) => format!("TLS session established ({kind} handshake), no role"),
    };
    debug!(conduit = %shared.conduit, %peer, subject = %p.subject, "{message}");
    let mut ev = Event::new(Kind::Connection);
    ev.conduit = Some(Arc::clone(&shared.conduit));
    ev.src = Some(peer.to_string().into());
    ev.reason = Some(match &p.no_role {
        Some(why) => Cow::Borrowed(why.as_str()),
        None => Cow::Borrowed("tls_established"),
    });
    ev.message = Some(message);
    ev.role.clone_from(&p.role);
    ev.peer_subject = Some(p.subject.clone());
    ev.peer_fingerprint = Some(p.fingerprint.clone());
    shared.recorder.record(ev);
}

/// Records a refused handshake (aggregated per source and reason, like every refusal an
/// unauthenticated host can cause without limit: the first in full, the rest counted).
fn handshake_refused(shared: &ConduitShared, peer: SocketAddr, refused: crate::tls::Refused) {
    info!(conduit = %shared.conduit, %peer, "{}", refused.message);
    let mut ev = Event::new(Kind::Connection);
    ev.conduit = Some(Arc::clone(&shared.conduit));
    ev.src = Some(peer.ip().to_string().into());
    ev.reason = Some(Cow::Borrowed(refused.reason));
    ev.message = Some(refused.message);
    shared.recorder.record_denial(ev);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use arc_swap::ArcSwap;
    use zonegate_audit::{AuditConfig, AuditLog, OnFailure, SyncMode};

    use super::*;
    use crate::record::Recorder;
    use crate::state::Tracker;

    fn shared() -> Arc<ConduitShared> {
        let model = zonegate_policy::load_str(
            "conduits:\n  - conduit_id: C1\n    gateway:\n      listen: 127.0.0.1:0\n      upstream: tcp://127.0.0.1:1\n    rules: []\n",
            "m.yaml",
        )
        .unwrap();
        let policy = Arc::new(zonegate_policy::Policy::compile(&model).unwrap());
        let state = crate::settings::conduit_state(&policy, Some(0), None).unwrap();
        let handle = AuditLog::start(AuditConfig::default()).unwrap();
        Arc::new(ConduitShared {
            conduit: Arc::from("C1"),
            state: ArcSwap::from_pointee(state),
            recorder: Recorder::new(handle, SyncMode::Batch, OnFailure::BlockWrites),
            shutdown: tokio::sync::watch::channel(false).1,
            drain_timeout: Duration::from_secs(1),
            tracker: Arc::new(Tracker::default()),
            pool: Arc::default(),
            admitted: Default::default(),
            metrics: Default::default(),
            watch: crate::watch::ConduitWatch::new(Arc::new(crate::watch::Watch::new(None))),
            sessions: None,
        })
    }

    #[test]
    fn the_connection_counter_is_decremented_only_in_abandon() {
        // Issue 14.9: a session that panicked (or returned before `abandon`) kept its place in
        // `max_connections` for ever. The admission guard gives it back however the task ends.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let shared = shared();
            let src: std::net::IpAddr = "127.0.0.7".parse().unwrap();
            let permit = crate::state::ConnectionPermit::admit(&shared, src, 4, 2).unwrap();
            shared.tracker.enter();
            assert_eq!(shared.admitted.total(), 1);
            let admitted = Arc::clone(&shared);
            // As the accept loop spawns a session: the permit moves into the task.
            let task = tokio::spawn(async move {
                let _permit = permit;
                let _admission = Admission(admitted);
                panic!("a bug in the session");
            });
            assert!(task.await.is_err(), "the task panicked");
            assert_eq!(shared.admitted.total(), 0);
            assert_eq!(shared.admitted.count_from(src), 0);
            assert_eq!(shared.tracker.active(), 0);
        });
    }
}
