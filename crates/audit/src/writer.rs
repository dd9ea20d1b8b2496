//! The writer: [`AuditLog::start`] spawns one thread that owns the log file; every
//! [`AuditHandle`] (cheap to clone, `Send + Sync`) feeds it through a bounded channel.
//!
//! # How the gateway calls it
//! ```no_run
//! # async fn demo() -> Result<(), zonegate_audit::AuditError> {
//! use zonegate_audit::{AuditConfig, AuditLog, Decision, Event, Kind};
//! let mut cfg = AuditConfig::new("zonegate-audit.log");
//! cfg.policy_hash = Some(zonegate_audit::sha256_hex(b"model file bytes"));
//! let audit = AuditLog::start(cfg)?;            // writes genesis (new log) and `start`
//! audit.policy_loaded("…hash…", "loaded site.yaml").await?;
//!
//! // A write-class request: append durable and await BEFORE forwarding.
//! if audit.should_block(true) { /* answer exception 0x04 */ }
//! let ev = Event { conduit: Some("C1".into()), fc: Some(16), decision: Some(Decision::Allow),
//!                  ..Event::default() };
//! match audit.append(ev, true).await {
//!     Ok(seq) => { /* forward; later append an `outcome` with ref_seq: Some(seq) */ }
//!     Err(_) if audit.on_failure() == zonegate_audit::OnFailure::Continue => { /* forward */ }
//!     Err(_) => { /* answer exception 0x04 (server device failure) */ }
//! }
//! // A read: append once when the transaction completes, not durable, no need to await.
//! drop(audit.append(Event::new(Kind::Request), false));
//!
//! audit.shutdown().await?;                      // `stop` record, final checkpoint, fsync
//! # Ok(()) }
//! ```
//!
//! # Failure contract (SR 2.10)
//! When a write or fsync fails, every ticket of the failed batch resolves to
//! `Err(AuditError::Unavailable)`, [`AuditHandle::is_healthy`] turns false, an `audit_failure`
//! alarm is logged with `tracing::error!` and counted. The records of the failed batch (and of
//! every batch while unhealthy, up to [`AuditConfig::backlog`]) are kept in memory. The writer
//! retries on the next batch (at most every 100 ms) and every
//! [`AuditConfig::retry_interval`]: it re-opens the file, cuts off any partial write, writes an
//! `audit_recovered` record (`lost`, `delayed`, outage span in `message`), then the kept records
//! (new seq, original `ts`), and turns healthy again. Nothing panics; the process never exits
//! because of the log. The gateway applies `on_failure` with [`AuditHandle::should_block`] before
//! the decision and with the ticket result after it.
//!
//! A failed batch is cut back to the file length of the last successful flush (then fsynced),
//! so a batch whose write succeeded and whose fsync failed never leaves a seq on disk twice.
//! A durable `request` record whose ticket failed (or whose ticket was dropped before the writer
//! got to it) is not written late: its caller acted on the failure and records what it did.
//!
//! # Denials, reserve and loss
//! [`AuditHandle::record_aggregated`] takes denials and refused connections: aggregated per
//! (conduit, source IP, kind, reason, decision) and interval, queued only outside the reserve of
//! [`AuditConfig::queue_reserve`], only counted while storage is low. Anything dropped before
//! the queue is chained as an `audit_lost` record. Retention (`max_bytes`, `max_segments`)
//! deletes the oldest segments after a chained `segment_removed` record.
//!
//! # Pacing: the data path never outruns the writer
//! A read's record is queued without waiting, so a data path faster than the writer (a flood
//! of allowed reads on a one-core box, where the writer runs at a lower priority) would fill
//! the queue and then lose records. [`AuditHandle::crowded`] says when more than an eighth of
//! the queue waits; a session that sees it awaits [`AuditHandle::room`] before it takes more
//! requests, which the writer grants as soon as it has taken the next batch. Throughput under
//! overload becomes the writer's, and durable records never queue behind more than that
//! eighth. Each wait is counted in [`Stats::paced`].
//!
//! # Where the code is
//! This file is the handle side: what the gateway calls, the queue, tickets, counters. The
//! thread that owns the file (chain bytes, group commit, rotation, retention, failure and
//! recovery) is `writer/worker.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use tokio::sync::{oneshot, Notify};

