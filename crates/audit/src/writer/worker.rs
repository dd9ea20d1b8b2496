//! The writer thread: the one owner of the log file.
//!
//! [`Writer::open`] continues the chain where [`resume_point`] found the last run left off
//! (or starts a new one with `genesis`), writes `start` and flushes it; [`Writer::run`] then
//! takes batches from the queue until `shutdown`. Here are the chain's bytes (encode, hash,
//! checkpoints), group commit and fsync, rotation and retention, the storage-low state, and
//! the failure contract of the parent module's docs (cut back, keep, retry, `audit_recovered`).
//! The handle side, what the gateway calls, is in the parent module (`writer.rs`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use ed25519_dalek::SigningKey;
use tokio::sync::oneshot;

use super::{bump, ts_of_micros, Counters, Msg, Reply, Shared};
use crate::chain::{check_line, GENESIS_PREV};
use crate::config::{AuditConfig, SyncMode};
use crate::encode::write_line;
use crate::error::AuditError;
use crate::event::{format_system_time, now_ts, Event, Kind};
use crate::keys;
use crate::storage::{self, Storage};
use crate::syslog::Exporter;

/// What [`Writer::open`] starts from: an opened storage and where its chain left off.
pub(super) struct OpenLog<'a> {
    pub(super) storage: Box<dyn Storage>,
    pub(super) shared: Arc<Shared>,
    pub(super) signing: Option<(SigningKey, String)>,
    pub(super) resume: &'a Resume,
    /// Length of the active file after a torn last line was cut off.
    pub(super) file_len: u64,
    pub(super) exporter: Option<Exporter>,
    pub(super) config: AuditConfig,
}

/// Where an existing log left off.
#[derive(Debug, Default)]
pub(super) struct Resume {
    pub(super) next_seq: Option<u64>,
    pub(super) head: Option<String>,
    pub(super) truncate_to: Option<u64>,
    pub(super) note: Option<String>,
    /// The last record, when it is a checkpoint (a clean shutdown ends with one): (seq, ts).
    pub(super) checkpoint: Option<(u64, Option<String>)>,
}

/// Finds where the last run left off: the last complete record of the active file (or of the
/// newest segment when the active file is empty or missing), checked, and a torn last line to
/// cut off.
pub(super) fn resume_point(path: &std::path::Path) -> Result<Resume, AuditError> {
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

impl Writer {
    /// Continues (or starts) the chain, writes `start`, and flushes it before the gateway
    /// takes a request.
    pub(super) fn open(log: OpenLog<'_>) -> Self {
        let OpenLog {
            storage,
            shared,
            signing,
            resume,
            file_len,
            exporter,
            config,
        } = log;
        // No chain yet: the first record is `genesis`.
        let fresh = resume.next_seq.is_none();
        let mut w = Self {
            storage,
            shared,
            signing,
            next_seq: resume.next_seq.unwrap_or(0),
            head: resume
                .head
                .clone()
                .unwrap_or_else(|| GENESIS_PREV.to_owned()),
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
        w
    }
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

pub(super) struct Writer {
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

    pub(super) fn run(mut self, rx: &Receiver<Msg>) {
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
