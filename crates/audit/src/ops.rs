//! What the writer measures for the operations view beyond its plain counters: the latency of
//! every fsync in fixed buckets (a real histogram for `/metrics`), and the last signed
//! checkpoint written (the dashboard's "last checkpoint", next to the chain head).
//!
//! ```text
//!  writer thread: flush()  ─ fsync took N µs ─▶ Ops::fsync(N)        one relaxed atomic add
//!                          ─ checkpoint on disk ─▶ Ops::checkpoint(seq, ts)   a short lock,
//!                                                                    once per checkpoint
//!  anyone: AuditHandle::stats() ─▶ Stats::fsync_histogram, Stats::last_checkpoint
//! ```
//!
//! Cheap on purpose: the writer is on the data path of durable records. The buckets are fixed
//! (no allocation, no lock); the reader sums them when it is asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::event::parse_ts;

/// Upper bounds of the fsync latency buckets, in microseconds (50 µs to 5 s: an SSD's fsync is
/// well under a millisecond, a disk's tens of milliseconds, a stalled one seconds). One more
/// bucket holds everything above the last bound.
pub const FSYNC_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// Number of fsync buckets: one per bound and the overflow bucket.
pub const FSYNC_BUCKETS: usize = FSYNC_BOUNDS_US.len() + 1;

/// fsync calls per latency bucket, each counted once (not cumulative): `counts[i]` took at
/// most `FSYNC_BOUNDS_US[i]` and more than the bound before; the last one, more than 5 s.
/// Failed fsyncs are counted too (they took that long, and `fsync_micros` sums them): after a
/// failure [`Self::count`] is above `Stats::fsyncs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FsyncHistogram {
    /// Calls per bucket.
    pub counts: [u64; FSYNC_BUCKETS],
}

impl FsyncHistogram {
    /// (upper bound in seconds, calls in that bucket); the overflow bucket's bound is
    /// `f64::INFINITY`.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        FSYNC_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
    }

    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The last signed checkpoint written (and fsynced) to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointMark {
    /// Its sequence number: with the public key, every record before it is proven.
    pub seq: u64,
    /// Its `ts`, in Unix milliseconds (0 if the record's time could not be read).
    pub unix_ms: u64,
}

/// The writer's side: updated by the writer thread, read by [`crate::AuditHandle::stats`].
#[derive(Debug, Default)]
pub(crate) struct Ops {
    fsync: [AtomicU64; FSYNC_BUCKETS],
    checkpoint: Mutex<Option<CheckpointMark>>,
}

impl Ops {
    /// One fsync that took `micros`.
    pub(crate) fn fsync(&self, micros: u64) {
        let i = FSYNC_BOUNDS_US
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(FSYNC_BOUNDS_US.len());
        if let Some(c) = self.fsync.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A checkpoint record with `seq` and `ts` is on disk.
    pub(crate) fn checkpoint(&self, seq: u64, ts: Option<&str>) {
        let unix_ms = ts.and_then(parse_ts).map_or(0, |t| {
            u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        });
        *self
            .checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(CheckpointMark { seq, unix_ms });
    }

    pub(crate) fn fsync_histogram(&self) -> FsyncHistogram {
        let mut h = FsyncHistogram::default();
        for (out, c) in h.counts.iter_mut().zip(&self.fsync) {
            *out = c.load(Ordering::Relaxed);
        }
        h
    }

    pub(crate) fn last_checkpoint(&self) -> Option<CheckpointMark> {
        *self
            .checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_fsync_lands_in_the_first_bucket_whose_bound_holds_it() {
        let ops = Ops::default();
        for us in [0, 50, 51, 999, 1_000, 1_001, 5_000_000, 5_000_001, u64::MAX] {
            ops.fsync(us);
        }
        let h = ops.fsync_histogram();
        assert_eq!(h.count(), 9);
        let b: Vec<(f64, u64)> = h.buckets().collect();
        assert_eq!(b[0], (0.00005, 2), "0 and 50 µs: at most 50 µs");
        assert_eq!(b[1], (0.0001, 1), "51 µs");
        assert_eq!(b[4], (0.001, 2), "999 and 1000 µs");
        assert_eq!(b[5].1, 1, "1001 µs");
        assert_eq!(b[15], (5.0, 1));
        assert_eq!(b[16], (f64::INFINITY, 2), "above 5 s");
    }

    #[test]
    fn the_last_checkpoint_keeps_its_seq_and_time() {
        let ops = Ops::default();
        assert_eq!(ops.last_checkpoint(), None);
        ops.checkpoint(7, Some("2026-12-02T22:00:00.250Z"));
        ops.checkpoint(12, Some("2026-12-02T22:01:00.000Z"));
        let c = ops.last_checkpoint().unwrap();
        assert_eq!(c.seq, 12);
        assert_eq!(c.unix_ms, 1_796_248_860_000);
        ops.checkpoint(13, Some("not a time"));
        assert_eq!(ops.last_checkpoint().unwrap().unix_ms, 0);
    }
}
