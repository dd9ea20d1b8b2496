//! The receive side's verification state machine: every datagram is authenticated, placed in
//! the sequence window, and only then applied to the image.
//!
//! Order of checks, first failure wins: length, magic and algorithm -> tag (`bad_tag`) ->
//! stream id (`foreign`: another replication, or one configured with other blocks) -> epoch
//! and sequence window (`replayed`, or a `duplicate` of a repeat) -> the image (`reordered`:
//! the segment already holds a later datagram's values).
//!
//! Sequence numbers start at 0 in each epoch (a transmit agent's start time). The window holds
//! the last [`WINDOW`] sequence numbers: a number seen in it is a duplicate (every datagram is
//! sent `repeat` times, so these are expected and only counted); a number below it, or an older
//! epoch, is a replay. Numbers that leave the window unseen were lost: a `gap`. A newer epoch
//! means the transmit agent restarted; the window starts again.
//!
//! After a restart of the receive side, [`Receiver::restore`] puts back the epoch and the
//! highest sequence number accepted before it (`state.rs`): every number up to it is then
//! `replayed`, even inside the window, since nothing tells a captured copy from a late repeat.

use std::time::Instant;

use crate::auth::VerifyKey;
use crate::datagram::{Datagram, DecodeError};
use crate::image::{Applied, Image};

/// Sequence numbers remembered for duplicate detection and reordering.
pub const WINDOW: u64 = 128;

/// The sliding window of one epoch.
#[derive(Debug, Clone)]
struct Window {
    highest: u64,
    lowest_seen: u64,
    /// Bit i: `highest - i` was seen.
    seen: u128,
    /// Restored after a restart: every number up to this one was accepted before it.
    floor: Option<u64>,
}

enum Slot {
    New { lost: u64 },
    Duplicate,
    TooOld,
}

impl Window {
    fn first(seq: u64) -> Self {
        Self {
            highest: seq,
            lowest_seen: seq,
            seen: 1,
            floor: None,
        }
    }

    fn restored(highest: u64) -> Self {
        Self {
            highest,
            lowest_seen: highest,
            // Nothing at or below `highest` is new, so nothing below it counts as lost.
            seen: u128::MAX,
            floor: Some(highest),
        }
    }

    /// Sequence numbers in the window that were never seen (and could have been sent).
    fn unseen(&self) -> u64 {
        (0..WINDOW)
            .filter(|&i| {
                self.highest
                    .checked_sub(i)
                    .is_some_and(|s| s >= self.lowest_seen)
                    && self.seen >> i & 1 == 0
            })
            .count() as u64
    }

    fn slot(&mut self, seq: u64) -> Slot {
        if seq > self.highest {
            let d = seq - self.highest;
            // Positions i with i + d >= WINDOW drop out; count the unseen ones.
            let mut lost = 0;
            for i in WINDOW.saturating_sub(d)..WINDOW {
                let in_epoch = self
                    .highest
                    .checked_sub(i)
                    .is_some_and(|s| s >= self.lowest_seen);
                if in_epoch && self.seen >> i & 1 == 0 {
                    lost += 1;
                }
            }
            lost += d.saturating_sub(WINDOW);
            self.seen = if d >= WINDOW { 0 } else { self.seen << d };
            self.seen |= 1;
            self.highest = seq;
            return Slot::New { lost };
        }
        let i = self.highest - seq;
        if i >= WINDOW || self.floor.is_some_and(|f| seq <= f) {
            return Slot::TooOld;
        }
        if self.seen >> i & 1 == 1 {
            return Slot::Duplicate;
        }
        self.seen |= 1 << i;
        self.lowest_seen = self.lowest_seen.min(seq);
        Slot::New { lost: 0 }
    }
}

/// Why a datagram was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Not a datagram of this format and algorithm (length, magic, fields).
    Malformed(DecodeError),
    /// The tag does not authenticate it: forged or corrupted.
    BadTag,
    /// Authenticated, but for another stream (another replication, or other blocks).
    Foreign,
    /// An epoch older than the current one, or a sequence number below the window.
    Replayed {
        /// Its epoch.
        epoch: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// The segment already holds a later datagram's values.
    Reordered {
        /// Its sequence number.
        seq: u64,
    },
    /// Authenticated, in order, but names no configured segment.
    UnknownSegment {
        /// Its block id.
        block: u16,
    },
}

impl Rejection {
    /// A stable snake_case name, used as the audit record's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadTag => "bad_tag",
            Self::Foreign => "foreign_stream",
            Self::Replayed { .. } => "replayed",
            Self::Reordered { .. } => "reordered",
            Self::UnknownSegment { .. } => "unknown_segment",
        }
    }

    /// True for what must raise an alert: everything but a late datagram overtaken by a newer
    /// one, which a lossy, reordering link produces on its own.
    pub fn is_alert(&self) -> bool {
        !matches!(self, Self::Reordered { .. })
    }
}

