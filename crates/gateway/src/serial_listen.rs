//! The serial listener (`listen: rtu:///dev/ttyY?...`): zonegate as a slave on one RS-485
//! segment, a policy-enforcing bump in the wire between two bus segments.
//!
//! ```text
//!  master ─RTU─▶ line ─▶ LineClient (RTU ⇄ MBAP) ─▶ Session (conn.rs: decide, audit) ─▶ upstream
//! ```
//!
//! One data path: the line is a new kind of *client* link. [`LineClient`] frames RTU requests
//! with the codec's deframer (by the length the function code implies, CRC checked) and hands
//! them to the ordinary session as MBAP ADUs; the session decides, records and forwards them
//! exactly as for a TCP client, to whatever upstream the conduit has (`tcp://`, `tls://`, a bus).
//! Its answers go back on the line as RTU frames with a CRC, after a t3.5 silence.
//!
//! - The source of a request is the line itself: its identity is
//!   [`zonegate_policy::line_source`] (an address no network packet can carry), which a zone
//!   listing the line under `serial:` contributes to every rule that names the zone in `from:`;
//!   the `src` of its events is the line (`rtu:///dev/ttyY`).
//! - A malformed frame (CRC error, noise, a torn frame) gets no answer, as from a real slave:
//!   its bytes are skipped to the next valid frame (debug log only: on a noisy line an alert
//!   per byte would flood the audit log).
//! - A broadcast (unit 0) follows the policy like any request; the answer the session makes
//!   for it is not sent (a broadcast is never answered on a bus).
//! - The line is opened once; a session ends (lock-out idle, `deny: close`) and the next one
//!   starts on the same open line; when the line fails it is reopened every
//!   [`REOPEN_BACKOFF`], the outage logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use zonegate_modbus::{rtu, tcp, UnitId};
use zonegate_policy::{line_source, LineTiming, SerialLine, SerialOptions};

use crate::conn::Session;
use crate::io::Stream;
use crate::state::ConduitShared;

/// How long a failed line is left alone before it is reopened.
const REOPEN_BACKOFF: Duration = Duration::from_millis(500);

/// A serial line as the client side of a session.
pub(crate) struct LineClient {
    port: Arc<serial2_tokio::SerialPort>,
    silence: Duration,
    char_timeout: Duration,
    /// Bytes from the line not yet framed.
    rx: Vec<u8>,
    last_rx: Option<Instant>,
    next_tid: u16,
    /// Answer bytes from the session not yet a whole MBAP ADU.
    out: BytesMut,
}

impl LineClient {
    fn new(port: Arc<serial2_tokio::SerialPort>, timing: &LineTiming) -> Self {
        Self {
            port,
            silence: timing.t3_5,
            char_timeout: SerialOptions::default().char_timeout_for(timing),
            rx: Vec::with_capacity(2 * rtu::MAX_RTU_ADU_LEN),
            last_rx: None,
            next_tid: 1,
            out: BytesMut::new(),
        }
    }

    /// Frames whole requests from `rx` into `buf` as MBAP; skips what is no valid frame.
    fn frame(&mut self, buf: &mut BytesMut) -> usize {
        let mut produced = 0;
        loop {
            match rtu::decode_adu(&self.rx, rtu::Direction::Request) {
                Ok(None) => return produced,
                Ok(Some(adu)) => {
                    let wire = adu.wire_len();
                    let mut mbap = [0u8; tcp::MAX_TCP_ADU_LEN];
                    if let Ok(n) = tcp::encode_adu(self.next_tid, adu.address, adu.pdu, &mut mbap) {
                        buf.extend_from_slice(&mbap[..n]);
                        produced += n;
                    }
                    self.next_tid = self.next_tid.wrapping_add(1);
                    self.rx.drain(..wire);
                }
                Err(e) => {
                    // No answer to a malformed frame: skip to the next valid one.
                    debug!("serial listener: {e}: byte skipped");
                    self.rx.remove(0);
                }
            }
            if self.rx.is_empty() {
                return produced;
            }
        }
    }

