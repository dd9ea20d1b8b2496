//! Shared device connections (`max_upstream_in_flight` above 1): the client sessions of a
//! conduit share few device connections, their requests told apart by the gateway's own
//! transaction ids.
//!
//! ```text
//!  session ─MBAP─▶ SharedPort ─┐ renumbered, queued  ┌────────────────┐ one write ─▶ device
//!  session ─MBAP─▶ SharedPort ─┼───────────────────▶ │ connection task│
//!  session ─MBAP─▶ SharedPort ─┘ ◀── by trans. id ── │ (one per conn.)│ ◀─ one read ─ device
//! ```
//!
//! Why: a TCP proxy makes two system calls on the device side of every request, and the
//! device two more. A gateway that knows where each ADU ends and whose answer is whose can
//! put the requests of many sessions that meet in time into one write, and take their answers
//! in one read. That is the part of the data path where a Modbus-aware gateway can do less
//! work than a generic proxy (issue 9).
//!
//! One data path: to its session a [`SharedPort`] is a device link like a bus port (bus.rs):
//! `write` queues at once, `read_some` gives the answers in MBAP with the session's own
//! transaction ids. Matching, timeouts, late answers and audit stay in the session (conn.rs).
//!
//! Bounds and failures:
//! - At most `max_upstream_in_flight` requests are outstanding on a connection. More wait in
//!   the connection's queue in arrival order (so no session overtakes another); a request
//!   still queued when its session gave up on it (`request_timeout`) is never sent: its client
//!   already heard 0x0B, and a write must not reach the device after that.
//! - A request the device does not answer frees its place after twice `request_timeout` (the
//!   session answered 0x0B at the first; an answer in between still reaches the session, which
//!   records it as late). An answer nobody waits for is dropped and logged.
//! - A connection that fails (end of stream, an error, a broken frame) ends: every port on it
//!   reads the end of stream, its session answers 0x0B for what it still owed and borrows
//!   again, which opens a new connection.
//!
//! Only for a device known to answer pipelined requests: many PLCs answer only the first ADU
//! of a TCP segment. The default (1) lends each connection to one session at a time.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use zonegate_modbus::tcp;
use zonegate_modbus::UnitId;

use crate::bus::{mbap, push_mbap};
use crate::io::DeviceStream;

/// Bytes a connection task asks the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;
/// How often a connection task looks for requests the device left unanswered.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A request at the device: whose it is, and until when its place is kept.
struct Pending {
    answers: mpsc::UnboundedSender<Vec<u8>>,
    session_utid: u16,
    keep_until: Instant,
}

/// A request waiting for a place in flight.
struct Queued {
    answers: mpsc::UnboundedSender<Vec<u8>>,
    session_utid: u16,
    unit: UnitId,
    pdu: Vec<u8>,
    /// When its session answers it 0x0B: after that it is never sent.
    give_up_at: Instant,
    request_timeout: Duration,
}

#[derive(Default)]
struct Inner {
    /// Renumbered ADUs for the connection task to write, and how many.
    out: BytesMut,
    out_adus: u64,
    in_flight: HashMap<u16, Pending>,
    queue: VecDeque<Queued>,
    next_utid: u16,
    /// The answer channel of each open port (dropped when the connection ends: each port
    /// then reads the end of stream).
    ports: HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    /// Why the connection ended (then nothing more is accepted).
    closed: Option<String>,
}

struct Core {
    inner: Mutex<Inner>,
    /// Wakes the connection task: something to write.
    kick: Notify,
    /// `max_upstream_in_flight` (follows reloads: set by each borrow).
    limit: AtomicUsize,
    next_port: AtomicU64,
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// A transaction id no request in flight on this connection has.
    fn free_utid(&mut self) -> u16 {
        loop {
            let utid = self.next_utid;
            self.next_utid = self.next_utid.wrapping_add(1);
            if !self.in_flight.contains_key(&utid) {
                return utid;
            }
        }
    }

    /// Puts a request on the wire buffer under a fresh transaction id; its place in flight is
    /// kept until `keep_until`.
    fn send(
        &mut self,
        answers: mpsc::UnboundedSender<Vec<u8>>,
        session_utid: u16,
        unit: UnitId,
        pdu: &[u8],
        keep_until: Instant,
    ) {
        let utid = self.free_utid();
        // The PDU came out of the session's own MBAP frame, so it fits.
        if push_mbap(&mut self.out, utid, unit, pdu) {
            self.out_adus += 1;
            self.in_flight.insert(
                utid,
                Pending {
                    answers,
                    session_utid,
                    keep_until,
                },
            );
        }
    }

