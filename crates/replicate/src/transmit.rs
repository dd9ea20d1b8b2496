//! The transmit agent (OT side): polls the blocks as a Modbus master and sends every snapshot
//! one way over UDP.
//!
//! The UDP socket is only ever written: the agent never calls a receive function on it, does
//! not `connect` it (so no ICMP error is ever reported back into the process), and works with
//! the reverse direction dropped and no route back. Since nothing can ask for a resend, each
//! datagram is sent `repeat` times, and every `refresh` the whole image is sent as values
//! whether it changed or not; in between, a segment that did not change is confirmed by a
//! short `unchanged` datagram carrying the SHA-256 of its values, so the receive side can tell
//! "still the same" from "the source is gone".
//!
//! With an audit chain ([`Transmitter::with_audit`], the transmit side's own, as the receive
//! side has its own) the agent records its `start` and `stop` (with its counters), every
//! `counters` interval a `counters` record, and the source's health per block: an `alert`
//! `source_read_failed` when reads start failing, then while they keep failing one such record
//! per `counters` interval with `count` (failed reads since the last record), `first_ts` and
//! `last_ts`, and an `alert` `source_recovered` (`count`: failed reads in the whole outage)
//! when it answers again. A change of state is recorded at most once per [`TRANSITION_GAP`]
//! per block (a change held back is written when the gap has passed), so a device that
//! flaps cannot write a record per poll, and no failure goes uncounted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use zonegate_audit::event::now_ts;
use zonegate_audit::{AuditHandle, Event, Kind as EventKind};
use zonegate_modbus::{AddressRange, Request, Response, UnitId};
use zonegate_policy::{ReplicaTable, Replication};

use crate::auth::TagKey;
use crate::datagram::{digest, segments, stream_id, Datagram, Kind};
use crate::link::{DeviceLink, LinkError};

/// Most registers one FC 3/4 read asks for (V1.1b3 limit).
const READ_REGISTERS: u16 = 125;
/// Most bits one FC 1/2 read asks for (V1.1b3 limit).
const READ_BITS: u16 = 2000;
/// At most one change of a block's source health (failing, recovered) is recorded this often.
pub const TRANSITION_GAP: Duration = Duration::from_secs(1);
/// Default interval of the `counters` record.
pub const DEFAULT_COUNTERS_EVERY: Duration = Duration::from_secs(60);

/// Counters of the transmit side, shared with whoever watches it.
#[derive(Debug, Default)]
pub struct TransmitStats {
    /// Datagrams sent (each repeat counted).
    pub datagrams: AtomicU64,
    /// Segment reads that failed (device gone, exception, timeout).
    pub read_failures: AtomicU64,
    /// `send_to` calls that failed.
    pub send_failures: AtomicU64,
    /// Block polls completed.
    pub polls: AtomicU64,
}

/// Why the agent could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransmitError {
    /// The UDP socket could not be bound.
    Bind(std::io::Error),
    /// The device link cannot be made.
    Link(LinkError),
    /// This build's transmit agent cannot read that source (the wording of check ZG-C041;
    /// no kind today).
    Unsupported(zonegate_policy::Unsupported),
}

impl std::fmt::Display for TransmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bind(e) => write!(f, "cannot bind the UDP socket: {e}"),
            Self::Link(e) => e.fmt(f),
            Self::Unsupported(u) => u.fmt(f),
        }
    }
}

impl std::error::Error for TransmitError {}

struct SegmentState {
    start: u16,
    count: u16,
    last_sent: Option<[u8; 32]>,
}

struct BlockState {
    id: u16,
    unit: u8,
    table: ReplicaTable,
    period: Duration,
    due: Instant,
    /// Each block keeps its own refresh schedule: a block read less often than others must
    /// not miss the refresh because a faster block's poll consumed it.
    next_refresh: Instant,
    segments: Vec<SegmentState>,
    health: Health,
}

/// What the chain was last told about one block's source reads, and what happened since.
#[derive(Default)]
struct Health {
    /// Reads are failing now.
    failing: bool,
    /// The chain's last health record said "failing".
    recorded_failing: bool,
    /// When the last health record of this block was written.
    last_record: Option<Instant>,
    /// Failed reads not yet in a `source_read_failed` record.
    pending: u64,
    /// Failed reads since the outage began.
    outage_failures: u64,
    first_ts: Option<String>,
    last_ts: Option<String>,
    outage_since: Option<Instant>,
    last_error: String,
}

impl Health {
    fn quiet_for(&self, gap: Duration, now: Instant) -> bool {
        self.last_record
            .is_none_or(|t| now.duration_since(t) >= gap)
    }
}

