//! The replica image: the latest verified values of every segment, and how old they are.
//!
//! Ages are measured on the receive side's own monotonic clock, from the arrival of the last
//! datagram that confirmed a segment, so the two sides need no synchronised clocks (a diode's
//! receive side cannot reach the OT time server). A read answers:
//! - 0x0A when no block of the replication has the unit id (nothing to route to);
//! - 0x02 when an address is outside every block of that unit and table;
//! - 0x0B when a segment it touches has never arrived or is older than the block's `max_age`
//!   (the source is gone: stale values are never served).

use std::time::{Duration, Instant};

use zonegate_modbus::ExceptionCode;
use zonegate_policy::{ReplicaTable, Replication};

use crate::datagram::{digest, segments, values_len, Datagram, Kind, DIGEST_LEN};

/// One segment of a block on the receive side.
#[derive(Debug, Clone)]
struct Segment {
    start: u16,
    count: u16,
    values: Option<Vec<u8>>,
    digest: [u8; DIGEST_LEN],
    confirmed: Option<Instant>,
    source_us: u64,
    applied: Option<(u64, u64)>,
}

/// One block of the image.
#[derive(Debug, Clone)]
struct Block {
    unit: u8,
    table: ReplicaTable,
    max_age: Duration,
    segments: Vec<Segment>,
}

/// What applying a datagram did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// New values stored.
    Updated,
    /// The segment still holds the values the datagram names: its age is reset.
    Confirmed,
    /// An `unchanged` datagram names values the image does not hold (the change was lost):
    /// the segment keeps ageing until the next values datagram.
    Diverged,
    /// The segment already holds a later datagram's values: this older one is discarded.
    Reordered,
    /// No segment of the configured blocks matches the datagram's block, unit, table and range.
    Unknown,
}

/// The replica image of one replication.
#[derive(Debug, Clone)]
pub struct Image {
    blocks: Vec<Block>,
}

impl Image {
    /// An empty image (every read answers 0x0B until data arrives).
    pub fn new(r: &Replication) -> Self {
        let blocks = r
            .blocks
            .iter()
            .map(|b| Block {
                unit: b.unit,
                table: b.table,
                max_age: r.receive.max_age_for(b.period),
                segments: segments(b.table, b.range.start, b.range.end)
                    .into_iter()
                    .map(|(start, count)| Segment {
                        start,
                        count,
                        values: None,
                        digest: [0; DIGEST_LEN],
                        confirmed: None,
                        source_us: 0,
                        applied: None,
                    })
                    .collect(),
            })
            .collect();
        Self { blocks }
    }

    /// Applies an authenticated, in-window datagram received at `now`.
    pub fn apply(&mut self, d: &Datagram, now: Instant) -> Applied {
        let Some(block) = self.blocks.get_mut(usize::from(d.block)) else {
            return Applied::Unknown;
        };
        if block.unit != d.unit || block.table != d.table {
            return Applied::Unknown;
        }
        let Some(seg) = block
            .segments
            .iter_mut()
            .find(|s| s.start == d.start && s.count == d.count)
        else {
            return Applied::Unknown;
        };
        let order = (d.epoch, d.seq);
        if seg.applied.is_some_and(|a| a >= order) {
            return Applied::Reordered;
        }
        match d.kind {
            Kind::Values => {
                if d.payload.len() != values_len(d.table, d.count) {
                    return Applied::Unknown;
                }
                seg.digest = digest(&d.payload);
                seg.values = Some(d.payload.clone());
                seg.confirmed = Some(now);
                seg.source_us = d.source_us;
                seg.applied = Some(order);
                Applied::Updated
            }
            Kind::Unchanged => {
                if seg.values.is_none() || d.payload[..] != seg.digest[..] {
                    return Applied::Diverged;
                }
                seg.confirmed = Some(now);
                seg.source_us = d.source_us;
                seg.applied = Some(order);
                Applied::Confirmed
            }
        }
    }