    /// Moves queued requests into flight while places are free; drops those given up on.
    fn refill(&mut self, limit: usize, now: Instant) {
        while self.in_flight.len() < limit {
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            if now < q.give_up_at {
                let keep_until = now + 2 * q.request_timeout;
                self.send(q.answers, q.session_utid, q.unit, &q.pdu, keep_until);
            }
        }
    }
}

/// One shared connection to the device; the pool keeps it while it is open.
#[derive(Clone)]
pub(crate) struct SharedConn {
    core: Arc<Core>,
    /// The `host:port` and TLS configuration it was opened under (a reload may change both).
    pub(crate) target: Arc<str>,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// The session thread whose runtime runs its task (workers.rs).
    pub(crate) home: usize,
}

impl SharedConn {
    /// Starts the connection task on `stream`.
    pub(crate) fn start(
        stream: DeviceStream,
        target: Arc<str>,
        tls: Option<Arc<rustls::ClientConfig>>,
        conduit: Arc<str>,
        write_limit: Duration,
        metrics: Option<&crate::metrics::Metrics>,
    ) -> Self {
        let core = Arc::new(Core {
            inner: Mutex::new(Inner {
                next_utid: 1,
                ..Inner::default()
            }),
            kick: Notify::new(),
            limit: AtomicUsize::new(1),
            next_port: AtomicU64::new(1),
        });
        let counters = metrics.map(|m| m.shared_counters(&conduit));
        tokio::spawn(run(
            Arc::clone(&core),
            stream,
            conduit,
            write_limit,
            counters,
        ));
        Self {
            core,
            target,
            tls,
            home: crate::workers::home(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.core.lock().closed.is_none()
    }

    /// Ports open on it (sessions attached, and ports idle in the pool).
    pub(crate) fn ports(&self) -> usize {
        self.core.lock().ports.len()
    }

    /// A new port for one session; `None` when the connection has ended.
    pub(crate) fn open_port(
        &self,
        in_flight: usize,
        request_timeout: Duration,
    ) -> Option<SharedPort> {
        self.core.limit.store(in_flight.max(1), Ordering::Relaxed);
        let id = self.core.next_port.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.core.lock();
        if inner.closed.is_some() {
            return None;
        }
        inner.ports.insert(id, tx);
        drop(inner);
        Some(SharedPort {
            core: Arc::clone(&self.core),
            id,
            request_timeout,
            inbuf: BytesMut::new(),
            answers: rx,
        })
    }
}

/// One session's view of a shared connection: MBAP in, MBAP out, its own transaction ids.
pub(crate) struct SharedPort {
    core: Arc<Core>,
    id: u64,
    request_timeout: Duration,
    /// A partial ADU of the session (it writes whole ADUs; kept for safety).
    inbuf: BytesMut,
    answers: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Drop for SharedPort {
    fn drop(&mut self) {
        self.core.lock().ports.remove(&self.id);
        // The task may have to end (the pool dropped the connection and this was the last port).
        self.core.kick.notify_one();
    }
}

impl SharedPort {
    /// Follows a reload: the limit and the timeout of the borrow that takes this idle port.
    pub(crate) fn configure(&mut self, in_flight: usize, request_timeout: Duration) {
        self.core.limit.store(in_flight.max(1), Ordering::Relaxed);
        self.request_timeout = request_timeout;
    }

    /// Queues the session's requests for the connection task (never waits).
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inbuf.extend_from_slice(buf);
        let now = Instant::now();
        let limit = self.core.limit.load(Ordering::Relaxed);
        let mut inner = self.core.lock();
        if let Some(why) = &inner.closed {
            self.inbuf.clear();
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, why.clone()));
        }
        let Some(answers) = inner.ports.get(&self.id).cloned() else {
            self.inbuf.clear();
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "port closed"));
        };
        let mut sent = false;
        loop {
            let wire = match tcp::decode_adu(&self.inbuf) {
                Ok(None) => break,
                Ok(Some(adu)) => {
                    let (utid, unit) = (adu.header.transaction_id, adu.header.unit_id);
                    // Behind the queue, never past it: arrival order is the fairness. Only a
                    // request that has to wait is copied.
                    if inner.queue.is_empty() && inner.in_flight.len() < limit {
                        let keep_until = now + 2 * self.request_timeout;
                        inner.send(answers.clone(), utid, unit, adu.pdu, keep_until);
                        sent = true;
                    } else {
                        inner.queue.push_back(Queued {
                            answers: answers.clone(),
                            session_utid: utid,
                            unit,
                            pdu: adu.pdu.to_vec(),
                            give_up_at: now + self.request_timeout,
                            request_timeout: self.request_timeout,
                        });
                    }
                    adu.wire_len()
                }
                Err(e) => {
                    self.inbuf.clear();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
            };
            self.inbuf.advance(wire);
        }
        drop(inner);
        if sent {
            self.core.kick.notify_one();
        }
        Ok(())
    }

    /// Waits for answers; 0 is the end of the connection.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let Some(adu) = self.answers.recv().await else {
            return Ok(0);
        };
        let mut n = adu.len();
        buf.extend_from_slice(&adu);
        // Whatever else arrived in the same read of the device goes in the same wake-up.
        while let Ok(more) = self.answers.try_recv() {
            n += more.len();
            buf.extend_from_slice(&more);
        }
        Ok(n)
    }

    /// True when the idle port may be lent again: its connection is open and nothing of an
    /// earlier session is left in it.
    pub(crate) fn still_usable(&mut self) -> bool {
        self.inbuf.is_empty() && self.answers.is_empty() && self.core.lock().closed.is_none()
    }
}