/// The transmit agent of one replication.
pub struct Transmitter {
    replication: Replication,
    key: TagKey,
    link: DeviceLink,
    socket: UdpSocket,
    stream: [u8; 8],
    epoch: u64,
    seq: u64,
    stats: Arc<TransmitStats>,
    audit: Option<AuditHandle>,
    counters_every: Duration,
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Transmitter {
    /// Binds the UDP socket (`transmit.bind`, or any address of the family of `transmit.to`)
    /// and prepares the device link. Nothing is sent yet.
    pub async fn new(replication: Replication, key: TagKey) -> Result<Self, TransmitError> {
        replication
            .source_runnable()
            .map_err(TransmitError::Unsupported)?;
        let link = DeviceLink::for_source(&replication.source, replication.serial.as_ref())
            .map_err(TransmitError::Link)?;
        let bind = replication.transmit.bind.unwrap_or_else(|| {
            if replication.transmit.to.is_ipv4() {
                SocketAddr::from(([0, 0, 0, 0], 0))
            } else {
                SocketAddr::from(([0u16; 8], 0))
            }
        });
        let socket = UdpSocket::bind(bind).await.map_err(TransmitError::Bind)?;
        let stream = stream_id(&replication);
        Ok(Self {
            replication,
            key,
            link,
            socket,
            stream,
            epoch: unix_us(SystemTime::now()),
            seq: 0,
            stats: Arc::new(TransmitStats::default()),
            audit: None,
            counters_every: DEFAULT_COUNTERS_EVERY,
        })
    }

    /// Records to `audit`, the transmit side's own chain (see the module docs).
    pub fn with_audit(mut self, audit: AuditHandle) -> Self {
        // An RTU link's bus faults and outages go to the same chain.
        self.link.set_audit(&self.replication.id, audit.clone());
        self.audit = Some(audit);
        self
    }

    /// Writes a `counters` record this often (default [`DEFAULT_COUNTERS_EVERY`]).
    pub fn counters_every(mut self, every: Duration) -> Self {
        self.counters_every = every.max(Duration::from_millis(100));
        self
    }

    fn record(&self, e: Event) {
        if let Some(a) = &self.audit {
            if let Err(err) = a.record(e, true) {
                tracing::error!(error = %err, "cannot queue a transmit-side audit record");
            }
        }
    }

    fn event(&self, kind: EventKind, message: String) -> Event {
        let mut e = Event::notice(kind, message);
        e.conduit = Some(self.replication.id.as_str().into());
        e.dst = Some(self.link.label().into());
        e
    }

    fn counters_text(&self) -> String {
        let s = &self.stats;
        format!(
            "polls={} datagrams={} read_failures={} send_failures={} seq={}",
            s.polls.load(Ordering::Relaxed),
            s.datagrams.load(Ordering::Relaxed),
            s.read_failures.load(Ordering::Relaxed),
            s.send_failures.load(Ordering::Relaxed),
            self.seq
        )
    }

    fn record_counters(&self, kind: EventKind, what: &str) {
        let mut e = self.event(kind, format!("{what}: {}", self.counters_text()));
        e.count = Some(self.stats.datagrams.load(Ordering::Relaxed));
        self.record(e);
    }

    fn health_event(&self, b: &BlockState, reason: &'static str, message: String) -> Event {
        let mut e = self.event(EventKind::Alert, message);
        e.reason = Some(reason.into());
        e.unit = Some(b.unit);
        e.table = Some(b.table.as_str().into());
        e.address = b.segments.first().map(|s| s.start);
        e.quantity = Some(
            b.segments
                .iter()
                .map(|s| s.count)
                .fold(0u16, u16::saturating_add),
        );
        e
    }

    /// A failed-reads record of block `b` now: `count` failures since the last one.
    fn record_failing(&self, b: &mut BlockState, now: Instant) {
        let h = &b.health;
        let first = !h.recorded_failing;
        let message = if first {
            format!(
                "block {}: reading the source failed ({}); nothing is sent for it until it answers",
                b.id, h.last_error
            )
        } else {
            format!(
                "block {}: {} more failed read(s) of the source, the last: {}",
                b.id, h.pending, h.last_error
            )
        };
        let mut e = self.health_event(b, "source_read_failed", message);
        e.count = Some(b.health.pending);
        e.first_ts.clone_from(&b.health.first_ts);
        e.last_ts.clone_from(&b.health.last_ts);
        self.record(e);
        let h = &mut b.health;
        h.pending = 0;
        h.first_ts = None;
        h.recorded_failing = true;
        h.last_record = Some(now);
    }

    fn record_recovered(&self, b: &mut BlockState, now: Instant) {
        let h = &b.health;
        let over = h
            .outage_since
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        let mut e = self.health_event(
            b,
            "source_recovered",
            format!(
                "block {}: the source answers again after {} failed read(s) over {over:.1} s",
                b.id, h.outage_failures
            ),
        );
        e.count = Some(h.outage_failures);
        self.record(e);
        let h = &mut b.health;
        h.recorded_failing = false;
        h.outage_failures = 0;
        h.pending = 0;
        h.first_ts = None;
        h.last_ts = None;
        h.outage_since = None;
        h.last_record = Some(now);
    }

    fn read_failed(&self, b: &mut BlockState, error: &LinkError, now: Instant) {
        let h = &mut b.health;
        if !h.failing {
            h.failing = true;
            if !h.recorded_failing {
                h.outage_since = Some(now);
            }
        }
        h.pending += 1;
        h.outage_failures += 1;
        let ts = now_ts();
        if h.first_ts.is_none() {
            h.first_ts = Some(ts.clone());
        }
        h.last_ts = Some(ts);
        h.last_error = error.to_string();
        if !h.recorded_failing && h.quiet_for(TRANSITION_GAP, now) {
            self.record_failing(b, now);
        }
    }

    fn read_ok(&self, b: &mut BlockState, now: Instant) {
        b.health.failing = false;
        if b.health.recorded_failing && b.health.quiet_for(TRANSITION_GAP, now) {
            self.record_recovered(b, now);
        }
    }

    /// Writes what the limits held back: a change of state once [`TRANSITION_GAP`] passed,
    /// failures counted once the `counters` interval passed (`all`: everything, at stop).
    fn flush_health(&self, blocks: &mut [BlockState], now: Instant, all: bool) {
        for b in blocks.iter_mut() {
            let h = &b.health;
            let changed = h.failing != h.recorded_failing;
            if changed && (all || h.quiet_for(TRANSITION_GAP, now)) {
                if h.failing {
                    self.record_failing(b, now);
                } else {
                    self.record_recovered(b, now);
                }
            } else if h.failing && h.pending > 0 && (all || h.quiet_for(self.counters_every, now)) {
                self.record_failing(b, now);
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<TransmitStats> {
        self.stats.clone()
    }

    /// The local address of the UDP socket.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Polls and sends until `stop` becomes true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let now = Instant::now();
        let mut blocks: Vec<BlockState> = self
            .replication
            .blocks
            .iter()
            .map(|b| BlockState {
                id: b.id,
                unit: b.unit,
                table: b.table,
                period: b.period,
                due: now,
                next_refresh: now + self.replication.transmit.refresh,
                segments: segments(b.table, b.range.start, b.range.end)
                    .into_iter()
                    .map(|(start, count)| SegmentState {
                        start,
                        count,
                        last_sent: None,
                    })
                    .collect(),
                health: Health::default(),
            })
            .collect();
        let refresh = self.replication.transmit.refresh;
        self.record(self.event(
            EventKind::Start,
            format!(
                "transmit agent started: source {}, {} block(s), datagrams to {} (UDP, one way, \
                 repeat {}, refresh {:?}), epoch {}",
                self.link.label(),
                self.replication.blocks.len(),
                self.replication.transmit.to,
                self.replication.transmit.repeat,
                refresh,
                self.epoch
            ),
        ));
        let mut next_counters = now + self.counters_every;
        loop {
            if *stop.borrow() {
                break;
            }
            let Some(next) = blocks.iter().map(|b| b.due).min() else {
                break;
            };
            // Wake for the counters and held-back health records too.
            let wake = next.min(next_counters).min(Instant::now() + TRANSITION_GAP);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.changed() => break,
            }
            let now = Instant::now();
            if now >= next_counters {
                self.record_counters(EventKind::Counters, "transmit counters");
                next_counters = now + self.counters_every;
            }
            self.flush_health(&mut blocks, now, false);
            for b in blocks.iter_mut().filter(|b| b.due <= now) {
                let full = now >= b.next_refresh;
                if full {
                    b.next_refresh = now + refresh;
                }
                // Keep the schedule on its grid; after a long stall, skip missed periods.
                b.due += b.period;
                if b.due <= now {
                    b.due = now + b.period;
                }
                self.poll(b, full).await;
            }
        }
        // What was held back is written before the stop record.
        self.flush_health(&mut blocks, Instant::now(), true);
        self.record_counters(EventKind::Stop, "transmit agent stopped");
    }

    async fn poll(&mut self, b: &mut BlockState, full: bool) {
        let timeout = self.replication.transmit.request_timeout;
        let unit = UnitId::new(b.unit);
        let mut out = Vec::new();
        let mut failure = None;
        for s in &mut b.segments {
            let values = match read_segment(&mut self.link, unit, b.table, s, timeout).await {
                Ok(v) => v,
                Err(e) => {
                    self.stats.read_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        replication = %self.replication.id,
                        block = b.id,
                        start = s.start,
                        error = %e,
                        "replication read failed; nothing sent for this segment"
                    );
                    failure = Some(e);
                    continue;
                }
            };
            let source_us = unix_us(SystemTime::now());
            let d = digest(&values);
            let (kind, payload) = if full || s.last_sent != Some(d) {
                (Kind::Values, values)
            } else {
                (Kind::Unchanged, d.to_vec())
            };
            s.last_sent = Some(d);
            let datagram = Datagram {
                kind,
                refresh: full,
                stream: self.stream,
                epoch: self.epoch,
                seq: self.seq,
                source_us,
                block: b.id,
                unit: b.unit,
                table: b.table,
                start: s.start,
                count: s.count,
                payload,
            };
            self.seq += 1;
            out.push(datagram.encode(&self.key));
        }
        // All segments once, then again: copies of one datagram are spread over time.
        for _ in 0..self.replication.transmit.repeat {
            for bytes in &out {
                match self
                    .socket
                    .send_to(bytes, self.replication.transmit.to)
                    .await
                {
                    Ok(_) => {
                        self.stats.datagrams.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.stats.send_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "replication send failed");
                    }
                }
            }
        }
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        match failure {
            Some(e) => {
                if !b.health.failing {
                    tracing::warn!(
                        replication = %self.replication.id,
                        block = b.id,
                        error = %e,
                        "replication source read failed; nothing sent for this block until it answers"
                    );
                }
                self.read_failed(b, &e, now);
            }
            None => {
                if b.health.failing {
                    tracing::info!(replication = %self.replication.id, block = b.id, "replication source answers again");
                }
                self.read_ok(b, now);
            }
        }
    }
}

