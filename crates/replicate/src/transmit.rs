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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use zonegate_modbus::{AddressRange, Request, Response, UnitId};
use zonegate_policy::{ReplicaTable, Replication};

use crate::auth::TagKey;
use crate::datagram::{digest, segments, stream_id, Datagram, Kind};
use crate::link::{DeviceLink, LinkError};

/// Most registers one FC 3/4 read asks for (V1.1b3 limit).
const READ_REGISTERS: u16 = 125;
/// Most bits one FC 1/2 read asks for (V1.1b3 limit).
const READ_BITS: u16 = 2000;

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
}

impl std::fmt::Display for TransmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bind(e) => write!(f, "cannot bind the UDP socket: {e}"),
            Self::Link(e) => e.fmt(f),
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
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Transmitter {
    /// Binds the UDP socket (`transmit.bind`, or any address of the family of `transmit.to`)
    /// and prepares the device link. Nothing is sent yet.
    pub async fn new(replication: Replication, key: TagKey) -> Result<Self, TransmitError> {
        let link = DeviceLink::for_upstream(&replication.source).map_err(TransmitError::Link)?;
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
        })
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
            })
            .collect();
        let refresh = self.replication.transmit.refresh;
        loop {
            if *stop.borrow() {
                return;
            }
            let Some(next) = blocks.iter().map(|b| b.due).min() else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.changed() => return,
            }
            let now = Instant::now();
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
    }

    async fn poll(&mut self, b: &mut BlockState, full: bool) {
        let timeout = self.replication.transmit.request_timeout;
        let unit = UnitId::new(b.unit);
        let mut out = Vec::new();
        for s in &mut b.segments {
            let values = match read_segment(&mut self.link, unit, b.table, s, timeout).await {
                Ok(v) => v,
                Err(e) => {
                    self.stats.read_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        replication = %self.replication.id,
                        block = b.id,
                        start = s.start,
                        error = %e,
                        "replication read failed; nothing sent for this segment"
                    );
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