use crate::aggregate::Aggregator;
use crate::config::{AuditConfig, OnFailure, SyncMode};
use crate::error::AuditError;
use crate::event::{format_ts, now_ts, parse_ts, Event, Kind};
use crate::keys;
use crate::storage::{FileStorage, StdoutStorage, Storage};
use crate::syslog::Exporter;

mod worker;
use worker::{resume_point, OpenLog, Resume, Writer};

type Reply = oneshot::Sender<Result<u64, AuditError>>;

enum Msg {
    Append {
        event: Box<Event>,
        durable: bool,
        reply: Option<Reply>,
    },
    Sync {
        reply: Reply,
    },
    Shutdown {
        reply: Reply,
    },
}

/// Counters of the writer (monotonic since start).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) delayed: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    pub(crate) paced: AtomicU64,
    pub(crate) export_sent: AtomicU64,
    pub(crate) export_dropped: AtomicU64,
    pub(crate) export_errors: AtomicU64,
    pub(crate) free_bytes: AtomicU64,
    pub(crate) storage_alarms: AtomicU64,
    pub(crate) withdrawn: AtomicU64,
    pub(crate) fsync_micros: AtomicU64,
    /// fsync latency buckets and the last checkpoint (see [`crate::ops`]).
    pub(crate) ops: crate::ops::Ops,
}

/// A snapshot of the writer's counters ([`AuditHandle::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Records written (including genesis, lifecycle and checkpoint records).
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// fsync calls.
    pub fsyncs: u64,
    /// Batches the writer processed (one write call each, or more when rotating).
    pub batches: u64,
    /// Signed checkpoints written.
    pub checkpoints: u64,
    /// Write/fsync failures (`audit_failure` alarms).
    pub failures: u64,
    /// Records dropped during outages (backlog full).
    pub lost: u64,
    /// Records written late after an outage.
    pub delayed: u64,
    /// Appends that found the queue full and had to wait.
    pub queue_full: u64,
    /// Times a data path waited for the writer to catch up ([`AuditHandle::room`]).
    pub paced: u64,
    /// Records sent to syslog.
    pub export_sent: u64,
    /// Records dropped because the export queue was full or the collector unreachable.
    pub export_dropped: u64,
    /// Export send/connect errors.
    pub export_errors: u64,
    /// Free bytes on the log's file system at the last check (0 = not measured).
    pub free_bytes: u64,
    /// `audit_storage_low` alarms raised.
    pub storage_alarms: u64,
    /// Durable `request` records whose ticket failed (or was dropped) and that were therefore
    /// not written late (their caller recorded what it did instead).
    pub withdrawn: u64,
    /// Time spent in fsync, in microseconds, summed over `fsyncs` (the metrics' mean latency).
    pub fsync_micros: u64,
    /// fsync calls per latency bucket (the `/metrics` histogram).
    pub fsync_histogram: crate::ops::FsyncHistogram,
    /// The last signed checkpoint on disk (`None`: none yet, or no signing key).
    pub last_checkpoint: Option<crate::ops::CheckpointMark>,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            records: g(&self.records),
            bytes: g(&self.bytes),
            fsyncs: g(&self.fsyncs),
            batches: g(&self.batches),
            checkpoints: g(&self.checkpoints),
            failures: g(&self.failures),
            lost: g(&self.lost),
            delayed: g(&self.delayed),
            queue_full: g(&self.queue_full),
            paced: g(&self.paced),
            export_sent: g(&self.export_sent),
            export_dropped: g(&self.export_dropped),
            export_errors: g(&self.export_errors),
            free_bytes: g(&self.free_bytes),
            storage_alarms: g(&self.storage_alarms),
            withdrawn: g(&self.withdrawn),
            fsync_micros: g(&self.fsync_micros),
            fsync_histogram: self.ops.fsync_histogram(),
            last_checkpoint: self.ops.last_checkpoint(),
        }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug)]
