//! The gateway's side of the audit trail: how the data path appends events and applies
//! `audit.sync` and `audit.on_failure`.
//!
//! The audit crate writes, chains and fsyncs; it reports health. This module decides what the
//! data path does with that:
//!
//! - reads (and any record under `sync: writes`/`batch` that is not a write) are appended
//!   without waiting: the ticket is dropped, the writer thread does the rest;
//! - a write-class request under `sync: writes` or `every` (every request under `every`) is
//!   appended durable and the session awaits the ticket BEFORE forwarding;
//! - a session takes no more requests while the writer is behind (`keep_pace`): throughput
//!   under overload is the audit log's, and no read's record is lost to a full queue;
//! - while the log is failing, `block_writes` answers write-class requests with 0x04,
//!   `block_all` answers every request with 0x04, `continue` forwards and raises an alarm
//!   (a rate-limited error on stderr).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::error;
use zonegate_audit::{AuditHandle, Event, OnFailure, SyncMode};

/// What the data path does with one request given the audit log's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureAction {
    /// Go on and forward.
    Forward,
    /// Answer exception 0x04 (server device failure) instead of forwarding.
    Block,
}

/// The audit handle plus the gateway's failure policy.
#[derive(Clone)]
pub(crate) struct Recorder {
    handle: AuditHandle,
    sync: SyncMode,
    on_failure: OnFailure,
    /// Unix seconds of the last alarm (to rate-limit the stderr alarm).
    last_alarm: Arc<AtomicU64>,
}

