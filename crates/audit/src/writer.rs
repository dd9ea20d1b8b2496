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

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use ed25519_dalek::SigningKey;
use tokio::sync::{oneshot, Notify};

use crate::aggregate::Aggregator;
use crate::chain::{check_line, GENESIS_PREV};
use crate::config::{AuditConfig, OnFailure, SyncMode};
use crate::encode::write_line;
use crate::error::AuditError;
use crate::event::{format_system_time, format_ts, now_ts, parse_ts, Event, Kind};
use crate::keys;
use crate::storage::{self, FileStorage, StdoutStorage, Storage};
use crate::syslog::Exporter;

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
        let fresh = resume.next_seq.is_none();
        let mut w = Writer {
            storage,
            shared: Arc::clone(&shared),
            signing,
            next_seq: resume.next_seq.unwrap_or(0),
            head: resume.head.unwrap_or_else(|| GENESIS_PREV.to_owned()),
            file_len,
            committed: (0, String::new(), 0),
            committed_len: file_len,
            since_checkpoint: 0,
            unsynced: false,
            last_sync: Instant::now(),
            healthy: true,
            last_error: String::new(),
            backlog: VecDeque::new(),
            lost: 0,
            withdrawn: 0,
            failed_since: None,
            last_retry: Instant::now(),
            buf: Vec::new(),
            pending: Vec::new(),
            pending_durable: false,
            exporter,
            last_space_check: None,
            storage_low: false,
            last_checkpoint: Instant::now(),
            last_housekeeping: Instant::now(),
            next_summary: Instant::now(),
            cfg: config,
        };
        w.commit_point();
        if fresh {
            let mut g = Event::notice(Kind::Genesis, "audit chain created");
            g.gateway = Some(w.cfg.gateway.clone());
            g.policy_hash.clone_from(&w.cfg.policy_hash);
            w.append_record(g, true, None);
        }
        let mut s = Event::notice(
            Kind::Start,
            match (&resume.note, fresh) {
                (Some(n), _) => format!("audit writer started; {n}"),
                (None, true) => "audit writer started".to_owned(),
                (None, false) => format!(
                    "audit writer started; chain continues from seq {}",
                    w.next_seq.saturating_sub(1)
                ),
            },
        );
        s.gateway = Some(w.cfg.gateway.clone());
        s.policy_hash.clone_from(&w.cfg.policy_hash);
        w.append_record(s, true, None);
        w.check_space();
        w.flush(true);
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

/// Where an existing log left off.
#[derive(Debug, Default)]
struct Resume {
    next_seq: Option<u64>,
    head: Option<String>,
    truncate_to: Option<u64>,
    note: Option<String>,
    /// The last record, when it is a checkpoint (a clean shutdown ends with one): (seq, ts).
    checkpoint: Option<(u64, Option<String>)>,
}