struct Shared {
    healthy: AtomicBool,
    on_failure: OnFailure,
    /// Every append is durable (`sync: every`).
    all_durable: bool,
    counters: Arc<Counters>,
    /// Repeated denials (see [`crate::aggregate`]).
    agg: Aggregator,
    /// Set by the writer while storage is low: denials are only counted, never written in full.
    shedding: AtomicBool,
    /// Set when the writer stops: nothing is aggregated any more.
    stopped: AtomicBool,
    /// Records dropped before the queue, not yet reported in an `audit_lost` record.
    lost_pending: AtomicU64,
    /// Unix microseconds of the first and last of them (0 = none).
    lost_first: AtomicU64,
    lost_last: AtomicU64,
    /// (seq, hash) of the last record known written: the chain head the dashboard shows.
    head: std::sync::Mutex<Option<(u64, String)>>,
    /// Data paths waiting in [`AuditHandle::room`]: set by them, taken by the writer, which
    /// then notifies `room` once it has taken a batch off the queue.
    room_wanted: AtomicBool,
    room: Notify,
}

impl Shared {
    fn new(
        on_failure: OnFailure,
        all_durable: bool,
        counters: Arc<Counters>,
        agg: Aggregator,
    ) -> Self {
        Self {
            healthy: AtomicBool::new(true),
            on_failure,
            all_durable,
            counters,
            agg,
            shedding: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            lost_pending: AtomicU64::new(0),
            lost_first: AtomicU64::new(0),
            lost_last: AtomicU64::new(0),
            head: std::sync::Mutex::new(None),
            room_wanted: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    /// Lets the data paths waiting in [`AuditHandle::room`] look again (the writer has taken
    /// messages off the queue, or stopped).
    fn grant_room(&self) {
        if self.room_wanted.swap(false, Ordering::AcqRel) {
            self.room.notify_waiters();
        }
    }

    /// Notes a record dropped before the queue; the writer reports it in `audit_lost`.
    fn note_lost(&self) {
        let now = unix_micros(SystemTime::now());
        let _ = self
            .lost_first
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.lost_last.store(now, Ordering::Relaxed);
        self.lost_pending.fetch_add(1, Ordering::AcqRel);
        bump(&self.counters.lost, 1);
    }
}

fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(1, |d| {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
    })
}

fn ts_of_micros(us: u64) -> String {
    format_ts(time::OffsetDateTime::from(
        UNIX_EPOCH + Duration::from_micros(us),
    ))
}

/// Resolves to the record's `seq` once it is written (and fsynced when durable), or to the
/// error that kept it out of the log. Dropping a ticket does not cancel the record, except
/// for a durable `request` record that the writer has not reached yet: its caller gave up
/// waiting and records what it did with the request itself.
#[derive(Debug)]
#[must_use = "a ticket tells whether the record reached the log; drop it explicitly to ignore"]
pub struct Ticket {
    state: TicketState,
}

#[derive(Debug)]
enum TicketState {
    Ready(Option<Result<u64, AuditError>>),
    Waiting(oneshot::Receiver<Result<u64, AuditError>>),
}

impl Ticket {
    fn ready(r: Result<u64, AuditError>) -> Self {
        Self {
            state: TicketState::Ready(Some(r)),
        }
    }

    /// Blocks the calling thread until the ticket resolves. Not for async code (await instead).
    pub fn wait(self) -> Result<u64, AuditError> {
        match self.state {
            TicketState::Ready(r) => r.unwrap_or(Err(AuditError::Closed)),
            TicketState::Waiting(rx) => rx.blocking_recv().unwrap_or(Err(AuditError::Closed)),
        }
    }
}

impl Future for Ticket {
    type Output = Result<u64, AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            TicketState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(AuditError::Closed))),
            TicketState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(AuditError::Closed))),
        }
    }
}

/// Starts audit writers. See the module docs.
#[derive(Debug)]
pub struct AuditLog;

