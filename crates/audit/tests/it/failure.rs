//! Disk full (ENOSPC injected by a fault-injecting storage): tickets fail, the handle turns
//! unhealthy, nothing panics, and the writer recovers by itself with an `audit_recovered` record.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zonegate_audit::{AuditError, AuditLog, FileStorage, Kind, OnFailure, Storage, VerifyOptions};

use super::util::*;

/// Wraps the real file storage; while `full` is set, writes and fsyncs fail with ENOSPC
/// (after writing half the buffer, as a real full disk may).
struct FullDisk {
    inner: FileStorage,
    full: Arc<AtomicBool>,
    failed_writes: Arc<AtomicU64>,
}

const ENOSPC: i32 = 28;

impl Storage for FullDisk {
    fn open(&mut self) -> io::Result<u64> {
        self.inner.open()
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            self.failed_writes.fetch_add(1, Ordering::SeqCst);
            self.inner.write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        self.inner.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
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
}

#[test]
fn disk_full_fails_tickets_then_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.retry_interval = Duration::from_millis(50);
    c.on_failure = OnFailure::BlockWrites;
    let full = Arc::new(AtomicBool::new(false));
    let failed_writes = Arc::new(AtomicU64::new(0));
    let storage = FullDisk {
        inner: FileStorage::new(dir.path().join("audit.log")),
        full: Arc::clone(&full),
        failed_writes: Arc::clone(&failed_writes),
    };
    let h = AuditLog::start_with_storage(c, Box::new(storage)).unwrap();
    append_n(&h, 5, true);
    assert!(h.is_healthy());
    assert!(!h.should_block(true));

    full.store(true, Ordering::SeqCst);
    let r = h.append(request(1), true).wait();
    assert!(
        matches!(r, Err(AuditError::Unavailable(ref m)) if m.contains("No space left")),
        "{r:?}"
    );
    assert!(!h.is_healthy());
    assert!(h.should_block(true), "block_writes blocks writes");
    assert!(!h.should_block(false), "block_writes lets reads go on");
    // While the disk is full, more records fail fast (held in memory for later).
    for i in 0..10 {
        assert!(h.append(request(i), false).wait().is_err());
    }
    assert!(h.stats().failures >= 1);
    assert!(failed_writes.load(Ordering::SeqCst) >= 1);

    full.store(false, Ordering::SeqCst);
    // Recovers on its own timer, without any new append.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_healthy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.is_healthy(), "writer did not recover");
    let seq = h.append(request(2), true).wait().unwrap();
    assert!(seq > 6);
    h.shutdown().wait().unwrap();

    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok() && r.torn.is_none(), "{r}");
    let ev = events(&dir.path().join("audit.log"));
    let rec = ev.iter().find(|e| e.kind == Kind::AuditRecovered).unwrap();
    // The failed durable request is not written late (its caller acted on the failure);
    // the 10 plain records are.
    assert_eq!(rec.delayed, Some(10), "{rec:?}");
    assert_eq!(rec.lost, Some(0));
    assert!(rec.message.as_deref().unwrap().contains("unavailable"));
    // The held records follow the recovery record, with their original timestamps.
    let i = ev
        .iter()
        .position(|e| e.kind == Kind::AuditRecovered)
        .unwrap();
    assert_eq!(
        ev[i + 1..i + 11]
            .iter()
            .filter(|e| e.kind == Kind::Request)
            .count(),
        10
    );
    assert_eq!(h.stats().delayed, 10);
}

#[test]
fn backlog_overflow_counts_lost_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.retry_interval = Duration::from_millis(30);
    c.backlog = 3;
    let full = Arc::new(AtomicBool::new(false));
    let storage = FullDisk {
        inner: FileStorage::new(dir.path().join("audit.log")),
        full: Arc::clone(&full),
        failed_writes: Arc::new(AtomicU64::new(0)),
    };
    let h = AuditLog::start_with_storage(c, Box::new(storage)).unwrap();
    full.store(true, Ordering::SeqCst);
    for i in 0..10 {
        let _ = h.append(request(i), false).wait();
    }
    full.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_healthy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    let rec = ev.iter().find(|e| e.kind == Kind::AuditRecovered).unwrap();
    assert_eq!((rec.delayed, rec.lost), (Some(3), Some(7)));
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
}