fn resume_point(path: &std::path::Path) -> Result<Resume, AuditError> {
    let mut resume = Resume::default();
    let mut candidates = vec![path.to_path_buf()];
    let segs = storage::segments(path)
        .map_err(|e| AuditError::Io(format!("{}: cannot list segments: {e}", path.display())))?;
    candidates.extend(segs.into_iter().rev().map(|(_, p)| p));
    for (i, file) in candidates.iter().enumerate() {
        if !file.exists() {
            continue;
        }
        let tail = storage::read_tail(file)
            .map_err(|e| AuditError::Io(format!("{}: cannot read: {e}", file.display())))?;
        if i == 0 && tail.torn_bytes > 0 {
            resume.truncate_to = Some(tail.good_len);
            resume.note = Some(format!(
                "cut off a torn last line of {} bytes at byte {} of {} (crash during a write)",
                tail.torn_bytes,
                tail.good_len,
                file.display()
            ));
        }
        if let Some((line, lineno)) = tail.last_line {
            let corrupt = |message: String| AuditError::Corrupt {
                path: file.clone(),
                line: lineno,
                message,
            };
            // Raw bytes: a line that is not UTF-8 was not written by the writer.
            let line = std::str::from_utf8(&line)
                .map_err(|e| corrupt(format!("not valid UTF-8 at byte {}", e.valid_up_to() + 1)))?;
            let ev = check_line(line).map_err(|e| corrupt(e.to_string()))?;
            resume.next_seq = ev.seq.map(|s| s + 1);
            if let (Kind::Checkpoint, Some(seq)) = (ev.kind, ev.seq) {
                resume.checkpoint = Some((seq, ev.ts));
            }
            resume.head = ev.hash;
            return Ok(resume);
        }
    }
    Ok(resume)
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

struct Pending {
    /// Boxed as it came from the gateway: a record is moved from the queue to the batch and
    /// on to the backlog without copying its few hundred bytes each time.
    event: Box<Event>,
    seq: u64,
    reply: Option<Reply>,
    line: Option<String>,
    /// Not written late if its batch fails (see [`withdraws`]).
    withdraw: bool,
}

/// Whether a record whose ticket fails must NOT be written late: a durable `request` record
/// that somebody awaits. The gateway awaits it before forwarding; when it fails the gateway
/// either refuses the request (`deny audit_unavailable`) or forwards it and writes the request
/// record itself. Replaying this one would leave a false `allow` next to the refusal.
fn withdraws(event: &Event, durable: bool, reply: Option<&Reply>) -> bool {
    durable && reply.is_some() && event.kind == Kind::Request
}

/// Most messages the writer takes in one batch.
const MAX_BATCH: usize = 4096;
/// Most messages it takes while a data path waits for room (see "Pacing"): a paced session
/// waits for the current batch to be written, so a short one lets it go on sooner.
const PACED_BATCH: usize = 512;
/// How often the writer looks for due aggregate summaries and unreported losses.
const HOUSEKEEPING: Duration = Duration::from_millis(50);
/// Least time between two recovery attempts triggered by new records.
const RETRY_MIN_GAP: Duration = Duration::from_millis(100);

struct Writer {
    cfg: AuditConfig,
    storage: Box<dyn Storage>,
    shared: Arc<Shared>,
    signing: Option<(SigningKey, String)>,
    next_seq: u64,
    head: String,
    file_len: u64,
    /// (next_seq, head, since_checkpoint) at the last successful flush.
    committed: (u64, String, u64),
    /// Length of the active file at the last successful flush: a failed batch (write OR fsync)
    /// is cut back to it, so the seqs rolled back to `committed` are never on disk twice.
    committed_len: u64,
    since_checkpoint: u64,
    unsynced: bool,
    last_sync: Instant,
    healthy: bool,
    last_error: String,
    backlog: VecDeque<Box<Event>>,
    lost: u64,
    /// Durable request records whose ticket failed, not written (see [`withdraws`]).
    withdrawn: u64,
    failed_since: Option<String>,
    last_retry: Instant,
    buf: Vec<u8>,
    pending: Vec<Pending>,
    pending_durable: bool,
    exporter: Option<Exporter>,
    last_space_check: Option<Instant>,
    storage_low: bool,
    last_checkpoint: Instant,
    last_housekeeping: Instant,
    /// The writer need not look for due aggregate summaries before this.
    next_summary: Instant,
}

impl Writer {
    fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    fn commit_point(&mut self) {
        self.committed = (self.next_seq, self.head.clone(), self.since_checkpoint);
        self.committed_len = self.file_len;
        if let Some(seq) = self.next_seq.checked_sub(1) {
            *self
                .shared
                .head
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((seq, self.head.clone()));
        }
    }

    fn run(mut self, rx: &Receiver<Msg>) {
        let mut msgs = Vec::with_capacity(64);
        loop {
            let timeout = self.timeout();
            let first = match timeout {
                Some(t) => rx.recv_timeout(t),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match first {
                Ok(m) => {
                    msgs.push(m);
                    let most = if self.shared.room_wanted.load(Ordering::Acquire) {
                        PACED_BATCH
                    } else {
                        MAX_BATCH
                    };
                    while msgs.len() < most {
                        match rx.try_recv() {
                            Ok(m) => msgs.push(m),
                            Err(_) => break,
                        }
                    }
                    // The batch is off the queue: paced data paths go on while it is written.
                    self.shared.grant_room();
                    // Nobody waits for a non-durable batch: let the next one gather instead of
                    // being woken (and woken again) for every record.
                    let linger = !self.cfg.linger.is_zero()
                        && msgs.len() < most
                        && !msgs.iter().any(|m| self.is_urgent(m));
                    if self.handle_batch(&mut msgs, rx) {
                        return;
                    }
                    if linger {
                        // Woken early (unpark) by an append somebody waits for.
                        thread::park_timeout(self.cfg.linger);
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.tick(),
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.stop("every audit handle was dropped without shutdown");
                    return;
                }
            }
        }
    }

    /// Whether someone waits for this message to be on disk (or for the writer to stop).
    fn is_urgent(&self, m: &Msg) -> bool {
        match m {
            Msg::Append { durable, .. } => *durable || self.cfg.sync == SyncMode::Every,
            Msg::Sync { .. } | Msg::Shutdown { .. } => true,
        }
    }

    /// When the next time-based checkpoint is due (records written since the last one).
    fn checkpoint_due(&self) -> Option<Instant> {
        let interval = self.cfg.checkpoint_interval;
        (self.signing.is_some() && self.since_checkpoint > 0 && !interval.is_zero())
            .then(|| self.last_checkpoint + interval)
    }

    /// How long to wait for the next message before doing housekeeping.
    fn timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        if !self.healthy {
            return Some(
                (self.last_retry + self.cfg.retry_interval).saturating_duration_since(now),
            );
        }
        let sync = self
            .unsynced
            .then(|| self.last_sync + self.cfg.batch_interval);
        // Unreported losses are chained soon; summaries when their interval ends.
        let lost = (self.shared.lost_pending.load(Ordering::Acquire) > 0)
            .then(|| self.last_housekeeping + HOUSEKEEPING);
        let summaries = (!self.shared.agg.is_idle()).then_some(self.next_summary);
        [sync, self.checkpoint_due(), lost, summaries]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    fn tick(&mut self) {
        if !self.healthy {
            self.try_recover();
            return;
        }
        self.housekeeping(false);
        let force = self.unsynced && self.last_sync.elapsed() >= self.cfg.batch_interval;
        if self.checkpoint_due().is_some_and(|t| Instant::now() >= t) {
            self.append_checkpoint();
        }
        self.flush(force);
    }

    /// Handles one batch; returns true when the writer must stop.
    fn handle_batch(&mut self, msgs: &mut Vec<Msg>, rx: &Receiver<Msg>) -> bool {
        bump(&self.counters().batches, 1);
        if !self.healthy && self.last_retry.elapsed() >= RETRY_MIN_GAP {
            self.try_recover();
        }
        self.check_space();
        let mut sync_waiters = Vec::new();
        let mut shutdown = None;
        for m in msgs.drain(..) {
            match m {
                Msg::Append {
                    event,
                    durable,
                    reply,
                } if shutdown.is_none() => self.append_record(event, durable, reply),
                Msg::Append { reply, .. } => {
                    if let Some(r) = reply {
                        let _ = r.send(Err(AuditError::Closed));
                    }
                }
                Msg::Sync { reply } => sync_waiters.push(reply),
                Msg::Shutdown { reply } => {
                    if shutdown.is_none() {
                        shutdown = Some(reply);
                    } else {
                        let _ = reply.send(Err(AuditError::Closed));
                    }
                }
            }
        }
        if self.last_housekeeping.elapsed() >= HOUSEKEEPING || Instant::now() >= self.next_summary {
            self.housekeeping(false);
        }
        if self.healthy && self.checkpoint_due().is_some_and(|t| Instant::now() >= t) {
            self.append_checkpoint();
        }
        // Under a steady stream the idle timer never fires: sync on the interval here too.
        let due = self.last_sync.elapsed() >= self.cfg.batch_interval;
        self.flush(!sync_waiters.is_empty() || due);
        let answer = if self.healthy {
            Ok(self.next_seq.saturating_sub(1))
        } else {
            Err(AuditError::Unavailable(self.last_error.clone()))
        };
        for r in sync_waiters {
            let _ = r.send(answer.clone());
        }
        if let Some(reply) = shutdown {
            let seq = self.stop("shutdown");
            let _ = reply.send(seq);
            // Refuse whatever is still queued.
            while let Ok(m) = rx.try_recv() {
                match m {
                    Msg::Append { reply: Some(r), .. } => {
                        let _ = r.send(Err(AuditError::Closed));
                    }
                    Msg::Sync { reply } | Msg::Shutdown { reply } => {
                        let _ = reply.send(Err(AuditError::Closed));
                    }
                    Msg::Append { reply: None, .. } => {}
                }
            }
            return true;
        }
        false
    }

    /// Writes `stop` and the final checkpoint, fsyncs, stops the exporter.
    fn stop(&mut self, why: &str) -> Result<u64, AuditError> {
        if !self.healthy {
            self.try_recover();
        }
        // Nothing is aggregated from now on; what was counted is written before `stop`.
        self.shared.stopped.store(true, Ordering::Release);
        // Nobody waits for room in a queue that is no longer read.
        self.shared.room_wanted.store(true, Ordering::Release);
        self.shared.grant_room();
        self.housekeeping(true);
        let mut e = Event::notice(Kind::Stop, format!("audit writer stopped: {why}"));
        e.ts = Some(now_ts());
        e.gateway = Some(self.cfg.gateway.clone());
        let seq = self.next_seq;
        self.append_record(e, true, None);
        if self.signing.is_some() && self.healthy {
            self.append_checkpoint();
        }
        self.flush(true);
        let result = if self.healthy {
            Ok(seq)
        } else {
            let n = self.backlog.len() as u64 + self.lost;
            tracing::error!(
                alarm = "audit_failure",
                records = n,
                "audit writer stopped while the log was unavailable; {n} records were not written"
            );
            Err(AuditError::Unavailable(self.last_error.clone()))
        };
        self.storage.close();
        if let Some(x) = self.exporter.take() {
            x.finish();
        }
        result
    }

    /// SR 2.9: raises `audit_storage_low` (once per crossing) when free space is short.
    fn check_space(&mut self) {
        const EVERY: Duration = Duration::from_secs(10);
        if self.cfg.min_free_bytes == 0
            || self.last_space_check.is_some_and(|t| t.elapsed() < EVERY)
        {
            return;
        }
        self.last_space_check = Some(Instant::now());
        let Some(path) = self.cfg.path.clone() else {
            return;
        };
        let Some(free) = self
            .storage
            .free_bytes()
            .or_else(|| storage::free_bytes(&path))
        else {
            return;
        };
        self.counters().free_bytes.store(free, Ordering::Relaxed);
        let low = free < self.cfg.min_free_bytes;
        if low && !self.storage_low {
            bump(&self.counters().storage_alarms, 1);
            let msg = format!(
                "{} bytes free on the file system of {}, below the threshold of {} bytes",
                free,
                path.display(),
                self.cfg.min_free_bytes
            );
            tracing::warn!(
                alarm = "audit_storage_low",
                free,
                threshold = self.cfg.min_free_bytes,
                "{msg}"
            );
            let mut e = Event::notice(Kind::StorageLow, msg);
            e.gateway = Some(self.cfg.gateway.clone());
            self.append_record(e, true, None);
        } else if !low && self.storage_low {
            tracing::info!(free, "audit log storage above the threshold again");
        }
        self.storage_low = low;
        // Shed full records of denials first: allowed and durable records keep the space.
        self.shared.shedding.store(low, Ordering::Relaxed);
    }

    /// Writes due aggregate summaries (all of them when `all`) and an `audit_lost` record for
    /// records dropped before the queue since the last one.
    fn housekeeping(&mut self, all: bool) {
        let now = Instant::now();
        self.last_housekeeping = now;
        if all || now >= self.next_summary {
            let (summaries, next) = self.shared.agg.take_due(now, all);
            self.next_summary = next;
            for summary in summaries {
                self.append_record(summary, false, None);
            }
        }
        let lost = self.shared.lost_pending.swap(0, Ordering::AcqRel);
        if lost > 0 {
            let last = self.shared.lost_last.load(Ordering::Relaxed);
            let first = match self.shared.lost_first.swap(0, Ordering::Relaxed) {
                0 => last,
                t => t,
            };
            let (first, last) = (ts_of_micros(first), ts_of_micros(last.max(1)));
            let mut e = Event::notice(
                Kind::AuditLost,
                format!(
                    "{lost} record(s) were dropped before the audit writer (queue full) between                      {first} and {last}"
                ),
            );
            e.lost = Some(lost);
            e.first_ts = Some(first);
            e.last_ts = Some(last);
            e.gateway = Some(self.cfg.gateway.clone());
            tracing::error!(alarm = "audit_lost", lost, "audit records were dropped");
            self.append_record(e, true, None);
        }
    }

    fn park(&mut self, event: Box<Event>, withdraw: bool) {
        if matches!(event.kind, Kind::Checkpoint | Kind::AuditRecovered) {
            return;
        }
        if withdraw {
            self.withdrawn += 1;
            bump(&self.counters().withdrawn, 1);
            return;
        }
        if self.backlog.len() < self.cfg.backlog {
            self.backlog.push_back(event);
        } else {
            self.lost += 1;
            bump(&self.counters().lost, 1);
        }
    }

    fn append_record(&mut self, event: impl Into<Box<Event>>, durable: bool, reply: Option<Reply>) {
        let event = event.into();
        let withdraw = withdraws(&event, durable, reply.as_ref());
        if withdraw && reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
            // The caller stopped waiting (its timeout) and acted on that: it refused the
            // request, or forwarded it and records it itself. Writing this one too would say
            // something that did not happen (or say it twice).
            self.withdrawn += 1;
            bump(&self.counters().withdrawn, 1);
            return;
        }
        if !self.healthy {
            if let Some(r) = reply {
                let _ = r.send(Err(AuditError::Unavailable(self.last_error.clone())));
            }
            self.park(event, withdraw);
            return;
        }
        self.maybe_rotate();
        if !self.healthy {
            if let Some(r) = reply {
                let _ = r.send(Err(AuditError::Unavailable(self.last_error.clone())));
            }
            self.park(event, withdraw);
            return;
        }
        self.encode(event, reply, withdraw);
        let durable = match self.cfg.sync {
            SyncMode::Every => true,
            SyncMode::Writes => durable,
            SyncMode::Batch => false,
        };
        if durable {
            self.pending_durable = true;
        }
        if let Some(every) = Some(self.cfg.checkpoint_every).filter(|n| *n > 0) {
            if self.signing.is_some() && self.since_checkpoint >= every {
                self.append_checkpoint();
            }
        }
    }

    fn encode(&mut self, mut event: Box<Event>, reply: Option<Reply>, withdraw: bool) {
        let seq = self.next_seq;
        if event.ts.is_none() {
            event.ts = Some(event.at.take().map_or_else(now_ts, format_system_time));
        }
        event.hash = None;
        // `seq` and `prev` go straight from the writer into the bytes (no per-record copies);
        // the line is appended to the batch buffer in place.
        let start = self.buf.len();
        let hash = write_line(&event, Some(seq), Some(&self.head), &mut self.buf);
        self.head.clear();
        self.head.push_str(&String::from_utf8_lossy(&hash));
        self.next_seq += 1;
        if event.kind == Kind::Checkpoint {
            self.since_checkpoint = 0;
        } else {
            self.since_checkpoint += 1;
        }
        let line = self
            .exporter
            .as_ref()
            .map(|_| String::from_utf8_lossy(&self.buf[start..]).into_owned());
        self.pending.push(Pending {
            event,
            seq,
            reply,
            line,
            withdraw,
        });
    }

    fn append_checkpoint(&mut self) {
        let Some((key, id)) = &self.signing else {
            return;
        };
        let seq = self.next_seq;
        let mut e = Event::new(Kind::Checkpoint);
        e.key_id = Some(id.clone());
        e.signature = Some(keys::sign_checkpoint(key, seq, &self.head));
        self.encode(Box::new(e), None, false);
        self.pending_durable = true;
        self.last_checkpoint = Instant::now();
    }

    fn maybe_rotate(&mut self) {
        let limit = self.cfg.rotate_bytes;
        if limit == 0 || !self.storage.can_rotate() {
            return;
        }
        if self.file_len + (self.buf.len() as u64) < limit {
            return;
        }
        if self.signing.is_some() && self.since_checkpoint > 0 {
            self.append_checkpoint();
        }
        self.flush(true);
        if !self.healthy {
            return;
        }
        match self.storage.rotate() {
            Ok(()) => {
                self.file_len = 0;
                self.committed_len = 0;
                tracing::info!(seq = self.next_seq, "audit log rotated");
                self.apply_retention();
            }
            Err(e) => self.fail(&format!("rotating the log failed: {e}")),
        }
    }

    /// Retention (`max_bytes`, `max_segments`): deletes the oldest segments, each after a
    /// durable `segment_removed` record that names it with its last seq and hash, so that the
    /// verifier accepts the kept files as a chain that starts mid-way.
    fn apply_retention(&mut self) {
        let (max_bytes, max_segments) = (self.cfg.max_bytes, self.cfg.max_segments);
        if max_bytes == 0 && max_segments == 0 {
            return;
        }
        let Some(path) = self.cfg.path.clone() else {
            return;
        };
        let segs = match storage::segments(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "audit retention: cannot list the segments");
                return;
            }
        };
        let sized: Vec<(std::path::PathBuf, u64)> = segs
            .into_iter()
            .map(|(_, p)| {
                let len = std::fs::metadata(&p).map_or(0, |m| m.len());
                (p, len)
            })
            .collect();
        let mut total = sized.iter().map(|(_, n)| n).sum::<u64>() + self.file_len;
        let mut count = sized.len();
        for (seg, len) in sized {
            let over =
                (max_segments > 0 && count > max_segments) || (max_bytes > 0 && total > max_bytes);
            if !over || !self.healthy {
                return;
            }
            let last = storage::read_tail(&seg)
                .ok()
                .and_then(|t| t.last_line)
                .and_then(|(line, _)| {
                    std::str::from_utf8(&line)
                        .ok()
                        .and_then(|l| check_line(l).ok())
                });
            let Some(last) = last else {
                tracing::warn!(
                    file = %seg.display(),
                    "audit retention: not removing a segment whose last record is not valid"
                );
                return;
            };
            let name = seg.file_name().map_or_else(
                || seg.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let mut e = Event::notice(
                Kind::SegmentRemoved,
                format!(
                    "retention (max_bytes {max_bytes}, max_segments {max_segments}): removing \
                     {name} ({len} bytes), whose last record is seq {}",
                    last.seq.unwrap_or(0)
                ),
            );
            e.file = Some(name);
            e.last_seq = last.seq;
            e.last_hash = last.hash;
            e.gateway = Some(self.cfg.gateway.clone());
            // The record first (durably), then the deletion: a crash in between leaves a file
            // too many, never a gap nobody vouches for.
            self.append_record(e, true, None);
            self.flush(true);
            if !self.healthy {
                return;
            }
            if let Err(err) = std::fs::remove_file(&seg) {
                tracing::warn!(file = %seg.display(), error = %err, "audit retention: cannot remove");
                return;
            }
            storage::sync_parent(&seg);
            tracing::info!(file = %seg.display(), "audit retention removed a segment");
            total = total.saturating_sub(len);
            count -= 1;
        }
    }

    /// Writes the buffered records; fsyncs when a durable record is among them or `force_sync`.
    fn flush(&mut self, force_sync: bool) {
        if !self.healthy {
            return;
        }
        if !self.buf.is_empty() {
            if let Err(e) = self.storage.write_all(&self.buf) {
                self.fail(&format!("write failed: {e}"));
                return;
            }
            self.file_len += self.buf.len() as u64;
            bump(&self.counters().bytes, self.buf.len() as u64);
            self.unsynced = true;
        }
        if self.unsynced && (self.pending_durable || force_sync) {
            let started = Instant::now();
            let synced = self.storage.sync();
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            bump(&self.counters().fsync_micros, took);
            self.counters().ops.fsync(took);
            if let Err(e) = synced {
                self.fail(&format!("fsync failed: {e}"));
                return;
            }
            bump(&self.counters().fsyncs, 1);
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        self.buf.clear();
        self.pending_durable = false;
        bump(&self.counters().records, self.pending.len() as u64);
        for p in self.pending.drain(..) {
            if p.event.kind == Kind::Checkpoint {
                bump(&self.shared.counters.checkpoints, 1);
                (self.shared.counters.ops).checkpoint(p.seq, p.event.ts.as_deref());
            }
            if let (Some(x), Some(line)) = (&self.exporter, p.line) {
                x.offer(line);
            }
            if let Some(r) = p.reply {
                let _ = r.send(Ok(p.seq));
            }
        }
        self.commit_point();
    }

    fn fail(&mut self, what: &str) {
        let path = self
            .cfg
            .path
            .as_deref()
            .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
        self.last_error = format!("{path}: {what}");
        // Back to the last committed point: a batch whose write succeeded but whose fsync failed
        // is on the file already, and its seqs are about to be reused. Cut it off, then try to
        // make the cut durable (recovery cuts again if this fails too).
        self.file_len = self.committed_len;
        if self.storage.truncate(self.committed_len).is_ok() {
            let _ = self.storage.sync();
        }
        let (seq, head, since) = self.committed.clone();
        self.next_seq = seq;
        self.head = head;
        self.since_checkpoint = since;
        self.buf.clear();
        self.pending_durable = false;
        self.healthy = false;
        self.shared.healthy.store(false, Ordering::Release);
        bump(&self.counters().failures, 1);
        if self.failed_since.is_none() {
            self.failed_since = Some(now_ts());
        }
        let pending: Vec<Pending> = self.pending.drain(..).collect();
        let n = pending.len();
        for p in pending {
            if let Some(r) = p.reply {
                let _ = r.send(Err(AuditError::Unavailable(self.last_error.clone())));
            }
            self.park(p.event, p.withdraw);
        }
        if let Some(x) = &self.exporter {
            // The SIEM may be the only place that hears of it: send an unchained record.
            let mut e = Event::notice(
                Kind::AuditFailure,
                format!(
                    "audit log cannot be written: {}; {n} record(s) held, retrying",
                    self.last_error
                ),
            );
            e.ts = Some(now_ts());
            e.gateway = Some(self.cfg.gateway.clone());
            if let Ok(line) = serde_json::to_string(&e) {
                x.offer(line);
            }
        }
        tracing::error!(
            alarm = "audit_failure",
            error = %self.last_error,
            records = n,
            on_failure = ?self.cfg.on_failure,
            "audit log cannot be written; records are held and the writer retries"
        );
        self.last_retry = Instant::now();
    }

    fn try_recover(&mut self) {
        self.last_retry = Instant::now();
        let len = match self.storage.open() {
            Ok(len) => len,
            Err(e) => {
                tracing::debug!(error = %e, "audit log still unavailable");
                return;
            }
        };
        if len > self.file_len {
            if self.storage.truncate(self.file_len).is_err() {
                return;
            }
        } else if len < self.file_len {
            tracing::warn!(
                expected = self.file_len,
                found = len,
                "audit file is shorter than written: changed by someone else"
            );
            self.file_len = len;
        }
        self.committed_len = self.file_len;
        self.healthy = true;
        let delayed = self.backlog.len() as u64;
        let lost = self.lost;
        let withdrawn = self.withdrawn;
        let since = self.failed_since.clone().unwrap_or_default();
        let mut e = Event::notice(
            Kind::AuditRecovered,
            format!(
                "audit log was unavailable from {since} ({}); {delayed} records follow late, \
                 {lost} were lost; {withdrawn} durable request record(s) whose ticket failed \
                 are not written (the gateway recorded what it did with each request)",
                self.last_error
            ),
        );
        e.lost = Some(lost);
        e.delayed = Some(delayed);
        e.gateway = Some(self.cfg.gateway.clone());
        self.append_record(e, true, None);
        let backlog: Vec<Box<Event>> = self.backlog.drain(..).collect();
        for ev in backlog {
            self.append_record(ev, false, None);
        }
        self.flush(true);
        if self.healthy {
            self.shared.healthy.store(true, Ordering::Release);
            bump(&self.counters().delayed, delayed);
            self.lost = 0;
            self.withdrawn = 0;
            self.failed_since = None;
            tracing::warn!(
                alarm = "audit_recovered",
                delayed,
                lost,
                "audit log writable again"
            );
        }
    }
}