impl AuditLog {
    /// Opens (or continues) the log, writes genesis (new log) and `start`, spawns the writer.
    ///
    /// Fails on a bad key, an unreadable/uncreatable log file, or an existing log whose last
    /// complete record is invalid (it would be tampering or corruption: look with
    /// `zonegate log verify`). A torn last line (crash mid-write) is cut off and noted in the
    /// `start` record.
    pub fn start(config: AuditConfig) -> Result<AuditHandle, AuditError> {
        let storage: Box<dyn Storage> = match &config.path {
            Some(p) => Box::new(FileStorage::new(p.clone())),
            None => Box::new(StdoutStorage),
        };
        Self::start_with_storage(config, storage)
    }

    /// Like [`AuditLog::start`] with a custom byte sink (tests inject faults this way).
    /// `config.path` is still read to continue an existing chain.
    pub fn start_with_storage(
        config: AuditConfig,
        mut storage: Box<dyn Storage>,
    ) -> Result<AuditHandle, AuditError> {
        let signing = match &config.signing_key {
            Some(p) => {
                let k = keys::load_signing_key(p)?;
                let id = keys::key_id(&k.verifying_key());
                Some((k, id))
            }
            None => None,
        };
        let counters = Arc::new(Counters::default());
        let exporter = match &config.syslog {
            Some(s) => Some(Exporter::start(s, &config.gateway, Arc::clone(&counters))?),
            None => None,
        };
        let resume = match &config.path {
            Some(p) => resume_point(p)?,
            None => Resume::default(),
        };
        // A restart shows the checkpoint the last run ended with, not "none yet".
        if let Some((seq, ts)) = &resume.checkpoint {
            counters.ops.checkpoint(*seq, ts.as_deref());
        }
        let file_len = storage.open().map_err(|e| {
            AuditError::Unavailable(format!(
                "cannot open {}: {e}",
                config
                    .path
                    .as_deref()
                    .map_or("stdout".into(), |p| p.display().to_string())
            ))
        })?;
        let file_len = match resume.truncate_to {
            Some(len) if len < file_len => {
                storage.truncate(len).map_err(|e| {
                    AuditError::Unavailable(format!("cannot cut off the torn last line: {e}"))
                })?;
                len
            }
            _ => file_len,
        };

        let queue = config.queue.max(1);
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let shared = Arc::new(Shared::new(
            config.on_failure,
            config.sync == SyncMode::Every,
            Arc::clone(&counters),
            Aggregator::new(config.aggregate_interval, config.aggregate_max_keys),
        ));
        let reserve = config.queue_reserve.unwrap_or(queue / 4).min(queue);
        let enqueue_timeout = config.enqueue_timeout;
        let w = Writer::open(OpenLog {
            storage,
            shared: Arc::clone(&shared),
            signing,
            resume: &resume,
            file_len,
            exporter,
            config,
        });
        if let Some(n) = &resume.note {
            tracing::warn!(note = %n, "audit log continued after a torn write");
        }

        let writer = thread::Builder::new()
            .name("zonegate-audit".into())
            .spawn(move || {
                crate::priority::run_in_background();
                w.run(&rx)
            })
            .map_err(|e| AuditError::Config(format!("cannot spawn the audit writer: {e}")))?;
        Ok(AuditHandle {
            tx: Some(tx),
            shared,
            enqueue_timeout,
            low_limit: queue - reserve,
            pace_limit: pace_limit(queue),
            writer: Some(writer.thread().clone()),
        })
    }

    /// A handle that records nothing (no `audit:` section): every ticket resolves to `Ok(0)`
    /// at once, it is always healthy, and no thread is started.
    pub fn disabled() -> AuditHandle {
        AuditHandle {
            tx: None,
            shared: Arc::new(Shared::new(
                OnFailure::Continue,
                false,
                Arc::new(Counters::default()),
                Aggregator::new(Duration::ZERO, 1),
            )),
            enqueue_timeout: Duration::ZERO,
            low_limit: 0,
            pace_limit: usize::MAX,
            writer: None,
        }
    }
}

/// The handle the gateway holds: `Clone + Send + Sync`. See the module docs.
#[derive(Debug, Clone)]
pub struct AuditHandle {
    /// `None` for [`AuditLog::disabled`].
    tx: Option<Sender<Msg>>,
    shared: Arc<Shared>,
    enqueue_timeout: Duration,
    /// Low-priority records are queued only while fewer than this many messages wait (the
    /// rest of the queue is the reserve for allowed and durable records).
    low_limit: usize,
    /// [`AuditHandle::crowded`] from this many queued messages on (see "Pacing").
    pace_limit: usize,
    /// The writer thread, unparked when someone waits for a message (see `AuditConfig::linger`).
    writer: Option<thread::Thread>,
}