    /// Waits for at least one whole request; 0 when the line failed. Cancel safe: state
    /// changes only after a read completed.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        let mut chunk = [0u8; 512];
        loop {
            let n = self.frame(buf);
            if n > 0 {
                return Ok(n);
            }
            let read = self.port.read(&mut chunk);
            let got = match self.last_rx.filter(|_| !self.rx.is_empty()) {
                Some(t) => match tokio::time::timeout_at(t + self.char_timeout, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        debug!(
                            "serial listener: {} bytes of a torn frame dropped",
                            self.rx.len()
                        );
                        self.rx.clear();
                        continue;
                    }
                },
                None => read.await,
            };
            match got {
                Ok(0) | Err(_) => return Ok(0),
                Ok(n) => {
                    self.rx.extend_from_slice(&chunk[..n]);
                    self.last_rx = Some(Instant::now());
                }
            }
        }
    }

    /// Writes the session's answers as RTU frames (none for a broadcast), each after t3.5.
    pub(crate) async fn write_all_within(
        &mut self,
        buf: &[u8],
        limit: Duration,
    ) -> std::io::Result<()> {
        self.out.extend_from_slice(buf);
        loop {
            let (unit, pdu, wire) = match tcp::decode_adu(&self.out) {
                Ok(None) => return Ok(()),
                Ok(Some(adu)) => (adu.header.unit_id, adu.pdu.to_vec(), adu.wire_len()),
                Err(e) => {
                    self.out.clear();
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ));
                }
            };
            self.out.advance(wire);
            if unit.is_broadcast() || unit == UnitId::new(0) {
                continue;
            }
            let mut frame = [0u8; rtu::MAX_RTU_ADU_LEN];
            let Ok(n) = rtu::encode_adu(unit, &pdu, &mut frame) else {
                continue;
            };
            if let Some(t) = self.last_rx {
                crate::bus::wait_precisely(t + self.silence).await;
            }
            match tokio::time::timeout(limit, self.port.write_all(&frame[..n])).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the line did not take the answer within {limit:?}"),
                    ))
                }
            }
        }
    }
}

fn open(line: &SerialLine) -> std::io::Result<serial2_tokio::SerialPort> {
    crate::bus::open_serial(
        &line.path,
        line.baud,
        line.parity,
        line.data_bits,
        line.stop_bits,
    )
}

/// Serves the serial line of a conduit until shutdown (the conduit's "accept loop").
pub(crate) async fn serve_line(line: SerialLine, shared: Arc<ConduitShared>) {
    let peer = SocketAddr::new(line_source(&line.path), 0);
    let label = format!("rtu://{}", line.path.display());
    let timing = LineTiming::new(line.baud, line.parity, line.data_bits, line.stop_bits);
    let mut shutdown = shared.shutdown.clone();
    let mut down_since: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match open(&line) {
            Ok(port) => {
                if let Some(t) = down_since.take() {
                    info!(conduit = %shared.conduit, "serial listener {label} back after {:?}", t.elapsed());
                }
                let port = Arc::new(port);
                loop {
                    shared.tracker.enter();
                    let client =
                        Stream::Serial(Box::new(LineClient::new(Arc::clone(&port), &timing)));
                    let failed =
                        Session::serve_line(client, peer, label.clone(), Arc::clone(&shared)).await;
                    if *shutdown.borrow() {
                        return;
                    }
                    if failed {
                        break;
                    }
                }
                warn!(conduit = %shared.conduit, "serial listener {label}: the line failed; reopening");
                down_since = Some(Instant::now());
            }
            Err(e) => {
                if down_since.is_none() {
                    warn!(conduit = %shared.conduit, "serial listener {label}: cannot open: {e}; retrying");
                    down_since = Some(Instant::now());
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(REOPEN_BACKOFF) => {}
            _ = shutdown.changed() => {}
        }
    }
}
