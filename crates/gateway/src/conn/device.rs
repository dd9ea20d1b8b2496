//! The device side of a session: borrowing a pooled device connection and giving it back,
//! waiting out a busy one's quiet period, writing requests, matching the device's responses to
//! the requests in flight (by the session's own transaction ids), timing them out, and what a
//! lost connection does to the requests still owed.
//!
//! See the parent module (conn.rs) for the whole data path.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use zonegate_audit::Kind;
use zonegate_modbus::tcp::decode_adu;
use zonegate_modbus::ExceptionCode;
use zonegate_modbus::{Request, Response};

use super::{End, Session, MISMATCHED, READ_CHUNK};
use crate::slots::MAX_PDU;
use crate::state::ConduitState;
use crate::upstream::{Class, Link, Unavailable};

impl Session {
    /// Records why the TLS connection to the device failed (the request itself gets 0x0A).
    pub(super) fn upstream_handshake_failed(&self, state: &ConduitState, why: &str) {
        let mut ev = self.base_event(state);
        ev.kind = Kind::Connection;
        ev.reason = Some("upstream_tls_failed".into());
        ev.message = Some(why.to_owned());
        self.shared.recorder.record_denial(ev);
    }

    /// Makes sure the session holds a device connection that may be sent a request now: waits
    /// out a busy one (a late answer, or its quiet period), or borrows one from the pool.
    pub(super) async fn ready_link(
        &mut self,
        state: &Arc<ConduitState>,
    ) -> Result<Result<(), Unavailable>, End> {
        self.wait_until_quiet(state.settings.request_timeout).await;
        if let Some(link) = &self.link {
            // A shared port is kept between requests (below); a reload that points the
            // conduit elsewhere, or that stops sharing, lets it go here.
            if !link.is_shared() || link.suits(&state.settings) {
                return Ok(Ok(()));
            }
            self.link = None;
        }
        if self.shared.pool.all_lent() {
            // The wait may be long: answers already made leave first.
            self.flush(state).await?;
        }
        // A client with more requests queued behind this one waits behind the clients that
        // wait for their one answer (upstream/gate.rs).
        let class = match decode_adu(&self.cbuf) {
            Ok(Some(_)) => Class::Backlog,
            _ => Class::Prompt,
        };
        match self
            .shared
            .pool
            .borrow(
                &state.settings,
                &self.shared.conduit,
                &self.shared.recorder,
                class,
            )
            .await
        {
            Ok(link) => {
                self.ubuf.clear();
                self.link = Some(link);
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// While the device may still be working on a request answered 0x0B, reads its
    /// connection until the late answer comes or the quiet period ends (both bounded).
    pub(super) async fn wait_until_quiet(&mut self, request_timeout: Duration) {
        loop {
            let Some(link) = &mut self.link else {
                return;
            };
            let Some(until) = link.conn.busy_until() else {
                return;
            };
            let read = link.conn.stream.read_some(&mut self.ubuf, READ_CHUNK);
            match tokio::time::timeout_at(until, read).await {
                Err(_) => {
                    link.conn.quiet();
                    return;
                }
                Ok(Ok(0)) => self.upstream_lost("device closed the connection"),
                Ok(Err(e)) => self.upstream_lost(&format!("device read failed: {e}")),
                Ok(Ok(_)) => self.take_responses(),
            }
            self.expire_requests(Instant::now(), request_timeout);
        }
    }

    /// Gives the device connection back to the pool once nothing is owed on it.
    pub(super) fn give_back_link(&mut self) {
        let Some(link) = &mut self.link else {
            return;
        };
        // A port of a shared connection bounds nothing the pool lends (the connection bounds
        // its requests in flight): the session keeps it, and saves a borrow per request.
        if link.is_shared() {
            return;
        }
        // The clock is read only for a connection in its quiet period (rare).
        if link.conn.busy_until().is_some_and(|d| Instant::now() >= d) {
            link.conn.quiet();
        }
        if link.conn.busy_until().is_some()
            || self.slots.has_pending()
            || !self.uout.is_empty()
            || !self.ubuf.is_empty()
        {
            return;
        }
        if let Some(link) = self.link.take() {
            self.shared.pool.give_back(link);
        }
    }

    /// The device connection broke: every request waiting on it gets 0x0B.
    pub(super) fn upstream_lost(&mut self, why: &str) {
        info!(conduit = %self.shared.conduit, peer = %self.peer, "{why}");
        // Dropped, not given back: the next borrow opens a new one.
        self.link = None;
        self.ubuf.clear();
        self.slots.fail_pending(
            ExceptionCode::GatewayTargetFailedToRespond,
            "unanswered: the device connection was lost",
        );
    }

    /// Deframes device responses and matches them to pending slots.
    pub(super) fn take_responses(&mut self) {
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
                    self.report_response("broken frame from the device", &e.to_string(), None);
                    self.upstream_lost("dropping the device connection after a broken frame");
                    return;
                }
            };
            let pdu = &pdu[..len];
            let Some(slot) = self.slots.pending_mut(utid) else {
                let late = self.link.as_mut().is_some_and(|l| l.conn.take_late(utid));
                if late {
                    self.report_response(
                        "late response",
                        &format!("transaction id {utid} was already answered with 0x0B"),
                        None,
                    );
                } else {
                    self.report_response(
                        "unsolicited response",
                        &format!("transaction id {utid} matches no outstanding request"),
                        None,
                    );
                }
                continue;
            };
            let checked = if slot.unit != unit {
                Err(format!(
                    "unit id {} answers a request to unit {}",
                    unit.get(),
                    slot.unit.get()
                ))
            } else {
                match Request::parse(slot.request()) {
                    Ok(req) => Response::parse_for(pdu, &req)
                        .map(|resp| match resp {
                            Response::Exception { code, .. } => Some(code.to_u8()),
                            _ => None,
                        })
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            };
            match checked {
                Ok(exception) => {
                    slot.set_answer(pdu);
                    slot.event.exception = exception;
                }
                Err(why) => {
                    // The device answered this request, wrongly: waiting longer cannot bring a
                    // right answer, so the client hears 0x04 now (README, "On the wire").
                    slot.fail(
                        ExceptionCode::ServerDeviceFailure,
                        &format!("{MISMATCHED}: {why}"),
                    );
                    let id = slot.event.request_id;
                    self.report_response("mismatched response", &why, id);
                }
            }
        }
    }

    /// Logs and records a device response that was dropped (`request_id`: the request it
    /// claimed to answer).
    pub(super) fn report_response(&self, what: &str, why: &str, request_id: Option<u64>) {
        warn!(conduit = %self.shared.conduit, peer = %self.peer, "dropped {what} from the device: {why}");
        let state = self.shared.state.load();
        let mut ev = self.base_event(&state);
        ev.kind = Kind::Alert;
        ev.reason = Some(what.replace(' ', "_").into());
        ev.message = Some(why.to_owned());
        ev.request_id = request_id;
        self.shared.recorder.record(ev);
    }

    /// Answers 0x0B for every forwarded request whose deadline passed; its connection waits
    /// for the late answer up to another `request_timeout` before it is sent anything else.
    pub(super) fn expire_requests(&mut self, now: Instant, request_timeout: Duration) {
        let link = &mut self.link;
        let peer = self.peer;
        self.slots.expire(now, |utid| {
            debug!(%peer, utid, "device did not answer in time");
            if let Some(link) = link.as_mut() {
                link.conn.expired(utid, now + request_timeout);
            }
        });
    }

    pub(super) async fn flush_upstream(&mut self, state: &Arc<ConduitState>) -> Result<(), End> {
        if self.uout.is_empty() {
            return Ok(());
        }
        let result = match &mut self.link {
            Some(link) => {
                link.conn
                    .stream
                    .write_all_within(&self.uout, state.settings.request_timeout)
                    .await
            }
            None => Ok(()),
        };
        self.uout.clear();
        if let Err(e) = result {
            self.upstream_lost(&format!("device write failed: {e}"));
            self.collect_answers();
        }
        Ok(())
    }
}

/// Reads from the device, or waits forever when the session holds no device connection.
pub(super) async fn read_upstream(
    link: &mut Option<Link>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    match link {
        Some(link) => link.conn.stream.read_some(buf, READ_CHUNK).await,
        None => std::future::pending().await,
    }
}
