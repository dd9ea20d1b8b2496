//! The chain accounts for every request: repeated denials are aggregated, a reserve keeps queue
//! room for allowed records, anything still dropped is chained as `audit_lost`, and while
//! storage is low denials are only counted.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zonegate_audit::{AuditLog, Decision, Event, FileStorage, Kind, Storage, VerifyOptions};

use super::util::*;

/// The real file, slowed down (every write sleeps) so that producers outrun the writer, and
/// reporting `free` bytes when set.
struct SlowDisk {
    inner: FileStorage,
    delay: Duration,
    free: Option<u64>,
}

impl Storage for SlowDisk {
    fn open(&mut self) -> io::Result<u64> {
        self.inner.open()
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn can_rotate(&self) -> bool {
        true
    }
    fn rotate(&mut self) -> io::Result<()> {
        self.inner.rotate()
    }
    fn close(&mut self) {
        self.inner.close();
    }
    fn free_bytes(&self) -> Option<u64> {
        self.free
    }
}

fn denial(i: u64) -> Event {
    Event {
        conduit: Some("C1-OPS-CTRL".into()),
        // 40 hosts, 2 reasons: 80 keys, far fewer than the events.
        src: Some(format!("10.9.0.{}:{}", i % 40, 40000 + i % 1000).into()),
        unit: Some(1),
        fc: Some(3),
        decision: Some(Decision::Deny),
        reason: Some(
            if i % 3 == 0 {
                "no_rule_for_source"
            } else {
                "no_rule_for_function"
            }
            .into(),
        ),
        request_id: Some(i),
        ..Event::new(Kind::Request)
    }
}

fn allowed(i: u64) -> Event {
    Event {
        decision: Some(Decision::Allow),
        request_id: Some(1_000_000 + i),
        ..request(i)
    }
}

/// Floods denials from 4 threads while one thread sends `allowed_n` allowed records; returns
/// (denials sent, allowed sent).
fn flood(h: &zonegate_audit::AuditHandle, allowed_n: u64) -> (u64, u64) {
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..4u64 {
        let (h, done, sent) = (h.clone(), Arc::clone(&done), Arc::clone(&sent));
        threads.push(std::thread::spawn(move || {
            // Bounded: at most 20,000 per thread, stops when the allowed sender is done.
            for i in 0..20_000u64 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let _ = h.record_aggregated(denial(t * 100_000 + i));
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Bursts of 3 allowed records and a sync: with 4 flooding threads, denials can take at
    // most `16 - 8 reserve + 3` slots (a race of the other threads), so 3 + 1 always fit,
    // however the writer thread is scheduled. Without the reserve they would not.
    for i in 0..allowed_n {
        let _ = h.record(allowed(i), false);
        if i % 3 == 2 {
            h.sync().wait().unwrap();
        }
    }
    done.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    (sent.load(Ordering::Relaxed), allowed_n)
}

/// (denials accounted by records and counts, allowed records, sum of `audit_lost.lost`,
/// denial records written in full).
fn account(dir: &std::path::Path) -> (u64, u64, u64, u64) {
    let (mut denied, mut allow, mut lost, mut full) = (0, 0, 0, 0);
    for f in files(dir) {
        for e in events(&f) {
            match (e.kind, e.decision) {
                (Kind::Request, Some(Decision::Deny)) => {
                    denied += e.count.unwrap_or(1);
                    if e.count.is_none() {
                        full += 1;
                    }
                }
                (Kind::Request, Some(Decision::Allow)) => allow += 1,
                (Kind::AuditLost, _) => lost += e.lost.unwrap(),
                _ => {}
            }
        }
    }
    (denied, allow, lost, full)
}

fn slow_log(
    dir: &std::path::Path,
    interval: Duration,
    free: Option<u64>,
) -> zonegate_audit::AuditHandle {
    let mut c = config(dir);
    c.queue = 16;
    c.queue_reserve = Some(8);
    c.linger = Duration::ZERO;
    c.aggregate_interval = interval;
    if free.is_some() {
        c.min_free_bytes = 1 << 20;
    }
    let storage = SlowDisk {
        inner: FileStorage::new(dir.join("audit.log")),
        delay: Duration::from_millis(2),
        free,
    };
    AuditLog::start_with_storage(c, Box::new(storage)).unwrap()
}

#[test]
fn silent_audit_loss_every_denied_request_is_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let h = slow_log(dir.path(), Duration::from_secs(10), None);
    let (denials, allowed_n) = flood(&h, 200);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    let (denied, allow, lost, full) = account(dir.path());
    assert!(
        denials > 1000,
        "the flood was too small to fill the queue: {denials}"
    );
    assert_eq!(denied, denials, "every denial is in a record or a count");
    assert_eq!(
        r.decisions.get("deny").copied(),
        Some(denials),
        "verify counts requests"
    );
    assert!(
        r.aggregate_records > 0 && r.to_string().contains("aggregated:"),
        "{r}"
    );
    assert_eq!(
        (allow, lost),
        (allowed_n, 0),
        "the reserve kept room for allowed records"
    );
    assert!(
        full <= 2 * 80 * 4,
        "at most a few full records per key: {full}"
    );
}

#[test]
fn silent_audit_loss_without_aggregation_is_chained_as_audit_lost() {
    let dir = tempfile::tempdir().unwrap();
    let h = slow_log(dir.path(), Duration::ZERO, None);
    let (denials, allowed_n) = flood(&h, 200);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    let (denied, allow, lost, _) = account(dir.path());
    assert!(
        lost > 0,
        "the flood must overflow a 16-record queue on a slow disk"
    );
    assert_eq!(allow, allowed_n, "allowed records are not dropped");
    assert_eq!(
        denied + lost,
        denials,
        "records + lost account for every denial"
    );
    assert!(r.kinds.get("audit_lost").copied().unwrap_or(0) > 0);
    let ev: Vec<Event> = files(dir.path()).iter().flat_map(|f| events(f)).collect();
    let l = ev.iter().find(|e| e.kind == Kind::AuditLost).unwrap();
    assert!(l.first_ts.is_some() && l.last_ts.is_some(), "{l:?}");
    // verify is not silent about it.
    assert_eq!(r.lost, lost);
    assert!(
        r.to_string()
            .contains(&format!("{lost} record(s) were lost")),
        "{r}"
    );
    assert_eq!(r.decisions.get("deny").copied(), Some(denied));
}

#[test]
fn storage_low_sheds_full_denial_records_before_allowed_ones() {
    let dir = tempfile::tempdir().unwrap();
    // 4 KiB free, threshold 1 MiB: low from the start.
    let h = slow_log(dir.path(), Duration::from_secs(10), Some(4096));
    for i in 0..500 {
        h.record_aggregated(denial(i)).unwrap();
        if i % 50 == 0 {
            h.record(allowed(i), false).unwrap();
        }
    }
    h.shutdown().wait().unwrap();
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
    let (denied, allow, lost, full) = account(dir.path());
    assert_eq!(full, 0, "no denial is written in full while storage is low");
    assert_eq!((denied, allow, lost), (500, 10, 0));
    let ev = events(&dir.path().join("audit.log"));
    assert!(ev.iter().any(|e| e.kind == Kind::StorageLow));
}

#[test]
fn a_summary_is_written_when_its_interval_ends_not_only_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.aggregate_interval = Duration::from_millis(200);
    let h = zonegate_audit::AuditLog::start(c).unwrap();
    for i in 0..10 {
        // One host, one reason: one key.
        h.record_aggregated(denial(i * 120)).unwrap();
    }
    let path = dir.path().join("audit.log");
    let mut summary = None;
    // Bounded: at most 5 s.
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        summary = events(&path).into_iter().find(|e| e.count.is_some());
        if summary.is_some() {
            break;
        }
    }
    let s = summary.expect("the summary of an ended interval is written while running");
    assert_eq!(s.count, Some(9));
    assert_eq!(s.request_id, None, "a summary stands for many requests");
    assert!(s.first_ts < s.last_ts, "{s:?}");
    h.shutdown().wait().unwrap();
}

/// A log whose every write takes 2 ms, with a 64-message queue (pacing from 8 on).
fn slow_small_log(dir: &std::path::Path) -> zonegate_audit::AuditHandle {
    let mut c = config(dir);
    c.queue = 64;
    c.linger = Duration::from_millis(4);
    let storage = SlowDisk {
        inner: FileStorage::new(dir.join("audit.log")),
        delay: Duration::from_millis(2),
        free: None,
    };
    AuditLog::start_with_storage(c, Box::new(storage)).unwrap()
}

/// Sends `n` allowed records as fast as it can from one task, awaiting `room` first when
/// `pace`; returns how many `record` refused.
async fn allowed_burst(h: &zonegate_audit::AuditHandle, n: u64, pace: bool) -> u64 {
    let mut refused = 0;
    for i in 0..n {
        if pace && h.crowded() {
            tokio::time::timeout(Duration::from_secs(5), h.room())
                .await
                .expect("the writer grants room within 5 s");
        }
        if h.record(allowed(i), false).is_err() {
            refused += 1;
        }
    }
    refused
}

#[tokio::test(flavor = "current_thread")]
async fn regression_audit_loss_a_data_path_faster_than_the_writer_loses_reads_unless_it_paces() {
    // Without pacing: the slow writer falls behind a 64-record queue and reads are lost
    // (what a flood of allowed reads did on a one-core gateway).
    let dir = tempfile::tempdir().unwrap();
    let h = slow_small_log(dir.path());
    let refused = allowed_burst(&h, 2000, false).await;
    h.shutdown().await.unwrap();
    let (_, allow, lost, _) = account(dir.path());
    assert!(refused > 0, "2,000 records at once must overflow 64 slots");
    assert_eq!((allow + lost, lost), (2000, refused));

    // Pacing on `crowded`/`room`: the same burst, none lost, and the waits are counted.
    let dir = tempfile::tempdir().unwrap();
    let h = slow_small_log(dir.path());
    let refused = allowed_burst(&h, 2000, true).await;
    let paced = h.stats().paced;
    h.shutdown().await.unwrap();
    let (_, allow, lost, _) = account(dir.path());
    assert_eq!((refused, allow, lost), (0, 2000, 0));
    assert!(paced > 0, "the burst waited for the writer");
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
}

#[tokio::test(flavor = "current_thread")]
async fn room_is_granted_once_the_writer_takes_its_batch_and_after_it_stops() {
    // A writer that lingers for a minute after its first record: the queue stays crowded.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.queue = 16;
    c.linger = Duration::from_secs(60);
    let h = zonegate_audit::AuditLog::start(c).unwrap();
    h.record(allowed(0), false).unwrap();
    for _ in 0..500 {
        if h.queue_len() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 1..=4 {
        h.record(allowed(i), false).unwrap();
    }
    assert!(h.crowded(), "4 of 16 queued: past the eighth");
    let waiter = {
        let h = h.clone();
        tokio::spawn(async move { h.room().await })
    };
    // `room` woke the lingering writer: it takes the batch and grants room.
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("room granted after the writer took the batch")
        .unwrap();
    assert!(!h.crowded());
    h.shutdown().await.unwrap();
    // After the stop, nobody waits.
    tokio::time::timeout(Duration::from_secs(1), h.room())
        .await
        .expect("room resolves at once once the writer has stopped");
}