    /// Blocks whose oldest segment is older than `max_age` (or never arrived) at `now`: their
    /// ids, for staleness alerts.
    pub fn stale_blocks(&self, now: Instant) -> Vec<u16> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.segments.iter().any(|s| !s.fresh(now, b.max_age)))
            .map(|(i, _)| i as u16)
            .collect()
    }

    /// The source time (µs since the Unix epoch) of the value at an address, if held.
    pub fn source_us(&self, unit: u8, table: ReplicaTable, address: u16) -> Option<u64> {
        self.segment_at(unit, table, address)
            .filter(|(_, s)| s.values.is_some())
            .map(|(_, s)| s.source_us)
    }

    fn segment_at(&self, unit: u8, table: ReplicaTable, a: u16) -> Option<(&Block, &Segment)> {
        self.blocks
            .iter()
            .filter(|b| b.unit == unit && b.table == table)
            .find_map(|b| {
                b.segments
                    .iter()
                    .find(|s| {
                        s.start <= a && u32::from(a) < u32::from(s.start) + u32::from(s.count)
                    })
                    .map(|s| (b, s))
            })
    }

    /// True when some block has this unit id.
    pub fn has_unit(&self, unit: u8) -> bool {
        self.blocks.iter().any(|b| b.unit == unit)
    }

    /// Reads `count` registers from `start`: big-endian bytes, as an FC 3/4 response holds them.
    pub fn read_registers(
        &self,
        unit: u8,
        table: ReplicaTable,
        start: u16,
        count: u16,
        now: Instant,
    ) -> Result<Vec<u8>, ExceptionCode> {
        let mut out = Vec::with_capacity(usize::from(count) * 2);
        self.each(unit, table, start, count, now, |values, i| {
            out.extend_from_slice(values.get(i * 2..i * 2 + 2).unwrap_or(&[0, 0]));
        })?;
        Ok(out)
    }

    /// Reads `count` bits from `start`: packed LSB first, as an FC 1/2 response holds them.
    pub fn read_bits(
        &self,
        unit: u8,
        table: ReplicaTable,
        start: u16,
        count: u16,
        now: Instant,
    ) -> Result<Vec<u8>, ExceptionCode> {
        let mut out = vec![0u8; usize::from(count).div_ceil(8)];
        let mut n = 0usize;
        self.each(unit, table, start, count, now, |values, i| {
            let bit = values.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
            if bit {
                if let Some(byte) = out.get_mut(n / 8) {
                    *byte |= 1 << (n % 8);
                }
            }
            n += 1;
        })?;
        Ok(out)
    }

    /// Calls `f(segment values, index in segment)` for every address, in order, after checking
    /// that all of them are held and fresh.
    fn each(
        &self,
        unit: u8,
        table: ReplicaTable,
        start: u16,
        count: u16,
        now: Instant,
        mut f: impl FnMut(&[u8], usize),
    ) -> Result<(), ExceptionCode> {
        if !self.has_unit(unit) {
            return Err(ExceptionCode::GatewayPathUnavailable);
        }
        let end = u32::from(start) + u32::from(count);
        if count == 0 || end > 0x1_0000 {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        // First pass: every address is covered (0x02 wins over 0x0B: the map is static).
        let mut a = u32::from(start);
        let mut parts = Vec::new();
        while a < end {
            let Some((b, s)) = self.segment_at(unit, table, a as u16) else {
                return Err(ExceptionCode::IllegalDataAddress);
            };
            let seg_end = (u32::from(s.start) + u32::from(s.count)).min(end);
            parts.push((
                b,
                s,
                (a - u32::from(s.start)) as usize,
                (seg_end - a) as usize,
            ));
            a = seg_end;
        }
        for (b, s, _, _) in &parts {
            if !s.fresh(now, b.max_age) {
                return Err(ExceptionCode::GatewayTargetFailedToRespond);
            }
        }
        for (_, s, from, len) in parts {
            let values = s.values.as_deref().unwrap_or(&[]);
            for i in from..from + len {
                f(values, i);
            }
        }
        Ok(())
    }
}

impl Segment {
    fn fresh(&self, now: Instant, max_age: Duration) -> bool {
        self.values.is_some()
            && self
                .confirmed
                .is_some_and(|t| now.saturating_duration_since(t) <= max_age)
    }
}
