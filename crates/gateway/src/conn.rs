//! One client session: the data path of the gateway.
//!
//! ```text
//!   client ──bytes──▶ deframe (codec) ──▶ Request::parse ──▶ decide ──▶ [durable audit] ──▶ upstream
//!   client ◀──in order── slot queue ◀── match by upstream tid + Response::parse_for ◀── upstream
//! ```
//!
//! Each accepted client connection runs as ONE tokio task that owns both sockets: the client's
//! and its own upstream connection to the device (opened on the first request that is
//! forwarded, re-opened after a failure). A single task needs no channels and no locks; the only
//! shared state it touches is the conduit's current policy (an `ArcSwap` load per read batch) and
//! the audit handle.
//!
//! Pipelining: up to `max_in_flight` requests of one client may be outstanding. Every request
//! that will be answered gets a [`Slot`] in a FIFO; answers leave in request order, whether they
//! come from the device or from the gateway itself (a denial, 0x0A, 0x0B). Requests are sent
//! upstream under the gateway's own transaction ids (a per-session counter), so a client that
//! reuses transaction ids still gets the right answers, and a late or forged device response
//! never matches a slot: it is dropped and reported.
//!
//! Writes to the sockets are batched: all requests of one client read go upstream in one write,
//! all answers that became ready go back in one write.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use zonegate_audit::{Decision, Event, Kind};
use zonegate_modbus::tcp::{decode_adu, encode_adu, MAX_TCP_ADU_LEN};
use zonegate_modbus::{Access, ExceptionCode, FunctionCode, UnitId};
use zonegate_modbus::{Request, Response};

use crate::io::{read_some, write_all_within};
use crate::record::FailureAction;
use crate::state::{ConduitShared, ConduitState, DenyAction, Mode};

/// Largest PDU (the MBAP length field allows 253 bytes after the unit id).
const MAX_PDU: usize = 253;
/// How long a session waits before it tries to connect to a device that just refused it.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);
/// Read chunk for both sockets.
const READ_CHUNK: usize = 4096;

/// Why a session ended (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientClosed,
    ClientError,
    Idle,
    FrameError,
    IncompleteFrame,
    PolicyClose,
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
            Self::Drained => "gateway shutting down (in-flight requests answered)",
            Self::DrainDeadline => "gateway shutting down (drain deadline passed)",
        }
    }
}

/// Where an answer slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Sent to the device under `utid`; answered with 0x0B after `deadline`.
    Pending { utid: u16, deadline: Instant },
    /// The answer PDU is in `resp[..resp_len]`.
    Ready,
}

/// One outstanding request of the client, answered in FIFO order.
struct Slot {
    state: SlotState,
    client_tid: u16,
    unit: UnitId,
    /// The request PDU as forwarded (kept to check that the response answers it).
    req: [u8; MAX_PDU],
    req_len: usize,
    resp: [u8; MAX_PDU],
    resp_len: usize,
    /// Audit record of this request, completed when the answer leaves.
    event: Event,
    started: Instant,
    /// Seq of the durable `request` record written before forwarding (then an `outcome` follows).
    ref_seq: Option<u64>,
}

impl Slot {
    fn set_answer(&mut self, pdu: &[u8]) {
        let n = pdu.len().min(MAX_PDU);
        self.resp[..n].copy_from_slice(&pdu[..n]);
        self.resp_len = n;
        self.state = SlotState::Ready;
    }

    fn set_exception(&mut self, function: u8, code: ExceptionCode) {
        let n = encode_exception(function, code, &mut self.resp);
        self.resp_len = n;
        self.state = SlotState::Ready;
        self.event.exception = Some(code.to_u8());
    }

    fn pending_utid(&self) -> Option<u16> {
        match self.state {
            SlotState::Pending { utid, .. } => Some(utid),
            SlotState::Ready => None,
        }
    }
}

/// Encodes an exception response PDU through the codec (`fc | 0x80`, code).
fn encode_exception(function: u8, code: ExceptionCode, out: &mut [u8]) -> usize {
    let resp = Response::Exception {
        function: FunctionCode::new(function & 0x7F),
        code,
    };
    match resp.encode(out) {
        Ok(n) => n,
        // Cannot happen with a 253-byte buffer; fall back to the two spec bytes.
        Err(_) => {
            out[0] = function | 0x80;
            out[1] = code.to_u8();
            2
        }
    }
}