/// Where pacing starts for a queue of `queue` messages: an eighth of it, so that a durable
/// record queues behind at most that many (8192 of the default 65536, about 10 ms of the
/// writer's work), and at least one batch's worth of room stays for everything else.
fn pace_limit(queue: usize) -> usize {
    (queue / 8).max(1)
}

impl AuditHandle {
    fn send(&self, msg: Msg, rx: oneshot::Receiver<Result<u64, AuditError>>) -> Ticket {
        self.send_with(msg, rx, true)
    }

    /// Queues `msg`; on a full queue waits up to `enqueue_timeout` when `wait`, else fails at
    /// once with `Overloaded`.
    fn send_with(
        &self,
        msg: Msg,
        rx: oneshot::Receiver<Result<u64, AuditError>>,
        wait: bool,
    ) -> Ticket {
        let Some(tx) = &self.tx else {
            return Ticket::ready(Ok(0));
        };
        if self.shared.stopped.load(Ordering::Acquire) {
            return Ticket::ready(Err(AuditError::Closed));
        }
        let waiting = Ticket {
            state: TicketState::Waiting(rx),
        };
        let urgent = match &msg {
            Msg::Append { durable, .. } => *durable || self.shared.all_durable,
            Msg::Sync { .. } | Msg::Shutdown { .. } => true,
        };
        match tx.try_send(msg) {
            Ok(()) => {
                if urgent {
                    self.wake_writer();
                }
                waiting
            }
            Err(TrySendError::Disconnected(_)) => Ticket::ready(Err(AuditError::Closed)),
            Err(TrySendError::Full(_)) if !wait => {
                bump(&self.shared.counters.queue_full, 1);
                // A full queue: the writer must not linger now.
                self.wake_writer();
                Ticket::ready(Err(AuditError::Overloaded))
            }
            Err(TrySendError::Full(msg)) => {
                bump(&self.shared.counters.queue_full, 1);
                self.wake_writer();
                match tx.send_timeout(msg, self.enqueue_timeout) {
                    Ok(()) => {
                        if urgent {
                            self.wake_writer();
                        }
                        waiting
                    }
                    Err(SendTimeoutError::Timeout(_)) => Ticket::ready(Err(AuditError::Overloaded)),
                    Err(SendTimeoutError::Disconnected(_)) => {
                        Ticket::ready(Err(AuditError::Closed))
                    }
                }
            }
        }
    }