/// The connection task: writes what the ports queued, reads and hands out the answers.
/// `counters`: the writes and the requests they carried, in `/metrics`.
async fn run(
    core: Arc<Core>,
    mut stream: DeviceStream,
    conduit: Arc<str>,
    write_limit: Duration,
    counters: Option<(Counter, Counter)>,
) {
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    // One timer for the task's life, reset when it fires: a new `sleep_until` per turn of the
    // loop registered a timer each time, and each registration woke the runtime's driver
    // through its eventfd (one `write` system call per device round trip).
    let sweep = tokio::time::sleep_until(Instant::now() + SWEEP_EVERY);
    tokio::pin!(sweep);
    let (mut writes, mut requests) = (0u64, 0u64);
    let why = loop {
        if wait_for_company(&core.lock()) {
            // Once to the back of the run queue: the sessions that are ready now run first and
            // queue their requests, which then go in this one write (coalescing without a
            // timer: nothing waits when nobody else is ready).
            tokio::task::yield_now().await;
        }
        let adus = {
            let mut inner = core.lock();
            std::mem::swap(&mut inner.out, &mut wbuf);
            // Only the task and nobody else: the pool dropped it and every port is gone.
            if wbuf.is_empty() && inner.ports.is_empty() && Arc::strong_count(&core) == 1 {
                break None;
            }
            std::mem::take(&mut inner.out_adus)
        };
        if !wbuf.is_empty() {
            writes += 1;
            requests += adus;
            if let Some((w, r)) = &counters {
                w.inc();
                r.inc_by(adus);
            }
            if let Err(e) = stream.write_all_within(&wbuf, write_limit).await {
                break Some(format!("device write failed: {e}"));
            }
            wbuf.clear();
        }
        tokio::select! {
            biased;
            r = stream.read_some(&mut rbuf, READ_CHUNK) => match r {
                Ok(0) => break Some("device closed the connection".to_owned()),
                Err(e) => break Some(format!("device read failed: {e}")),
                Ok(_) => {
                    if let Err(why) = dispatch(&core, &mut rbuf, &conduit) {
                        break Some(why);
                    }
                }
            },
            () = core.kick.notified() => {}
            () = &mut sweep => {
                let now = Instant::now();
                sweep.as_mut().reset(now + SWEEP_EVERY);
                let limit = core.limit.load(Ordering::Relaxed);
                let mut inner = core.lock();
                let before = inner.in_flight.len();
                inner.in_flight.retain(|_, p| now < p.keep_until);
                let gone = before - inner.in_flight.len();
                if gone > 0 {
                    debug!(%conduit, gone, "shared device connection: unanswered requests freed their places");
                }
                inner.queue.retain(|q| now < q.give_up_at);
                inner.refill(limit, now);
            }
        }
    };
    let mut inner = core.lock();
    match &why {
        Some(why) => info!(%conduit, writes, requests, "shared device connection lost: {why}"),
        None => {
            debug!(%conduit, writes, requests, "shared device connection closed: no session uses it")
        }
    }
    inner.closed = Some(why.unwrap_or_else(|| "no session uses it".to_owned()));
    // Every sender goes: each port reads the end of stream.
    inner.ports.clear();
    inner.in_flight.clear();
    inner.queue.clear();
    inner.out.clear();
}