#[cfg(unix)]
#[test]
fn unwritable_file_at_start_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.path = Some(dir.path().join("no-such-dir").join("audit.log"));
    match AuditLog::start(c) {
        Err(AuditError::Unavailable(m)) => assert!(m.contains("no-such-dir"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn continue_mode_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.on_failure = OnFailure::Continue;
    let full = Arc::new(AtomicBool::new(true));
    let storage = FullDisk {
        inner: FileStorage::new(dir.path().join("audit.log")),
        full: Arc::clone(&full),
        failed_writes: Arc::new(AtomicU64::new(0)),
    };
    // The first write (genesis/start) already fails: start still succeeds, unhealthy.
    let h = AuditLog::start_with_storage(c, Box::new(storage)).unwrap();
    assert!(!h.is_healthy());
    assert!(!h.should_block(true) && !h.should_block(false));
    assert_eq!(h.on_failure(), OnFailure::Continue);
    full.store(false, Ordering::SeqCst);
    let _ = h.shutdown().wait();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
}

#[test]
fn disk_full_is_reported_to_the_siem() {
    let dir = tempfile::tempdir().unwrap();
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut c = config(dir.path());
    c.syslog = Some(zonegate_audit::SyslogConfig::new(
        zonegate_audit::SyslogTransport::Udp,
        collector.local_addr().unwrap().to_string(),
    ));
    let full = Arc::new(AtomicBool::new(false));
    let storage = FullDisk {
        inner: FileStorage::new(dir.path().join("audit.log")),
        full: Arc::clone(&full),
        failed_writes: Arc::new(AtomicU64::new(0)),
    };
    let h = AuditLog::start_with_storage(c, Box::new(storage)).unwrap();
    full.store(true, Ordering::SeqCst);
    assert!(h.append(request(1), true).wait().is_err());
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    for _ in 0..10 {
        let Ok(n) = collector.recv(&mut buf) else {
            break;
        };
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = m.contains("audit_failure");
        got.push(m);
        if done {
            break;
        }
    }
    let alarm = got.iter().find(|m| m.contains("audit_failure")).unwrap();
    assert!(
        alarm.starts_with("<107>1 "),
        "err severity, facility 13: {alarm}"
    );
    assert!(alarm.contains("No space left"), "{alarm}");
    full.store(false, Ordering::SeqCst);
    h.shutdown().wait().unwrap();
}

/// Rotation that fails after the rename (the new active file cannot be created) once.
struct HalfRotation {
    inner: FileStorage,
    path: std::path::PathBuf,
    fail_next: Arc<AtomicBool>,
}

impl Storage for HalfRotation {
    fn open(&mut self) -> io::Result<u64> {
        self.inner.open()
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
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
        if self.fail_next.swap(false, Ordering::SeqCst) {
            self.inner.close();
            let n = zonegate_audit::storage::segments(&self.path)?
                .last()
                .map_or(1, |(n, _)| n + 1);
            std::fs::rename(
                &self.path,
                zonegate_audit::storage::segment_path(&self.path, n),
            )?;
            return Err(io::Error::other(
                "simulated: cannot create the new active file",
            ));
        }
        self.inner.rotate()
    }
    fn close(&mut self) {
        self.inner.close();
    }
}

#[test]
fn half_done_rotation_recovers_without_corrupting_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut c = config(dir.path());
    c.rotate_bytes = 3000;
    c.retry_interval = Duration::from_millis(20);
    let fail_next = Arc::new(AtomicBool::new(true));
    let storage = HalfRotation {
        inner: FileStorage::new(&path),
        path,
        fail_next: Arc::clone(&fail_next),
    };
    let h = AuditLog::start_with_storage(c, Box::new(storage)).unwrap();
    let mut failed = 0;
    for i in 0..40 {
        if h.append(request(i), true).wait().is_err() {
            failed += 1;
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    assert!(failed >= 1, "the rotation failure must surface");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_healthy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok() && r.torn.is_none(), "{r}");
    for f in files(dir.path()) {
        assert!(
            !std::fs::read(&f).unwrap().contains(&0u8),
            "{f:?} has NUL bytes"
        );
    }
}

/// Writes always succeed; while `sync_fails` is set, every fsync fails (EIO after a good write,
/// as a failing disk or an NFS server may).
struct SyncFails {
    inner: FileStorage,
    sync_fails: Arc<AtomicBool>,
}

impl Storage for SyncFails {
    fn open(&mut self) -> io::Result<u64> {
        self.inner.open()
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.sync_fails.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
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
}

#[test]
fn fsync_failure_after_a_good_write_does_not_reuse_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.retry_interval = Duration::from_millis(30);
    let sync_fails = Arc::new(AtomicBool::new(false));
    let storage = SyncFails {
        inner: FileStorage::new(dir.path().join("audit.log")),
        sync_fails: Arc::clone(&sync_fails),
    };
    let h = AuditLog::start_with_storage(c, Box::new(storage)).unwrap();
    append_n(&h, 3, true);
    sync_fails.store(true, Ordering::SeqCst);
    // The write reaches the file, the fsync fails: the ticket must fail ...
    assert!(h.append(request(7), true).wait().is_err());
    assert!(!h.is_healthy());
    // ... and the half-committed batch must not stay in the file under seqs the writer reuses.
    sync_fails.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_healthy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.is_healthy(), "writer did not recover");
    append_n(&h, 2, true);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    let seqs: Vec<u64> = events(&dir.path().join("audit.log"))
        .iter()
        .map(|e| e.seq.unwrap())
        .collect();
    let mut dedup = seqs.clone();
    dedup.dedup();
    assert_eq!(seqs, dedup, "a seq is written twice");
}

#[test]
fn blocked_write_leaves_a_false_allow_record_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.retry_interval = Duration::from_millis(30);
    let full = Arc::new(AtomicBool::new(false));
    let storage = FullDisk {
        inner: FileStorage::new(dir.path().join("audit.log")),
        full: Arc::clone(&full),
        failed_writes: Arc::new(AtomicU64::new(0)),
    };
    let h = AuditLog::start_with_storage(c, Box::new(storage)).unwrap();
    full.store(true, Ordering::SeqCst);
    // The gateway awaits the durable record of a write; it fails, so the write is refused.
    let mut blocked = request(1);
    blocked.tid = Some(4242);
    blocked.request_id = Some(4242);
    assert!(h.append(blocked, true).wait().is_err());
    // A second one whose caller gave up waiting (dropped the ticket) before the writer got
    // to it while the disk is still full.
    let mut gave_up = request(3);
    gave_up.request_id = Some(4343);
    drop(h.append(gave_up, true));
    // The gateway's own record of what it did.
    let mut refusal = request(1);
    refusal.tid = Some(4242);
    refusal.request_id = Some(4242);
    refusal.decision = Some(zonegate_audit::Decision::Deny);
    refusal.reason = Some("audit_unavailable".into());
    h.record(refusal, false).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    full.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_healthy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    h.shutdown().wait().unwrap();
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
    let ev = events(&dir.path().join("audit.log"));
    let of = |id: u64| -> Vec<_> {
        ev.iter()
            .filter(|e| e.request_id == Some(id))
            .map(|e| (e.decision, e.reason.as_deref().map(str::to_owned)))
            .collect()
    };
    assert_eq!(
        of(4242),
        [(
            Some(zonegate_audit::Decision::Deny),
            Some("audit_unavailable".to_owned())
        )],
        "only the refusal, no allow"
    );
    assert!(
        of(4343).is_empty(),
        "a withdrawn record is not written late"
    );
    let rec = ev.iter().find(|e| e.kind == Kind::AuditRecovered).unwrap();
    assert!(
        rec.message
            .as_deref()
            .unwrap()
            .contains("2 durable request record(s)"),
        "{rec:?}"
    );
}