    /// Whether the writer is behind: more than an eighth of the queue waits. A data path that
    /// sees it awaits [`AuditHandle::room`] before taking more requests (see "Pacing").
    /// Cheap: two atomic loads.
    pub fn crowded(&self) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.len() >= self.pace_limit)
    }

    /// Resolves once the queue is no longer [`crowded`](AuditHandle::crowded) (at once when it
    /// is not), or the writer has stopped. The writer grants room as soon as it has taken its
    /// next batch off the queue; the caller bounds the wait with its own timeout.
    pub async fn room(&self) {
        let mut counted = false;
        loop {
            let notified = self.shared.room.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check: a grant between the check and the await is not lost.
            notified.as_mut().enable();
            if !self.crowded() || self.shared.stopped.load(Ordering::Acquire) {
                return;
            }
            if !counted {
                counted = true;
                bump(&self.shared.counters.paced, 1);
            }
            self.shared.room_wanted.store(true, Ordering::Release);
            // A lingering writer looks now, not after its linger.
            self.wake_writer();
            notified.await;
        }
    }

    /// Ends the writer's linger early: a durable record is waiting for its group commit.
    fn wake_writer(&self) {
        if let Some(t) = &self.writer {
            t.unpark();
        }
    }

    /// Queues `event`. The writer fills `seq`, `prev`, `hash`; `ts` is set now if `None` (or not
    /// RFC 3339) and otherwise normalized to UTC with microseconds.
    ///
    /// `durable`: in [`SyncMode::Writes`] the ticket resolves only after an fsync covering the
    /// record (group commit); in `Every` every record is durable; in `Batch` it is ignored.
    /// Never blocks unless the queue is full (then at most `enqueue_timeout`).
    pub fn append(&self, event: impl Into<Box<Event>>, durable: bool) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.send(Self::append_msg(event.into(), durable, Some(tx)), rx)
    }

    /// Like [`AuditHandle::append`] but never blocks: when the queue is full the ticket
    /// resolves at once to `Err(AuditError::Overloaded)` (counted in [`Stats::queue_full`]), so
    /// the caller applies its failure policy instead of stalling (an async data path uses this
    /// for the records it awaits).
    pub fn append_nowait(&self, event: impl Into<Box<Event>>, durable: bool) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.send_with(Self::append_msg(event.into(), durable, Some(tx)), rx, false)
    }

    /// Queues `event` without a ticket (fire and forget: no completion channel is made) and
    /// without blocking. `Err(AuditError::Overloaded)` when the queue is full: the record is
    /// NOT queued (counted in [`Stats::queue_full`] and [`Stats::lost`]); `Err(Closed)` after
    /// shutdown. A write failure later on is handled by the writer's failure contract (the
    /// record is held in the backlog and written late) and visible via
    /// [`AuditHandle::is_healthy`].
    ///
    /// A data path that builds its record in a `Box<Event>` hands the box over as it is (a
    /// record is large: moving it costs more than the allocation).
    pub fn record(&self, event: impl Into<Box<Event>>, durable: bool) -> Result<(), AuditError> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        if self.shared.stopped.load(Ordering::Acquire) {
            // The writer answered its shutdown and refuses the rest; its queue may still take
            // a message until its thread has ended (regression: a record right after
            // `shutdown().wait()` was accepted, then silently dropped).
            return Err(AuditError::Closed);
        }
        match tx.try_send(Self::append_msg(event.into(), durable, None)) {
            Ok(()) => {
                if durable || self.shared.all_durable {
                    self.wake_writer();
                }
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(AuditError::Closed),
            Err(TrySendError::Full(_)) => {
                bump(&self.shared.counters.queue_full, 1);
                // Chained later as an `audit_lost` record: the loss is never silent.
                self.shared.note_lost();
                self.wake_writer();
                Err(AuditError::Overloaded)
            }
        }
    }

    /// Queues a low-priority record (a denial, a refused connection) only while the queue has
    /// more than the reserve free ([`AuditConfig::queue_reserve`]), so that such records never
    /// take the room of allowed and durable ones. Gives the event back when it was not queued.
    fn record_low(&self, event: Event) -> Low {
        let Some(tx) = &self.tx else {
            return Low::Queued;
        };
        if self.shared.stopped.load(Ordering::Acquire) {
            return Low::Closed;
        }
        let msg = Self::append_msg(Box::new(event), false, None);
        let rejected = if tx.len() >= self.low_limit {
            msg
        } else {
            match tx.try_send(msg) {
                Ok(()) => return Low::Queued,
                Err(TrySendError::Disconnected(_)) => return Low::Closed,
                Err(TrySendError::Full(m)) => m,
            }
        };
        bump(&self.shared.counters.queue_full, 1);
        self.wake_writer();
        match rejected {
            Msg::Append { event, .. } => Low::Full(event),
            _ => Low::Closed,
        }
    }

    /// Records a denial or a refused connection: what a host that no rule names can make the
    /// gateway record without limit. Never blocks and never loses the event:
    ///
    /// - repeated events of one (conduit, source IP, kind, reason, decision) within
    ///   [`AuditConfig::aggregate_interval`] are written as the first one in full plus one
    ///   summary record with `count` (see [`crate::aggregate`]);
    /// - the full record is queued only outside the reserve ([`AuditConfig::queue_reserve`]);
    ///   when it does not fit it is counted in its key's summary instead;
    /// - while the log's storage is low (`storage_low`), every event is only counted.
    ///
    /// With aggregation off (`aggregate_interval` zero) a record that does not fit is dropped
    /// and reported in an `audit_lost` record. `Err(Closed)` after shutdown.
    pub fn record_aggregated(&self, event: Event) -> Result<(), AuditError> {
        if self.tx.is_none() {
            return Ok(());
        }
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(AuditError::Closed);
        }
        let shed = self.shared.shedding.load(Ordering::Relaxed);
        let aggregating = shed || !self.shared.agg.interval_is_zero();
        let Some(event) = self.shared.agg.admit(event, shed) else {
            return Ok(());
        };
        match self.record_low(event) {
            Low::Queued => Ok(()),
            Low::Full(event) if aggregating => {
                self.shared.agg.count(*event);
                Ok(())
            }
            Low::Full(_) => {
                self.shared.note_lost();
                Err(AuditError::Overloaded)
            }
            Low::Closed => Err(AuditError::Closed),
        }
    }

    /// Normalizes an event for the writer and wraps it in a queue message.
    fn append_msg(mut event: Box<Event>, durable: bool, reply: Option<Reply>) -> Msg {
        // Always RFC 3339 UTC with microseconds: a caller's time is normalized, a missing or
        // unreadable one replaced by the arrival time `at` or else the current time. `at` is
        // formatted by the writer (`encode`), off the data path's threads.
        event.ts = match event.ts.as_deref().and_then(parse_ts) {
            Some(t) => Some(format_ts(t)),
            None if event.at.is_some() => None,
            None => Some(now_ts()),
        };
        event.seq = None;
        event.prev = None;
        event.hash = None;
        event.bound_values();
        Msg::Append {
            event,
            durable,
            reply,
        }
    }

    fn lifecycle(&self, kind: Kind, policy_hash: Option<&str>, message: &str) -> Ticket {
        let mut e = Event::notice(kind, message);
        e.policy_hash = policy_hash.map(str::to_owned);
        self.append(e, true)
    }

    /// Appends a durable `policy_load` record.
    pub fn policy_loaded(&self, policy_hash: &str, message: &str) -> Ticket {
        self.lifecycle(Kind::PolicyLoad, Some(policy_hash), message)
    }

    /// Appends a durable `policy_reload` record.
    pub fn policy_reloaded(&self, policy_hash: &str, message: &str) -> Ticket {
        self.lifecycle(Kind::PolicyReload, Some(policy_hash), message)
    }

    /// Appends a durable `policy_rejected` record (`message` says why).
    pub fn policy_rejected(&self, message: &str) -> Ticket {
        self.lifecycle(Kind::PolicyRejected, None, message)
    }

    /// Resolves once everything queued before it is written and fsynced (to the last seq).
    pub fn sync(&self) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Sync { reply: tx }, rx)
    }

    /// Writes a `stop` record and (with a key) a final signed checkpoint, fsyncs, and stops the
    /// writer. Resolves to the seq of the `stop` record. Later appends fail with `Closed`.
    /// Dropping every handle without it does the same, with a note in the `stop` record.
    pub fn shutdown(&self) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Shutdown { reply: tx }, rx)
    }

    /// False for the handle of [`AuditLog::disabled`].
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// False while the log cannot be written (from the first failure until recovery).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// The configured reaction to failures.
    pub fn on_failure(&self) -> OnFailure {
        self.shared.on_failure
    }

    /// Whether the gateway must refuse a request now (exception 0x04) under `on_failure`:
    /// unhealthy and (`block_all`, or `block_writes` and `write_class`).
    pub fn should_block(&self, write_class: bool) -> bool {
        !self.is_healthy() && self.shared.on_failure.blocks(write_class)
    }

    /// The writer's counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Messages waiting in the writer's queue now (0 for a disabled log).
    pub fn queue_len(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }

    /// (seq, hash) of the last record written and committed: the head of the hash chain.
    pub fn head(&self) -> Option<(u64, String)> {
        self.shared
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What became of a low-priority record ([`AuditHandle::record_low`]).
enum Low {
    Queued,
    /// Not queued: no room outside the reserve. The event, normalized for the writer.
    Full(Box<Event>),
    Closed,
}
