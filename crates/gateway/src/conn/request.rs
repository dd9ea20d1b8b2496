//! The request path of a session: one whole request ADU in, a decision, its audit record, and
//! either an answer of the gateway's own (a denial, a refusal while the audit log fails) or
//! the request queued for the device; then, when its answer is in, the answer to the client,
//! the finished record, the monitor hand-off and the metrics.
//!
//! See the parent module (conn.rs) for the whole data path.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;
use tracing::{debug, warn};
use zonegate_audit::{Decision, Event, Kind};
use zonegate_modbus::tcp::{encode_adu, MAX_TCP_ADU_LEN};
use zonegate_modbus::Request;
use zonegate_modbus::{Access, ExceptionCode, FunctionCode, UnitId};

use super::{End, Session, MISMATCHED, NEXT_REQUEST_ID, UNANSWERED};
use crate::class::is_write_class;
use crate::record::FailureAction;
use crate::slots::{Slot, SlotState};
use crate::state::{ConduitState, DenyAction, Mode};
use crate::upstream::Unavailable;

impl Session {
    /// Decides one request and queues its answer or forwards it.
    pub(super) async fn handle_request(
        &mut self,
        state: &Arc<ConduitState>,
        tid: u16,
        unit: UnitId,
        pdu: &[u8],
    ) -> Result<(), End> {
        let started = Instant::now();
        let fc = pdu.first().copied().unwrap_or(0);
        let mut event = Box::new(self.base_event(state));
        // `ts` is the arrival, not the moment the record is queued (after the answer).
        event.at = Some(SystemTime::now());
        event.request_id = Some(NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed));
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
                self.push_local(tid, unit, pdu, code, event, started);
                return Ok(());
            }
        };
        describe_request(&request, &mut event);

        // The role is checked on every request, a resumed session's too.
        let role = self.tls_peer.as_ref().and_then(|p| p.role.as_deref());
        let mut verdict = state.decide(self.peer.ip(), role, unit, &request, started);
        event.reason = Some(Cow::Borrowed(verdict.reason));
        event.rule = verdict.rule.take();
        let ip = self.peer.ip();
        crate::watch::shadow(
            &self.shared,
            &event,
            ip,
            role,
            unit,
            &request,
            started,
            verdict.allow,
        );

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
            // A denied request is not activity: it never holds the session open.
            match state.settings.deny {
                DenyAction::Exception => {
                    let code = verdict.exception.unwrap_or(ExceptionCode::IllegalFunction);
                    self.push_local(tid, unit, pdu, code, event, started);
                }
                DenyAction::Drop | DenyAction::Close => {
                    let close = state.settings.deny == DenyAction::Close;
                    event.message = Some(if close {
                        "connection closed (deny: close)".to_owned()
                    } else {
                        "dropped (deny: drop)".to_owned()
                    });
                    // No answer goes back, but the monitor sees the refused request (a scan
                    // or a listen-only attempt is what it watches for) as one left unanswered.
                    let slot = Slot::new(tid, unit, pdu, event, started);
                    crate::watch::transaction(&self.shared, self.peer, &slot, 0);
                    self.shared.metrics.request(
                        &mut self.meter,
                        &slot.event,
                        0,
                        started.into_std(),
                    );
                    self.shared.recorder.record_denial(*slot.event);
                    if close {
                        self.end = Some(End::PolicyClose);
                    }
                }
            }
            return Ok(());
        }
        // Forwarded (allowed, or monitor mode, which promises to change no traffic).
        self.last_activity = started;
        self.authenticated = true;

        // Audit failure behaviour and durability before the request reaches the device.
        let write_class = is_write_class(&request);
        if let FailureAction::Block = self.shared.recorder.failure_action(write_class) {
            self.refuse_audit_unavailable(tid, unit, pdu, event, started, None);
            return Ok(());
        }
        let mut ref_seq = None;
        if self.shared.recorder.must_be_durable(write_class) {
            // Requests already forwarded go first: the device sees them in order anyway.
            self.flush_upstream(state).await?;
            let ticket = self.shared.recorder.append_durable(Event::clone(&event));
            match tokio::time::timeout(state.settings.request_timeout, ticket).await {
                Ok(Ok(seq)) => ref_seq = Some(seq),
                outcome => {
                    let why = match outcome {
                        Ok(Err(e)) => e,
                        _ => "the audit log did not confirm in time".to_owned(),
                    };
                    match self.shared.recorder.on_durable_failure(write_class, &why) {
                        FailureAction::Block => {
                            self.refuse_audit_unavailable(
                                tid,
                                unit,
                                pdu,
                                event,
                                started,
                                Some(why),
                            );
                            return Ok(());
                        }
                        FailureAction::Forward => {}
                    }
                }
            }
        }

        let mut slot = Slot::new(tid, unit, pdu, event, started);
        slot.ref_seq = ref_seq;
        if let Err(unavailable) = self.ready_link(state).await? {
            let (code, why) = match unavailable {
                Unavailable::Unreachable => (
                    ExceptionCode::GatewayPathUnavailable,
                    "unanswered: the device is unreachable",
                ),
                Unavailable::Busy => (
                    ExceptionCode::GatewayTargetFailedToRespond,
                    "unanswered: every device connection stayed busy for request_timeout",
                ),
                Unavailable::Handshake(why) => {
                    self.upstream_handshake_failed(state, &why);
                    (
                        ExceptionCode::GatewayPathUnavailable,
                        "unanswered: the TLS handshake with the device failed",
                    )
                }
            };
            slot.fail(code, why);
            self.slots.push(slot);
            return Ok(());
        }
        let Some(link) = &mut self.link else {
            // `ready_link` left a link or said why not.
            slot.fail(ExceptionCode::GatewayPathUnavailable, "unanswered: no link");
            self.slots.push(slot);
            return Ok(());
        };
        let utid = link.conn.next_utid();
        let mut adu = [0u8; MAX_TCP_ADU_LEN];
        match encode_adu(utid, unit, pdu, &mut adu) {
            Ok(n) => self.uout.extend_from_slice(&adu[..n]),
            Err(e) => {
                // Cannot happen for a PDU the deframer accepted; answer rather than hang.
                warn!("cannot re-encode a request for the device: {e}");
                slot.fail(
                    ExceptionCode::ServerDeviceFailure,
                    "unanswered: cannot re-encode the request",
                );
                self.slots.push(slot);
                return Ok(());
            }
        }
        if !request.expects_response() {
            // FC 8 / 0x0004 Force Listen Only: the device never answers, neither do we.
            slot.event.message = Some("no response expected".to_owned());
            self.finish_event(slot, 0, started);
            return Ok(());
        }
        slot.state = SlotState::Pending {
            utid,
            // Counted from now, not from arrival: the request may have waited for its durable
            // record or for a busy device connection's quiet period.
            // A bus answers within its own timing (queue, retries): see bus.rs.
            deadline: Instant::now() + state.settings.answer_within(),
        };
        self.slots.push(slot);
        Ok(())
    }

    /// Answers 0x04 instead of forwarding: the audit log cannot take the request's record
    /// (`audit.on_failure`); `why`, when known, goes into the record's message.
    fn refuse_audit_unavailable(
        &mut self,
        tid: u16,
        unit: UnitId,
        pdu: &[u8],
        mut event: Box<Event>,
        started: Instant,
        why: Option<String>,
    ) {
        event.reason = Some("audit_unavailable".into());
        event.decision = Some(Decision::Deny);
        if why.is_some() {
            event.message = why;
        }
        let code = ExceptionCode::ServerDeviceFailure;
        self.push_local(tid, unit, pdu, code, event, started);
    }

    /// Queues an answer made by the gateway itself (an exception).
    pub(super) fn push_local(
        &mut self,
        tid: u16,
        unit: UnitId,
        pdu: &[u8],
        code: ExceptionCode,
        event: Box<Event>,
        started: Instant,
    ) {
        // The request is kept for the monitor, which watches refused requests too.
        let mut slot = Slot::new(tid, unit, pdu, event, started);
        slot.set_exception(pdu.first().copied().unwrap_or(0), code);
        self.slots.push(slot);
    }

    /// Moves every ready answer at the head of the queue to the client buffer and records it.
    pub(super) fn collect_answers(&mut self) {
        // Called twice per loop turn, mostly with nothing ready: the clock (a slow read on a
        // VM's clock source) is read only for an answer.
        let mut now = None;
        while let Some(slot) = self.slots.pop_ready() {
            let now = *now.get_or_insert_with(Instant::now);
            let mut adu = [0u8; MAX_TCP_ADU_LEN];
            match encode_adu(slot.client_tid, slot.unit, slot.answer(), &mut adu) {
                Ok(n) => self.cout.extend_from_slice(&adu[..n]),
                Err(e) => warn!("cannot encode an answer for the client: {e}"),
            }
            let latency = now.saturating_duration_since(slot.started);
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.finish_event(slot, latency_us, now);
        }
    }

    /// Appends the event of a finished slot: the whole `request` record, or the `outcome` of a
    /// request whose record was made durable before forwarding.
    pub(super) fn finish_event(&mut self, slot: Slot, latency_us: u64, now: Instant) {
        crate::watch::transaction(&self.shared, self.peer, &slot, latency_us);
        let mut event = slot.event;
        event.latency_us = Some(latency_us);
        self.shared
            .metrics
            .request(&mut self.meter, &event, latency_us, now.into_std());
        match slot.ref_seq {
            Some(seq) => {
                // An outcome that was no (right) answer says so in `reason`, and why.
                let reason = match event.message.as_deref() {
                    Some(m) if m.starts_with(UNANSWERED) => Some(Cow::Borrowed("unanswered")),
                    Some(m) if m.starts_with(MISMATCHED) => {
                        Some(Cow::Borrowed("mismatched_response"))
                    }
                    _ => None,
                };
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
                    request_id: event.request_id,
                    reason,
                    message: event.message,
                    ..Event::default()
                };
                self.shared.recorder.record(outcome);
            }
            // Policy denials are what a host no rule names can produce without limit: they are
            // aggregated. A refusal of the gateway's own (0x04 while the audit log fails) is
            // about an allowed request and keeps its full record.
            None if matches!(event.decision, Some(Decision::Deny | Decision::WouldDeny))
                && event.reason.as_deref() != Some("audit_unavailable") =>
            {
                self.shared.recorder.record_denial(*event);
            }
            None => self.shared.recorder.record(event),
        }
    }

    /// An event with the session's fixed fields filled in.
    pub(super) fn base_event(&self, state: &ConduitState) -> Event {
        Event {
            conduit: Some(Arc::clone(&self.labels.conduit)),
            src: Some(self.peer_label.clone()),
            dst: Some(self.labels.device(&state.settings.upstream.label)),
            mode: Some(Cow::Borrowed(state.settings.mode.as_str())),
            role: self.tls_peer.as_ref().and_then(|p| p.role.clone()),
            peer_subject: self.tls_peer.as_ref().map(|p| p.subject.clone()),
            peer_fingerprint: self.tls_peer.as_ref().map(|p| p.fingerprint.clone()),
            ..Event::default()
        }
    }
}

/// Fills the request fields of an event (function, access, table, range, written values).
pub(super) fn describe_request(request: &Request<'_>, event: &mut Event) {
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