/// Reads one segment with as many FC 1-4 requests as the V1.1b3 quantity limits need; returns
/// the values in datagram form (registers big-endian, bits packed LSB first).
async fn read_segment(
    link: &mut DeviceLink,
    unit: UnitId,
    table: ReplicaTable,
    s: &SegmentState,
    timeout: Duration,
) -> Result<Vec<u8>, LinkError> {
    let per_read = if table.is_bits() {
        READ_BITS
    } else {
        READ_REGISTERS
    };
    let mut regs = Vec::new();
    let mut bits: Vec<bool> = Vec::new();
    let end = u32::from(s.start) + u32::from(s.count);
    let mut at = u32::from(s.start);
    while at < end {
        let n = (end - at).min(u32::from(per_read)) as u16;
        let range = AddressRange::new(at as u16, n)
            .map_err(|e| LinkError::Protocol(format!("range: {e:?}")))?;
        let request = match table {
            ReplicaTable::Coils => Request::ReadCoils(range),
            ReplicaTable::Discrete => Request::ReadDiscreteInputs(range),
            ReplicaTable::Input => Request::ReadInputRegisters(range),
            _ => Request::ReadHoldingRegisters(range),
        };
        let pdu = link.call(unit, &request, timeout).await?;
        match Response::parse_for(&pdu, &request) {
            Ok(Response::ReadCoils(v) | Response::ReadDiscreteInputs(v)) => bits.extend(v.iter()),
            Ok(Response::ReadHoldingRegisters(v) | Response::ReadInputRegisters(v)) => {
                if v.len() != usize::from(n) {
                    return Err(LinkError::Protocol(format!(
                        "asked for {n} registers, got {}",
                        v.len()
                    )));
                }
                regs.extend_from_slice(v.as_bytes());
            }
            Ok(other) => {
                return Err(LinkError::Protocol(format!(
                    "unexpected response {other:?}"
                )))
            }
            Err(e) => return Err(LinkError::Protocol(format!("{e:?}"))),
        }
        at += u32::from(n);
    }
    if table.is_bits() {
        if bits.len() != usize::from(s.count) {
            return Err(LinkError::Protocol(format!(
                "asked for {} bits, got {}",
                s.count,
                bits.len()
            )));
        }
        let mut packed = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            if *b {
                packed[i / 8] |= 1 << (i % 8);
            }
        }
        Ok(packed)
    } else {
        Ok(regs)
    }
}