/// True when the task should yield once before writing what is queued, so that the requests
/// of other sessions ready in the same turn join the write. Only while another session holds
/// a port on this connection (a session keeps its port for its life, conn/device.rs): a lone
/// session's requests are all queued already, as it queues every whole ADU it read at once.
/// The yield is not free: in a single-threaded runtime tokio's `yield_now` polls the I/O
/// driver before the task runs again, one `epoll_wait` per device write (3 instead of 2 per
/// request at one connection, counted with `strace -c`).
///
/// Not Nagle's rule (yield only while an earlier write is unanswered): tried, and the device
/// got 10-40 % fewer requests per write at 16 and 64 connections.
fn wait_for_company(inner: &Inner) -> bool {
    !inner.out.is_empty() && inner.ports.len() > 1
}

/// Hands the device's answers in `rbuf` to the sessions they belong to; `Err` (why) when the
/// device sent a broken frame (the connection is dropped: its framing cannot be trusted).
fn dispatch(core: &Core, rbuf: &mut BytesMut, conduit: &str) -> Result<(), String> {
    let now = Instant::now();
    let limit = core.limit.load(Ordering::Relaxed);
    let mut inner = core.lock();
    loop {
        match tcp::decode_adu(rbuf) {
            Ok(None) => break,
            Ok(Some(adu)) => {
                let wire = adu.wire_len();
                let utid = adu.header.transaction_id;
                match inner.in_flight.remove(&utid) {
                    Some(p) => {
                        let out = mbap(p.session_utid, adu.header.unit_id, adu.pdu);
                        // Never an empty answer: the port would read it as the end of stream.
                        if !out.is_empty() {
                            // A session that ended meanwhile drops its answer with its port.
                            let _ = p.answers.send(out);
                        }
                    }
                    None => warn!(
                        conduit,
                        utid, "dropped an answer from the device: no request in flight has its transaction id"
                    ),
                }
                rbuf.advance(wire);
            }
            Err(e) => return Err(format!("broken frame from the device: {e}")),
        }
    }
    inner.refill(limit, now);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::io::Stream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn only_a_connection_another_session_uses_waits_for_company_before_a_write() {
        let mut inner = Inner::default();
        let port = || mpsc::unbounded_channel().0;
        let far = Instant::now() + Duration::from_secs(60);
        inner.ports.insert(1, port());
        assert!(
            !wait_for_company(&inner),
            "nothing queued: nothing to wait for"
        );
        inner.send(port(), 7, UnitId::new(1), &[3, 0, 0, 0, 1], far);
        assert!(
            !wait_for_company(&inner),
            "a lone session queued all it had"
        );
        inner.ports.insert(2, port());
        assert!(
            wait_for_company(&inner),
            "another session may join the write"
        );
    }

    fn read_request(unit: u8, utid: u16, start: u16) -> Vec<u8> {
        let pdu = [3, (start >> 8) as u8, start as u8, 0, 1];
        let mut out = vec![0u8; 32];
        let n = tcp::encode_adu(utid, UnitId::new(unit), &pdu, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// A device that answers every request with one register holding its start address, once
    /// it holds `batch` of them, in reverse order if asked (a device may answer out of order:
    /// the transaction id is what pairs them).
    async fn device(l: TcpListener, batch: usize, reverse: bool) {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut got: Vec<(u16, u8, u16)> = Vec::new();
        loop {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some(adu)) = tcp::decode_adu(&buf) {
                let start = u16::from_be_bytes([adu.pdu[1], adu.pdu[2]]);
                got.push((adu.header.transaction_id, adu.header.unit_id.get(), start));
                let w = adu.wire_len();
                buf.drain(..w);
            }
            if got.len() >= batch {
                if reverse {
                    got.reverse();
                }
                let mut out = Vec::new();
                for (utid, unit, start) in got.drain(..) {
                    let pdu = [3, 2, (start >> 8) as u8, start as u8];
                    let mut adu = [0u8; 32];
                    let n = tcp::encode_adu(utid, UnitId::new(unit), &pdu, &mut adu).unwrap();
                    out.extend_from_slice(&adu[..n]);
                }
                s.write_all(&out).await.unwrap();
            }
        }
    }

    fn start(s: TcpStream) -> SharedConn {
        SharedConn::start(
            Stream::Plain(s),
            Arc::from("dev"),
            None,
            Arc::from("C1"),
            Duration::from_secs(1),
            None,
        )
    }

    /// A shared connection to [`device`].
    async fn conn(batch: usize, reverse: bool) -> SharedConn {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(device(l, batch, reverse));
        start(TcpStream::connect(addr).await.unwrap())
    }

    /// A shared connection, and the device's end of it for the test to drive.
    async fn conn_to_raw_device() -> (SharedConn, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (dev, _) = l.accept().await.unwrap();
        (start(s), dev)
    }

    #[tokio::test]
    async fn answers_out_of_order_reach_their_sessions_under_their_own_transaction_ids() {
        let c = conn(3, true).await;
        let mut a = c.open_port(8, Duration::from_secs(2)).unwrap();
        let mut b = c.open_port(8, Duration::from_secs(2)).unwrap();
        // Both sessions use transaction id 7: the connection renumbers them.
        a.write(&read_request(1, 7, 100)).unwrap();
        b.write(&read_request(2, 7, 200)).unwrap();
        a.write(&read_request(1, 8, 101)).unwrap();
        let mut got_a = BytesMut::new();
        while got_a.len() < 2 * 11 {
            a.read_some(&mut got_a).await.unwrap();
        }
        let mut got_b = BytesMut::new();
        b.read_some(&mut got_b).await.unwrap();
        let mut expect_a = Vec::new();
        // The device answered in reverse: 8 (101) first, then 7 (100).
        for (utid, start) in [(8u16, 101u16), (7, 100)] {
            let pdu = [3, 2, (start >> 8) as u8, start as u8];
            let mut adu = [0u8; 32];
            let n = tcp::encode_adu(utid, UnitId::new(1), &pdu, &mut adu).unwrap();
            expect_a.extend_from_slice(&adu[..n]);
        }
        assert_eq!(&got_a[..], &expect_a[..]);
        let pdu = [3, 2, 0, 200];
        let mut adu = [0u8; 32];
        let n = tcp::encode_adu(7, UnitId::new(2), &pdu, &mut adu).unwrap();
        assert_eq!(&got_b[..], &adu[..n]);
    }

    #[tokio::test]
    async fn requests_beyond_the_limit_wait_and_go_in_arrival_order() {
        // The device answers only once it holds 2 requests: with a limit of 2 the third
        // waits in the queue until the first two are answered.
        let c = conn(2, false).await;
        let mut a = c.open_port(2, Duration::from_secs(2)).unwrap();
        for (utid, start) in [(1u16, 10u16), (2, 11), (3, 12), (4, 13)] {
            a.write(&read_request(1, utid, start)).unwrap();
        }
        assert_eq!(c.core.lock().in_flight.len(), 2);
        assert_eq!(c.core.lock().queue.len(), 2);
        let mut got = BytesMut::new();
        while got.len() < 4 * 11 {
            a.read_some(&mut got).await.unwrap();
        }
        let utids: Vec<u16> = got
            .chunks(11)
            .map(|f| u16::from_be_bytes([f[0], f[1]]))
            .collect();
        assert_eq!(utids, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_lost_connection_ends_every_port_and_refuses_new_ones() {
        let (c, dev) = conn_to_raw_device().await;
        let mut a = c.open_port(4, Duration::from_secs(2)).unwrap();
        let mut b = c.open_port(4, Duration::from_secs(2)).unwrap();
        a.write(&read_request(1, 1, 1)).unwrap();
        drop(dev);
        let mut buf = BytesMut::new();
        assert_eq!(a.read_some(&mut buf).await.unwrap(), 0);
        assert_eq!(b.read_some(&mut buf).await.unwrap(), 0);
        assert!(!c.is_open());
        assert!(c.open_port(4, Duration::from_secs(2)).is_none());
        assert!(a.write(&read_request(1, 2, 1)).is_err());
    }

    #[tokio::test]
    async fn a_request_queued_past_its_timeout_is_never_sent() {
        let (c, mut dev) = conn_to_raw_device().await;
        let mut a = c.open_port(1, Duration::from_millis(100)).unwrap();
        a.write(&read_request(1, 1, 1)).unwrap(); // in flight, never answered
        a.write(&read_request(1, 2, 2)).unwrap(); // queued behind it
                                                  // After twice the timeout the first frees its place; the second was given up on.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(c.core.lock().in_flight.len(), 0);
        assert_eq!(c.core.lock().queue.len(), 0);
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_millis(100), dev.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 12, "only the first request reached the device");
    }
}
