//! The slot queue of one session: the client's outstanding requests, answered in FIFO order.
//!
//! Every request that will be answered gets a [`Slot`]; answers leave in request order,
//! whether they come from the device or from the gateway itself (a denial, 0x04, 0x0A, 0x0B).
//! A slot sent to the device waits under the gateway's own transaction id (`utid`), so a client
//! that reuses transaction ids still gets the right answers. The queue is allocated once per
//! session (`max_in_flight` slots) and reused: no allocation per request.

use std::collections::VecDeque;

use tokio::time::Instant;
use zonegate_audit::Event;
use zonegate_modbus::{ExceptionCode, Response, UnitId};

/// Largest PDU (the MBAP length field allows 253 bytes after the unit id).
pub(crate) const MAX_PDU: usize = 253;

/// Where an answer slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Sent to the device under `utid`; answered with 0x0B after `deadline`.
    Pending { utid: u16, deadline: Instant },
    /// The answer PDU is in `resp[..resp_len]`.
    Ready,
}

/// One outstanding request of the client.
pub(crate) struct Slot {
    pub(crate) state: SlotState,
    pub(crate) client_tid: u16,
    pub(crate) unit: UnitId,
    /// The request PDU as forwarded (kept to check that the response answers it).
    req: [u8; MAX_PDU],
    req_len: usize,
    resp: [u8; MAX_PDU],
    resp_len: usize,
    /// Audit record of this request, completed when the answer leaves; boxed because it is
    /// large and a slot moves (queued, answered, handed to the audit writer as it is).
    pub(crate) event: Box<Event>,
    pub(crate) started: Instant,
    /// Seq of the durable `request` record written before forwarding (then an `outcome` follows).
    pub(crate) ref_seq: Option<u64>,
}

impl Slot {
    /// A slot that is ready (its answer is set next) for request `pdu`.
    pub(crate) fn new(
        tid: u16,
        unit: UnitId,
        pdu: &[u8],
        event: Box<Event>,
        started: Instant,
    ) -> Self {
        let mut req = [0u8; MAX_PDU];
        let n = pdu.len().min(MAX_PDU);
        req[..n].copy_from_slice(&pdu[..n]);
        Self {
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

    /// The request PDU.
    pub(crate) fn request(&self) -> &[u8] {
        &self.req[..self.req_len]
    }

    /// The answer PDU (valid once `Ready`).
    pub(crate) fn answer(&self) -> &[u8] {
        &self.resp[..self.resp_len]
    }

    pub(crate) fn set_answer(&mut self, pdu: &[u8]) {
        let n = pdu.len().min(MAX_PDU);
        self.resp[..n].copy_from_slice(&pdu[..n]);
        self.resp_len = n;
        self.state = SlotState::Ready;
    }

    /// Answers with exception `code` to function byte `function` (the codec's encoding).
    pub(crate) fn set_exception(&mut self, function: u8, code: ExceptionCode) {
        let pdu = Response::exception_pdu(function & 0x7F, code);
        self.set_answer(&pdu);
        self.event.exception = Some(code.to_u8());
    }

    /// Answers the forwarded request with exception `code` (its function byte is known).
    pub(crate) fn fail(&mut self, code: ExceptionCode, why: &str) {
        let fc = self.req[0];
        self.set_exception(fc, code);
        self.event.message = Some(why.to_owned());
    }

    pub(crate) fn pending_utid(&self) -> Option<u16> {
        match self.state {
            SlotState::Pending { utid, .. } => Some(utid),
            SlotState::Ready => None,
        }
    }
}

/// The FIFO of a session's slots.
pub(crate) struct Slots {
    queue: VecDeque<Slot>,
}

impl Slots {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            queue: VecDeque::with_capacity(n),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn push(&mut self, slot: Slot) {
        self.queue.push_back(slot);
    }

    /// The head of the queue, if its answer is ready (answers leave in order).
    pub(crate) fn pop_ready(&mut self) -> Option<Slot> {
        if self.queue.front()?.state == SlotState::Ready {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// Every slot, ready or not (a session that ends records them all).
    pub(crate) fn pop_any(&mut self) -> Option<Slot> {
        self.queue.pop_front()
    }

    /// The slot waiting for the device's answer under `utid`.
    pub(crate) fn pending_mut(&mut self, utid: u16) -> Option<&mut Slot> {
        self.queue
            .iter_mut()
            .find(|s| s.pending_utid() == Some(utid))
    }

    /// Whether any slot waits for the device.
    pub(crate) fn has_pending(&self) -> bool {
        self.queue.iter().any(|s| s.pending_utid().is_some())
    }

    /// The earliest deadline of a slot waiting for the device.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queue
            .iter()
            .filter_map(|s| match s.state {
                SlotState::Pending { deadline, .. } => Some(deadline),
                SlotState::Ready => None,
            })
            .min()
    }

    /// Answers 0x0B for every slot whose deadline passed; `expired` learns each `utid`.
    pub(crate) fn expire(&mut self, now: Instant, mut expired: impl FnMut(u16)) {
        for slot in &mut self.queue {
            if let SlotState::Pending { deadline, utid } = slot.state {
                if now >= deadline {
                    expired(utid);
                    slot.fail(
                        ExceptionCode::GatewayTargetFailedToRespond,
                        "unanswered: the device did not answer within request_timeout",
                    );
                }
            }
        }
    }

    /// Answers `code` for every slot still waiting for the device.
    pub(crate) fn fail_pending(&mut self, code: ExceptionCode, why: &str) {
        for slot in &mut self.queue {
            if slot.pending_utid().is_some() {
                slot.fail(code, why);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pending(utid: u16, deadline: Instant) -> Slot {
        let mut s = Slot::new(
            utid,
            UnitId::new(1),
            &[3, 0, 0, 0, 1],
            Box::default(),
            deadline,
        );
        s.state = SlotState::Pending { utid, deadline };
        s
    }

    #[test]
    fn answers_leave_in_request_order() {
        let now = Instant::now();
        let mut q = Slots::with_capacity(4);
        q.push(pending(1, now + Duration::from_secs(1)));
        q.push(pending(2, now + Duration::from_secs(1)));
        q.pending_mut(2).unwrap().set_answer(&[3, 2, 0, 7]);
        assert!(q.pop_ready().is_none(), "the first is still pending");
        q.pending_mut(1).unwrap().set_answer(&[3, 2, 0, 6]);
        assert_eq!(q.pop_ready().unwrap().client_tid, 1);
        assert_eq!(q.pop_ready().unwrap().answer(), [3, 2, 0, 7]);
        assert!(q.is_empty());
    }

    #[test]
    fn expired_slots_get_0b_and_name_their_utid() {
        let now = Instant::now();
        let mut q = Slots::with_capacity(4);
        q.push(pending(5, now));
        q.push(pending(6, now + Duration::from_secs(60)));
        let mut seen = Vec::new();
        q.expire(now, |u| seen.push(u));
        assert_eq!(seen, [5]);
        let s = q.pop_ready().unwrap();
        assert_eq!(s.answer(), [0x83, 0x0B]);
        assert_eq!(s.event.exception, Some(0x0B));
        assert!(s
            .event
            .message
            .as_deref()
            .unwrap()
            .starts_with("unanswered"));
        assert!(q.has_pending());
        assert_eq!(q.next_deadline(), Some(now + Duration::from_secs(60)));
    }
}