/// The state of one client session.
pub(crate) struct Session {
    shared: Arc<ConduitShared>,
    client: TcpStream,
    peer: SocketAddr,
    peer_label: String,
    up: Option<TcpStream>,
    up_failed_at: Option<Instant>,
    /// Bytes from the client not yet deframed.
    cbuf: BytesMut,
    /// Bytes from the device not yet deframed.
    ubuf: BytesMut,
    /// Answers ready to go to the client (one write per batch).
    cout: BytesMut,
    /// Requests ready to go to the device (one write per batch).
    uout: BytesMut,
    slots: VecDeque<Slot>,
    next_utid: u16,
    /// Upstream transaction ids of the last requests answered with 0x0B (to tell a late
    /// answer from an unsolicited one).
    expired: [Option<u16>; 8],
    expired_pos: usize,
    last_activity: Instant,
    /// When the partial frame now in `cbuf` started (a frame must complete within the
    /// request timeout: trickling one byte at a time cannot hold a session forever).
    partial_since: Option<Instant>,
    client_eof: bool,
    end: Option<End>,
}

impl Session {
    /// Serves one accepted client connection until it ends; never panics on input.
    pub(crate) async fn serve(client: TcpStream, peer: SocketAddr, shared: Arc<ConduitShared>) {
        if let Err(e) = client.set_nodelay(true) {
            debug!(%peer, "cannot set TCP_NODELAY on the client socket: {e}");
        }
        let cap = shared.state.load().settings.max_in_flight.max(1);
        let mut s = Self {
            peer_label: peer.to_string(),
            shared,
            client,
            peer,
            up: None,
            up_failed_at: None,
            cbuf: BytesMut::with_capacity(READ_CHUNK),
            ubuf: BytesMut::with_capacity(READ_CHUNK),
            cout: BytesMut::with_capacity(READ_CHUNK),
            uout: BytesMut::with_capacity(READ_CHUNK),
            slots: VecDeque::with_capacity(cap),
            next_utid: 1,
            expired: [None; 8],
            expired_pos: 0,
            last_activity: Instant::now(),
            partial_since: None,
            client_eof: false,
            end: None,
        };
        let end = s.run().await;
        s.abandon(end);
        debug!(conduit = %s.shared.conduit, peer = %s.peer, "session ended: {}", end.as_str());
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
                }
            }
            // Answer what is ready, then take new requests while slots are free. Requests already
            // in `cbuf` are taken here, not after the next socket read: the client may have sent
            // its whole pipeline already and be waiting for answers.
            loop {
                self.collect_answers();
                if let Err(end) = self.take_requests(&state).await {
                    return end;
                }
                self.collect_answers();
                let room = self.slots.len() < state.settings.max_in_flight.max(1);
                if self.end.is_some() || !room || matches!(decode_adu(&self.cbuf), Ok(None)) {
                    break;
                }
            }
            if let Err(end) = self.flush(&state).await {
                return end;
            }
            if let Some(end) = self.end {
                return end;
            }
            if self.slots.is_empty() {
                if self.client_eof {
                    return End::ClientClosed;
                }
                if draining_until.is_some() {
                    return End::Drained;
                }
            }

            // Next timer: the oldest request deadline, the idle deadline, the drain deadline.
            let settings = &state.settings;
            let mut deadline = self.next_request_deadline();
            if self.slots.is_empty() {
                let idle = self.last_activity + settings.idle_timeout;
                deadline = Some(deadline.map_or(idle, |d| d.min(idle)));
            }
            if let Some(d) = draining_until {
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

            let can_read = !self.client_eof
                && draining_until.is_none()
                && self.slots.len() < settings.max_in_flight.max(1);
            let up_open = self.up.is_some();

            tokio::select! {
                biased;
                r = read_upstream(&mut self.up, &mut self.ubuf), if up_open => {
                    match r {
                        Ok(0) => self.upstream_lost("device closed the connection"),
                        Ok(_) => self.take_responses(),
                        Err(e) => self.upstream_lost(&format!("device read failed: {e}")),
                    }
                }
                r = read_some(&mut self.client, &mut self.cbuf, READ_CHUNK), if can_read => {
                    match r {
                        Ok(0) => self.client_eof = true,
                        Ok(_) => self.last_activity = Instant::now(),
                        Err(e) => {
                            debug!(peer = %self.peer, "client read failed: {e}");
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
                    if self.slots.is_empty()
                        && !self.client_eof
                        && now >= self.last_activity + settings.idle_timeout
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
                    self.expire_requests(now);
                }
                () = &mut shutdown_signal, if draining_until.is_none() => {
                    draining_until = Some(Instant::now() + self.shared.drain_timeout);
                }
            }
        }
    }

    /// Deframes and handles every whole request in `cbuf`, as long as a slot is free.
    async fn take_requests(&mut self, state: &Arc<ConduitState>) -> Result<(), End> {
        let mut pdu = [0u8; MAX_PDU];
        while self.end.is_none() && self.slots.len() < state.settings.max_in_flight.max(1) {
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
                    self.shared.recorder.record(ev);
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
        warn!(
            conduit = %self.shared.conduit, peer = %self.peer,
            "closing the connection: a frame stayed incomplete for {:?} ({} bytes)",
            state.settings.request_timeout,
            self.cbuf.len()
        );
        let mut ev = self.base_event(state);
        ev.decision = Some(Decision::Deny);
        ev.reason = Some("incomplete_frame".into());
        ev.message = Some(format!(
            "{} bytes of an unfinished frame after {:?}",
            self.cbuf.len(),
            state.settings.request_timeout
        ));
        self.shared.recorder.record(ev);
    }

    /// Decides one request and queues its answer or forwards it.
    async fn handle_request(
        &mut self,
        state: &Arc<ConduitState>,
        tid: u16,
        unit: UnitId,
        pdu: &[u8],
    ) -> Result<(), End> {
        let started = Instant::now();
        let fc = pdu.first().copied().unwrap_or(0);
        let mut event = self.base_event(state);
        event.tid = Some(tid);
        event.unit = Some(unit.get());
        event.fc = Some(fc);
        event.function = FunctionCode::new(fc).name().map(Cow::Borrowed);

        let request = match Request::parse(pdu) {
            Ok(r) => r,
            Err(e) => {
                // Not valid Modbus: never forwarded, whatever the mode.
                let code = e
                    .exception_code()
                    .unwrap_or(ExceptionCode::IllegalDataValue);
                debug!(peer = %self.peer, tid, "invalid request PDU: {e}");
                event.decision = Some(Decision::Deny);
                event.reason = Some(
                    if code == ExceptionCode::IllegalFunction {
                        "illegal_function"
                    } else {
                        "invalid_pdu"
                    }
                    .into(),
                );
                event.message = Some(e.to_string());
                self.push_local(tid, unit, fc, code, event, started);
                return Ok(());
            }
        };
        describe_request(&request, &mut event);

        let mut verdict = state.decide(self.peer.ip(), unit, &request, started);
        event.reason = Some(Cow::Borrowed(verdict.reason));
        event.rule = verdict.rule.take();

        let forward = match (verdict.allow, state.settings.mode) {
            (true, _) => {
                event.decision = Some(Decision::Allow);
                true
            }
            (false, Mode::Monitor) => {
                event.decision = Some(Decision::WouldDeny);
                true
            }
            (false, Mode::Enforce) => {
                event.decision = Some(Decision::Deny);
                false
            }
        };

        if !forward {
            match state.settings.deny {
                DenyAction::Exception => {
                    let code = verdict.exception.unwrap_or(ExceptionCode::IllegalFunction);
                    self.push_local(tid, unit, fc, code, event, started);
                }
                DenyAction::Drop => {
                    event.message = Some("dropped (deny: drop)".to_owned());
                    self.shared.recorder.record(event);
                }
                DenyAction::Close => {
                    event.message = Some("connection closed (deny: close)".to_owned());
                    self.shared.recorder.record(event);
                    self.end = Some(End::PolicyClose);
                }
            }
            return Ok(());
        }

        // Audit failure behaviour and durability before the request reaches the device.
        let write_class = request.access() == Access::Write;
        if let FailureAction::Block = self.shared.recorder.failure_action(write_class) {
            event.reason = Some("audit_unavailable".into());
            event.decision = Some(Decision::Deny);
            self.push_local(
                tid,
                unit,
                fc,
                ExceptionCode::ServerDeviceFailure,
                event,
                started,
            );
            return Ok(());
        }
        let mut ref_seq = None;
        if self.shared.recorder.must_be_durable(write_class) {
            // Requests already forwarded go first: the device sees them in order anyway.
            self.flush_upstream(state).await?;
            let ticket = self.shared.recorder.append_durable(event.clone());
            match tokio::time::timeout(state.settings.request_timeout, ticket).await {
                Ok(Ok(seq)) => ref_seq = Some(seq),
                outcome => {
                    let why = match outcome {
                        Ok(Err(e)) => e,
                        _ => "the audit log did not confirm in time".to_owned(),
                    };
                    match self.shared.recorder.on_durable_failure(write_class, &why) {
                        FailureAction::Block => {
                            event.reason = Some("audit_unavailable".into());
                            event.decision = Some(Decision::Deny);
                            event.message = Some(why);
                            self.push_local(
                                tid,
                                unit,
                                fc,
                                ExceptionCode::ServerDeviceFailure,
                                event,
                                started,
                            );
                            return Ok(());
                        }
                        FailureAction::Forward => {}
                    }
                }
            }
        }

        if self.up.is_none() && !self.connect(state).await {
            let mut slot = self.new_slot(tid, unit, pdu, event, started);
            slot.ref_seq = ref_seq;
            slot.set_exception(fc, ExceptionCode::GatewayPathUnavailable);
            self.slots.push_back(slot);
            return Ok(());
        }

        let utid = self.next_utid;
        self.next_utid = self.next_utid.wrapping_add(1);
        let mut adu = [0u8; MAX_TCP_ADU_LEN];
        match encode_adu(utid, unit, pdu, &mut adu) {
            Ok(n) => self.uout.extend_from_slice(&adu[..n]),
            Err(e) => {
                // Cannot happen for a PDU the deframer accepted; answer rather than hang.
                warn!("cannot re-encode a request for the device: {e}");
                let mut slot = self.new_slot(tid, unit, pdu, event, started);
                slot.set_exception(fc, ExceptionCode::ServerDeviceFailure);
                self.slots.push_back(slot);
                return Ok(());
            }
        }
        let mut slot = self.new_slot(tid, unit, pdu, event, started);
        slot.ref_seq = ref_seq;
        if !request.expects_response() {
            // FC 8 / 0x0004 Force Listen Only: the device never answers, neither do we.
            slot.event.message = Some("no response expected".to_owned());
            self.finish_event(&mut slot, 0);
            return Ok(());
        }
        slot.state = SlotState::Pending {
            utid,
            deadline: started + state.settings.request_timeout,
        };
        self.slots.push_back(slot);
        Ok(())
    }

    fn new_slot(&self, tid: u16, unit: UnitId, pdu: &[u8], event: Event, started: Instant) -> Slot {
        let mut req = [0u8; MAX_PDU];
        let n = pdu.len().min(MAX_PDU);
        req[..n].copy_from_slice(&pdu[..n]);
        Slot {
            state: SlotState::Ready,
            client_tid: tid,
            unit,
            req,
            req_len: n,
            resp: [0u8; MAX_PDU],
            resp_len: 0,
            event,
            started,
            ref_seq: None,
        }
    }

    /// Queues an answer made by the gateway itself (an exception).
    fn push_local(
        &mut self,
        tid: u16,
        unit: UnitId,
        fc: u8,
        code: ExceptionCode,
        event: Event,
        started: Instant,
    ) {
        let mut slot = self.new_slot(tid, unit, &[], event, started);
        slot.set_exception(fc, code);
        self.slots.push_back(slot);
    }

    /// Opens the upstream connection; false (and a warning) when the device is unreachable.
    async fn connect(&mut self, state: &Arc<ConduitState>) -> bool {
        if let Some(t) = self.up_failed_at {
            if t.elapsed() < RECONNECT_BACKOFF {
                return false;
            }
        }
        let target = &state.settings.upstream;
        let connecting = TcpStream::connect((target.host.as_str(), target.port));
        match tokio::time::timeout(state.settings.connect_timeout, connecting).await {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    debug!("cannot set TCP_NODELAY on the upstream socket: {e}");
                }
                self.up = Some(stream);
                self.up_failed_at = None;
                self.ubuf.clear();
                true
            }
            Ok(Err(e)) => {
                self.connect_failed(&format!("{e}"));
                false
            }
            Err(_) => {
                self.connect_failed(&format!(
                    "no answer within {:?}",
                    state.settings.connect_timeout
                ));
                false
            }
        }
    }

    fn connect_failed(&mut self, why: &str) {
        if self.up_failed_at.is_none() {
            warn!(
                conduit = %self.shared.conduit,
                upstream = %self.shared.state.load().settings.upstream.label,
                "device unreachable ({why}); answering 0x0A"
            );
        }
        self.up_failed_at = Some(Instant::now());
    }

    /// The device connection broke: every request waiting on it gets 0x0B.
    fn upstream_lost(&mut self, why: &str) {
        info!(conduit = %self.shared.conduit, peer = %self.peer, "{why}");
        self.up = None;
        self.ubuf.clear();
        for slot in &mut self.slots {
            if slot.pending_utid().is_some() {
                let fc = slot.req[0];
                slot.set_exception(fc, ExceptionCode::GatewayTargetFailedToRespond);
            }
        }
    }

    /// Deframes device responses and matches them to pending slots.
    fn take_responses(&mut self) {
        let mut pdu = [0u8; MAX_PDU];
        loop {
            let (utid, unit, len) = match decode_adu(&self.ubuf) {
                Ok(None) => return,
                Ok(Some(adu)) => {
                    let n = adu.pdu.len().min(MAX_PDU);
                    pdu[..n].copy_from_slice(&adu.pdu[..n]);
                    let wire = adu.wire_len();
                    let h = adu.header;
                    self.ubuf.advance(wire);
                    (h.transaction_id, h.unit_id, n)
                }
                Err(e) => {
                    self.report_response("broken frame from the device", &e.to_string());
                    self.upstream_lost("dropping the device connection after a broken frame");
                    return;
                }
            };
            let pdu = &pdu[..len];
            let Some(i) = self
                .slots
                .iter()
                .position(|s| s.pending_utid() == Some(utid))
            else {
                if self.expired.contains(&Some(utid)) {
                    self.report_response(
                        "late response",
                        &format!("transaction id {utid} was already answered with 0x0B"),
                    );
                } else {
                    self.report_response(
                        "unsolicited response",
                        &format!("transaction id {utid} matches no outstanding request"),
                    );
                }
                continue;
            };
            let slot = &mut self.slots[i];
            if slot.unit != unit {
                let why = format!(
                    "unit id {} answers a request to unit {}",
                    unit.get(),
                    slot.unit.get()
                );
                self.report_response("mismatched response", &why);
                continue;
            }
            let checked = match Request::parse(&slot.req[..slot.req_len]) {
                Ok(req) => Response::parse_for(pdu, &req)
                    .map(|resp| match resp {
                        Response::Exception { code, .. } => Some(code.to_u8()),
                        _ => None,
                    })
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(exception) => {
                    slot.set_answer(pdu);
                    slot.event.exception = exception;
                }
                Err(why) => self.report_response("mismatched response", &why),
            }
        }
    }

    /// Logs and records a device response that was dropped.
    fn report_response(&self, what: &str, why: &str) {
        warn!(conduit = %self.shared.conduit, peer = %self.peer, "dropped {what} from the device: {why}");
        let state = self.shared.state.load();
        let mut ev = self.base_event(&state);
        ev.kind = Kind::Alert;
        ev.reason = Some(what.replace(' ', "_").into());
        ev.message = Some(why.to_owned());
        self.shared.recorder.record(ev);
    }

    fn next_request_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                SlotState::Pending { deadline, .. } => Some(deadline),
                SlotState::Ready => None,
            })
            .min()
    }

    /// Answers 0x0B for every forwarded request whose deadline passed.
    fn expire_requests(&mut self, now: Instant) {
        for slot in &mut self.slots {
            if let SlotState::Pending { deadline, utid } = slot.state {
                if now >= deadline {
                    self.expired[self.expired_pos % self.expired.len()] = Some(utid);
                    self.expired_pos = self.expired_pos.wrapping_add(1);
                    debug!(peer = %self.peer, tid = slot.client_tid, "device did not answer in time");
                    let fc = slot.req[0];
                    slot.set_exception(fc, ExceptionCode::GatewayTargetFailedToRespond);
                }
            }
        }
    }

    /// Moves every ready answer at the head of the queue to the client buffer and records it.
    fn collect_answers(&mut self) {
        let now = Instant::now();
        while self
            .slots
            .front()
            .is_some_and(|s| s.state == SlotState::Ready)
        {
            let Some(mut slot) = self.slots.pop_front() else {
                break;
            };
            let mut adu = [0u8; MAX_TCP_ADU_LEN];
            match encode_adu(
                slot.client_tid,
                slot.unit,
                &slot.resp[..slot.resp_len],
                &mut adu,
            ) {
                Ok(n) => self.cout.extend_from_slice(&adu[..n]),
                Err(e) => warn!("cannot encode an answer for the client: {e}"),
            }
            let latency = now.saturating_duration_since(slot.started);
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.finish_event(&mut slot, latency_us);
        }
    }

    /// Appends the event of a finished slot: the whole `request` record, or the `outcome` of a
    /// request whose record was made durable before forwarding.
    fn finish_event(&self, slot: &mut Slot, latency_us: u64) {
        let mut event = std::mem::take(&mut slot.event);
        event.latency_us = Some(latency_us);
        match slot.ref_seq {
            Some(seq) => {
                let outcome = Event {
                    kind: Kind::Outcome,
                    conduit: event.conduit,
                    src: event.src,
                    dst: event.dst,
                    unit: event.unit,
                    tid: event.tid,
                    fc: event.fc,
                    exception: event.exception,
                    latency_us: event.latency_us,
                    ref_seq: Some(seq),
                    ..Event::default()
                };
                self.shared.recorder.record(outcome);
            }
            None => self.shared.recorder.record(event),
        }
    }

    /// Writes pending requests to the device and pending answers to the client.
    async fn flush(&mut self, state: &Arc<ConduitState>) -> Result<(), End> {
        self.flush_upstream(state).await?;
        if !self.cout.is_empty() {
            let limit = state.settings.idle_timeout;
            if let Err(e) = write_all_within(&self.client, &self.cout, limit).await {
                debug!(peer = %self.peer, "client write failed: {e}");
                self.cout.clear();
                return Err(End::ClientError);
            }
            self.cout.clear();
        }
        Ok(())
    }

    async fn flush_upstream(&mut self, state: &Arc<ConduitState>) -> Result<(), End> {
        if self.uout.is_empty() {
            return Ok(());
        }
        let result = match &self.up {
            Some(up) => write_all_within(up, &self.uout, state.settings.request_timeout).await,
            None => Ok(()),
        };
        self.uout.clear();
        if let Err(e) = result {
            self.upstream_lost(&format!("device write failed: {e}"));
            self.collect_answers();
        }
        Ok(())
    }

    /// Records the requests still queued when a session ends.
    fn abandon(&mut self, end: End) {
        let now = Instant::now();
        while let Some(mut slot) = self.slots.pop_front() {
            if slot.state != SlotState::Ready {
                slot.event.message = Some(format!("unanswered: {}", end.as_str()));
            }
            let latency = now.saturating_duration_since(slot.started);
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.finish_event(&mut slot, latency_us);
        }
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
        self.shared.tracker.leave();
    }

    /// An event with the session's fixed fields filled in.
    fn base_event(&self, state: &ConduitState) -> Event {
        Event {
            conduit: Some(Arc::clone(&self.shared.conduit)),
            src: Some(self.peer_label.clone()),
            dst: Some(Arc::clone(&state.settings.upstream.label)),
            mode: Some(Cow::Borrowed(state.settings.mode.as_str())),
            ..Event::default()
        }
    }
}

/// Reads from the device, or waits forever when there is no device connection.
async fn read_upstream(up: &mut Option<TcpStream>, buf: &mut BytesMut) -> std::io::Result<usize> {
    match up {
        Some(stream) => read_some(stream, buf, READ_CHUNK).await,
        None => std::future::pending().await,
    }
}

/// Fills the request fields of an event (function, access, table, range, written values).
fn describe_request(request: &Request<'_>, event: &mut Event) {
    event.access = Some(Cow::Borrowed(request.access().as_str()));
    // FC 23 touches two ranges (read, write): the record names the written one.
    let mut chosen = None;
    for (table, range) in request.ranges() {
        chosen = Some((table, range));
        if request.access() != Access::Write {
            break;
        }
    }
    if let Some((table, range)) = chosen {
        event.table = Some(Cow::Borrowed(table.as_str()));
        event.address = Some(range.start());
        event.quantity = Some(range.count());
    }
    if let Some(written) = request.written() {
        event.set_values(written.iter());
    }
}