impl Recorder {
    pub(crate) fn new(handle: AuditHandle, sync: SyncMode, on_failure: OnFailure) -> Self {
        Self {
            handle,
            sync,
            on_failure,
            last_alarm: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The audit handle (lifecycle records, shutdown).
    pub(crate) fn handle(&self) -> &AuditHandle {
        &self.handle
    }

    /// Appends a record without waiting for it (the data path never blocks on a read's record).
    ///
    /// No completion ticket is made and the caller never waits: when the writer's queue is
    /// full the record is not queued (counted as lost) and the audit-failure alarm is raised.
    pub(crate) fn record(&self, event: impl Into<Box<Event>>) {
        if let Err(e) = self.handle.record(event, false) {
            self.alarm(
                &format!("audit record not queued: {e}"),
                "the record is lost (the writer is overloaded or stopped)",
            );
        }
    }

    /// Waits, at most `limit`, while the writer is behind ([`AuditHandle::crowded`]): the
    /// data path never outruns its audit trail. Free when it is not behind (two atomic
    /// loads). After `limit` the session goes on, and a record the full queue refuses is
    /// lost with the alarm of [`Recorder::record`].
    pub(crate) async fn keep_pace(&self, limit: Duration) {
        if self.handle.crowded() {
            let _ = tokio::time::timeout(limit, self.handle.room()).await;
        }
    }

    /// Records a denial (or a refused connection).
    ///
    /// Such records are the ones an unauthenticated host can produce without limit, so they go
    /// through the audit crate's aggregation ([`AuditHandle::record_aggregated`]: the first of
    /// a (conduit, source IP, kind, reason, decision) in the interval in full, the rest in one
    /// record with a `count`), never take the queue's reserve for allowed records, and are the
    /// first to be shed (only counted) when the disk runs low. Never blocks and never loses one silently.
    pub(crate) fn record_denial(&self, event: Event) {
        if let Err(e) = self.handle.record_aggregated(event) {
            self.alarm(
                &format!("audit record not queued: {e}"),
                "the denial is counted in an audit_lost record",
            );
        }
    }

    /// Appends a record durably; the future resolves with its seq once it is on disk.
    ///
    /// Never blocks the calling (tokio worker) thread: a full writer queue resolves at once to
    /// an error, which the caller handles with [`Recorder::on_durable_failure`].
    pub(crate) fn append_durable(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<u64, String>> + Send + 'static {
        let ticket = self.handle.append_nowait(event, true);
        async move { ticket.await.map_err(|e| e.to_string()) }
    }

    /// Whether this request's record must be durable before the request is forwarded.
    pub(crate) fn must_be_durable(&self, write_class: bool) -> bool {
        match self.sync {
            SyncMode::Every => true,
            SyncMode::Writes => write_class,
            _ => false,
        }
    }

    /// What to do with a request right now, given the log's health.
    pub(crate) fn failure_action(&self, write_class: bool) -> FailureAction {
        if self.handle.is_healthy() {
            return FailureAction::Forward;
        }
        self.apply(write_class, "the audit log cannot be written")
    }

    /// What to do after a durable append failed (or timed out) for this request.
    pub(crate) fn on_durable_failure(&self, write_class: bool, why: &str) -> FailureAction {
        self.apply(write_class, why)
    }

    fn apply(&self, write_class: bool, why: &str) -> FailureAction {
        // The decision is the audit crate's (`OnFailure::blocks`); this only words the alarm.
        let block = self.on_failure.blocks(write_class);
        let effect = match (self.on_failure, block) {
            (OnFailure::BlockAll, _) => "every request is answered with exception 0x04 (block_all)",
            (OnFailure::Continue, _) => "requests are forwarded WITHOUT an audit record (continue)",
            (_, true) => "write requests are answered with exception 0x04 (block_writes)",
            (_, false) => return FailureAction::Forward,
        };
        self.alarm(why, effect);
        if block {
            FailureAction::Block
        } else {
            FailureAction::Forward
        }
    }

    /// Logs an audit-failure alarm at most once every 10 seconds.
    fn alarm(&self, why: &str, effect: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let last = self.last_alarm.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_alarm
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            error!("AUDIT FAILURE: {why}; {effect}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use zonegate_audit::{AuditConfig, AuditLog};

    use super::*;

    fn temp_log() -> std::path::PathBuf {
        // One file per recorder: tests run in parallel and two writers must not share a log.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "zonegate-record-test-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn recorder(sync: SyncMode, on_failure: OnFailure) -> Recorder {
        let handle = AuditLog::start(AuditConfig::new(temp_log())).unwrap();
        Recorder::new(handle, sync, on_failure)
    }

    #[test]
    fn record_denial_aggregates_repeated_denials_of_one_source() {
        use zonegate_audit::{Decision, Kind};
        let path = temp_log();
        let mut cfg = AuditConfig::new(&path);
        cfg.min_free_bytes = 0;
        let r = Recorder::new(
            AuditLog::start(cfg).unwrap(),
            SyncMode::Writes,
            OnFailure::BlockWrites,
        );
        for port in 0..100u16 {
            let ev = Event {
                conduit: Some("C1".into()),
                src: Some(format!("127.0.0.9:{}", 40000 + port).into()),
                decision: Some(Decision::Deny),
                reason: Some("no_rule_for_source".into()),
                ..Event::new(Kind::Request)
            };
            r.record_denial(ev);
        }
        r.handle().shutdown().wait().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let denials: Vec<Event> = text
            .lines()
            .map(|l| serde_json::from_str::<Event>(l).unwrap())
            .filter(|e| e.decision == Some(Decision::Deny))
            .collect();
        let _ = std::fs::remove_file(&path);
        assert_eq!(denials.len(), 2, "one in full, one summary: {denials:?}");
        assert_eq!((denials[0].count, denials[1].count), (None, Some(99)));
        assert_eq!(
            denials[1].src.as_deref(),
            Some("127.0.0.9:40099"),
            "the last one"
        );
    }

    #[test]
    fn durability_follows_audit_sync() {
        let r = recorder(SyncMode::Writes, OnFailure::BlockWrites);
        assert!(r.must_be_durable(true));
        assert!(!r.must_be_durable(false));
        let r = recorder(SyncMode::Every, OnFailure::BlockWrites);
        assert!(r.must_be_durable(false));
        let r = recorder(SyncMode::Batch, OnFailure::BlockWrites);
        assert!(!r.must_be_durable(true));
    }

    #[test]
    fn failed_durable_append_follows_on_failure() {
        let r = recorder(SyncMode::Writes, OnFailure::BlockWrites);
        assert_eq!(
            r.failure_action(true),
            FailureAction::Forward,
            "healthy log"
        );
        assert_eq!(r.on_durable_failure(true, "x"), FailureAction::Block);
        assert_eq!(r.on_durable_failure(false, "x"), FailureAction::Forward);
        let r = recorder(SyncMode::Writes, OnFailure::BlockAll);
        assert_eq!(r.on_durable_failure(false, "x"), FailureAction::Block);
        let r = recorder(SyncMode::Writes, OnFailure::Continue);
        assert_eq!(r.on_durable_failure(true, "x"), FailureAction::Forward);
    }
}