/// What happened to one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Applied to the image.
    Accepted {
        /// The datagram.
        datagram: Box<Datagram>,
        /// What the image did with it.
        applied: Applied,
        /// Sequence numbers that left the window unseen (lost on the way): a gap when > 0.
        lost: u64,
        /// First datagram of a new epoch after another one: the transmit side restarted.
        restarted: bool,
    },
    /// A repeat of a datagram already seen: expected, counted.
    Duplicate,
    /// Not applied.
    Rejected(Rejection),
}

/// Counters of the receive side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams applied.
    pub accepted: u64,
    /// Repeats dropped.
    pub duplicates: u64,
    /// Datagrams rejected, any reason.
    pub rejected: u64,
    /// Sequence numbers lost.
    pub lost: u64,
}

/// The receive side of one replication: verification state and image.
#[derive(Debug)]
pub struct Receiver {
    key: VerifyKey,
    stream: [u8; 8],
    epoch: Option<u64>,
    window: Option<Window>,
    image: Image,
    stale: Vec<bool>,
    counters: Counters,
}

/// A staleness change of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleChange {
    /// Block id.
    pub block: u16,
    /// True: it went stale; false: fresh again.
    pub stale: bool,
}

impl Receiver {
    /// A receiver for the stream `stream`, verifying with `key`, into `image`.
    pub fn new(key: VerifyKey, stream: [u8; 8], image: Image, blocks: usize) -> Self {
        Self {
            key,
            stream,
            epoch: None,
            window: None,
            image,
            stale: vec![false; blocks],
            counters: Counters::default(),
        }
    }

    /// Puts back where verification stood before a restart: `epoch`, and `seq` the highest
    /// number accepted in it. Older epochs and numbers up to `seq` are then `replayed`.
    pub fn restore(&mut self, epoch: u64, seq: u64) {
        self.epoch = Some(epoch);
        self.window = Some(Window::restored(seq));
    }

    /// The epoch and the highest sequence number accepted in it (what [`Receiver::restore`]
    /// takes), once a datagram was accepted.
    pub fn position(&self) -> Option<(u64, u64)> {
        Some((self.epoch?, self.window.as_ref()?.highest))
    }

    /// The stream id this receiver accepts.
    pub fn stream(&self) -> [u8; 8] {
        self.stream
    }

    /// The image.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Handles one datagram's bytes, received at `now`.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Outcome {
        let outcome = self.classify(bytes, now);
        match &outcome {
            Outcome::Accepted { lost, .. } => {
                self.counters.accepted += 1;
                self.counters.lost += lost;
            }
            Outcome::Duplicate => self.counters.duplicates += 1,
            Outcome::Rejected(_) => self.counters.rejected += 1,
        }
        outcome
    }

    fn classify(&mut self, bytes: &[u8], now: Instant) -> Outcome {
        let d = match Datagram::decode(bytes, &self.key) {
            Ok(d) => d,
            Err(DecodeError::Tag) => return Outcome::Rejected(Rejection::BadTag),
            Err(e) => return Outcome::Rejected(Rejection::Malformed(e)),
        };
        if d.stream != self.stream {
            return Outcome::Rejected(Rejection::Foreign);
        }
        let mut restarted = false;
        let mut lost = 0;
        match self.epoch {
            Some(e) if d.epoch < e => {
                return Outcome::Rejected(Rejection::Replayed {
                    epoch: d.epoch,
                    seq: d.seq,
                })
            }
            Some(e) if d.epoch > e => {
                lost += self.window.as_ref().map_or(0, Window::unseen);
                restarted = true;
                self.epoch = Some(d.epoch);
                self.window = Some(Window::first(d.seq));
            }
            Some(_) => {
                let w = self.window.get_or_insert_with(|| Window::first(d.seq));
                match w.slot(d.seq) {
                    Slot::New { lost: l } => lost += l,
                    Slot::Duplicate => return Outcome::Duplicate,
                    Slot::TooOld => {
                        return Outcome::Rejected(Rejection::Replayed {
                            epoch: d.epoch,
                            seq: d.seq,
                        })
                    }
                }
            }
            None => {
                self.epoch = Some(d.epoch);
                self.window = Some(Window::first(d.seq));
            }
        }
        match self.image.apply(&d, now) {
            Applied::Reordered => Outcome::Rejected(Rejection::Reordered { seq: d.seq }),
            Applied::Unknown => Outcome::Rejected(Rejection::UnknownSegment { block: d.block }),
            applied => Outcome::Accepted {
                datagram: Box::new(d),
                applied,
                lost,
                restarted,
            },
        }
    }

    /// Blocks whose staleness changed since the last call (stale past `max_age`, or fresh
    /// again). A block that never arrived counts as stale only once data had arrived for it
    /// or `startup_over` is true, so a starting receiver does not alert before the first
    /// period has passed.
    pub fn stale_changes(&mut self, now: Instant, startup_over: bool) -> Vec<StaleChange> {
        let stale_now = self.image.stale_blocks(now);
        let mut changes = Vec::new();
        for (i, was) in self.stale.iter_mut().enumerate() {
            let is = stale_now.contains(&(i as u16));
            if is != *was && (startup_over || !is) {
                *was = is;
                changes.push(StaleChange {
                    block: i as u16,
                    stale: is,
                });
            }
        }
        changes
    }
}
