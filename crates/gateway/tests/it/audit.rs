//! The audit trail in the data path: `audit.on_failure` while the log cannot be written, and
//! recovery once it can.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zonegate_audit::{Decision, FileStorage, Kind, Storage};
use zonegate_gateway::sim::{Device, Sim};
use zonegate_gateway::AuditStorageFactory;

use super::util::*;

async fn faulty_rig(on_failure: &str) -> (Rig, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let upstream = sim.local_addr();
    // The factory needs the audit path, which the rig picks: take it from a shared cell.
    let path_cell: Arc<std::sync::Mutex<Option<std::path::PathBuf>>> = Arc::default();
    let cell = Arc::clone(&path_cell);
    let flag = Arc::clone(&failing);
    let factory: AuditStorageFactory = Arc::new(move || {
        let path = cell.lock().unwrap().clone().unwrap_or_default();
        Box::new(Faulty {
            inner: FileStorage::new(path),
            failing: Arc::clone(&flag),
        })
    });
    // The rig picks the audit file; the hook tells the factory before the gateway starts.
    let rig = Rig::launch_with_path_hook(
        sim,
        upstream,
        &format!("  on_failure: {on_failure}\n"),
        factory,
        move |audit| *path_cell.lock().unwrap() = Some(audit.to_path_buf()),
    )
    .await;
    (rig, failing)
}

#[tokio::test]
async fn block_writes_refuses_writes_while_the_log_fails_and_recovers() {
    let (rig, failing) = faulty_rig("block_writes").await;
    let mut ews = rig.client(EWS).await;
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(ews.call(1, &write_one(100, 210)).await, [6, 0, 100, 0, 210]);

    failing.store(true, Ordering::SeqCst);
    assert_eq!(ews.call(1, &write_one(100, 220)).await, [0x86, 0x04]);
    assert_eq!(rig.sim.device().holding(100), 210, "not forwarded");
    // Reads go on.
    assert_eq!(
        registers_of(&hist.call(1, &read_holding(100, 1)).await),
        [210]
    );
    assert_eq!(ews.call(1, &write_one(100, 221)).await, [0x86, 0x04]);

    failing.store(false, Ordering::SeqCst);
    let mut recovered = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ews.call(1, &write_one(100, 230)).await == [6, 0, 100, 0, 230] {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "writes pass again once the log can be written");
    assert_eq!(rig.sim.device().holding(100), 230);

    // After recovery the log must say what happened: the blocked writes were refused
    // (audit_unavailable), and there is no `allow` record for them (a replayed durable record
    // would claim they were forwarded).
    let with_value = |e: &zonegate_audit::Event, v: u16| {
        e.kind == Kind::Request && e.fc == Some(6) && e.values.as_deref() == Some(&[v][..])
    };
    let events = rig
        .events_until(|ev| {
            ev.iter()
                .any(|e| with_value(e, 230) && e.decision == Some(Decision::Allow))
                && ev.iter().filter(|e| e.kind == Kind::AuditRecovered).count() > 0
        })
        .await;
    for v in [220, 221] {
        let of: Vec<_> = events.iter().filter(|e| with_value(e, v)).collect();
        assert!(
            of.iter().all(|e| e.decision == Some(Decision::Deny)
                && e.reason.as_deref() == Some("audit_unavailable")),
            "value {v}: {of:?}"
        );
        assert!(!of.is_empty(), "the refusal of value {v} is recorded");
    }
    assert!(
        events
            .iter()
            .any(|e| with_value(e, 230) && e.decision == Some(Decision::Allow)),
        "the write after recovery is recorded as allowed"
    );
    rig.stop().await;
}

#[tokio::test]
async fn block_all_refuses_reads_too() {
    let (rig, failing) = faulty_rig("block_all").await;
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(
        registers_of(&hist.call(1, &read_holding(100, 1)).await),
        [200]
    );
    failing.store(true, Ordering::SeqCst);
    // The first read's record fails in the background; from then on everything gets 0x04.
    let mut blocked = false;
    for _ in 0..50 {
        if hist.call(1, &read_holding(100, 1)).await == [0x83, 0x04] {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(blocked, "reads are refused under block_all");
    failing.store(false, Ordering::SeqCst);
    rig.stop().await;
}

#[tokio::test]
async fn continue_forwards_while_the_log_fails() {
    let (rig, failing) = faulty_rig("continue").await;
    let mut ews = rig.client(EWS).await;
    failing.store(true, Ordering::SeqCst);
    assert_eq!(ews.call(1, &write_one(100, 215)).await, [6, 0, 100, 0, 215]);
    assert_eq!(rig.sim.device().holding(100), 215);
    failing.store(false, Ordering::SeqCst);
    // Once the log recovers, the forwarded write is in it exactly once, as allowed (the failed
    // durable record is not written late next to the gateway's own record of the request).
    let is_it = |e: &zonegate_audit::Event| {
        e.kind == Kind::Request && e.fc == Some(6) && e.values.as_deref() == Some(&[215][..])
    };
    let events = rig
        .events_until(|ev| {
            ev.iter().any(|e| e.kind == Kind::AuditRecovered) && ev.iter().any(is_it)
        })
        .await;
    let of: Vec<_> = events.iter().filter(|e| is_it(e)).collect();
    assert_eq!(of.len(), 1, "{of:?}");
    assert_eq!(of[0].decision, Some(Decision::Allow));
    rig.stop().await;
}

/// The real file; remembers when each fsync completed and how many bytes it covered.
struct TimedSyncs {
    inner: FileStorage,
    written: u64,
    syncs: Syncs,
}

impl Storage for TimedSyncs {
    fn open(&mut self) -> io::Result<u64> {
        let len = self.inner.open()?;
        self.written = len;
        Ok(len)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()?;
        self.syncs
            .lock()
            .unwrap()
            .push((std::time::Instant::now(), self.written));
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)?;
        self.written = self.written.min(len);
        Ok(())
    }
    fn can_rotate(&self) -> bool {
        false
    }
    fn rotate(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn close(&mut self) {
        self.inner.close();
    }
}

/// When each request reached the device, and its PDU.
type Arrivals = Arc<std::sync::Mutex<Vec<(std::time::Instant, Vec<u8>)>>>;

/// When each fsync completed, and how many bytes of the file it covered.
type Syncs = Arc<std::sync::Mutex<Vec<(std::time::Instant, u64)>>>;

/// A device that notes when each request arrives and echoes it (the FC 6 answer is the
/// request itself). Serves one connection, a bounded number of requests.
async fn timestamping_device() -> (std::net::SocketAddr, Arrivals) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arrivals = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        for _ in 0..100 {
            let mut head = [0u8; 7];
            if s.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
            let mut pdu = vec![0u8; len.saturating_sub(1)];
            if s.read_exact(&mut pdu).await.is_err() {
                return;
            }
            log.lock()
                .unwrap()
                .push((std::time::Instant::now(), pdu.clone()));
            let mut answer = head.to_vec();
            answer.extend_from_slice(&pdu);
            if s.write_all(&answer).await.is_err() {
                return;
            }
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn write_record_is_fsynced_before_the_device_sees_the_write() {
    let (device, arrivals) = timestamping_device().await;
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let syncs: Syncs = Arc::default();
    let path_cell: Arc<std::sync::Mutex<Option<std::path::PathBuf>>> = Arc::default();
    let (cell, log) = (Arc::clone(&path_cell), Arc::clone(&syncs));
    let factory: AuditStorageFactory = Arc::new(move || {
        let path = cell.lock().unwrap().clone().unwrap_or_default();
        Box::new(TimedSyncs {
            inner: FileStorage::new(path),
            written: 0,
            syncs: Arc::clone(&log),
        })
    });
    let rig = Rig::launch_with_path_hook(sim, device, "", factory, move |audit| {
        *path_cell.lock().unwrap() = Some(audit.to_path_buf())
    })
    .await;
    let mut ews = rig.client(EWS).await;
    assert_eq!(ews.call(1, &write_one(100, 217)).await, [6, 0, 100, 0, 217]);
    let events = rig
        .events_until(|e| e.iter().any(|e| e.kind == Kind::Outcome))
        .await;
    assert!(events.iter().any(|e| e.kind == Kind::Outcome), "{events:?}");

    // Where the write's request record ends in the file.
    let bytes = std::fs::read(&rig.audit).unwrap();
    let mut end = 0u64;
    let mut record_end = None;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        end += line.len() as u64;
        let e: zonegate_audit::Event = serde_json::from_slice(line).unwrap();
        if e.kind == Kind::Request && e.fc == Some(6) && e.decision == Some(Decision::Allow) {
            record_end = Some(end);
        }
    }
    let record_end = record_end.expect("the write's request record");
    let synced_at = syncs
        .lock()
        .unwrap()
        .iter()
        .find(|(_, covered)| *covered >= record_end)
        .map(|(t, _)| *t)
        .expect("an fsync covering the write's record");
    let arrived_at = arrivals
        .lock()
        .unwrap()
        .iter()
        .find(|(_, pdu)| pdu.first() == Some(&6))
        .map(|(t, _)| *t)
        .expect("the device saw the write");
    assert!(
        synced_at < arrived_at,
        "the record must be on disk before the device sees the write ({:?} after)",
        synced_at.duration_since(arrived_at)
    );
    rig.stop().await;
}

#[tokio::test]
async fn model_retention_keys_reach_the_audit_writer() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let upstream = sim.local_addr();
    let rig = Rig::launch(
        sim,
        upstream,
        "",
        None,
        "  rotate_size: 4096\n  max_bytes: 8KiB\n  max_segments: 1\n  aggregate_interval: 1h\n",
        None,
    )
    .await;
    let mut hist = rig.client(HISTORIAN).await;
    for _ in 0..60 {
        assert_eq!(
            registers_of(&hist.call(1, &read_holding(100, 1)).await),
            [200]
        );
    }
    let Rig {
        sim,
        gateway,
        dir,
        audit,
        ..
    } = rig;
    gateway.shutdown().await;
    sim.stop().await;
    let segs = zonegate_audit::storage::segments(&audit).unwrap();
    assert_eq!(segs.len(), 1, "max_segments: 1 keeps one segment: {segs:?}");
    let files = zonegate_audit::storage::log_files(&audit).unwrap();
    let r = zonegate_audit::verify(&files, &zonegate_audit::VerifyOptions::default()).unwrap();
    assert!(r.is_ok() && r.retention.is_some(), "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn refused_connections_are_one_record_and_one_count_not_one_record_each() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let upstream = sim.local_addr();
    let rig = Rig::launch(
        sim,
        upstream,
        "      max_connections: 1\n      max_connections_wait: 50ms\n",
        None,
        "",
        None,
    )
    .await;
    let mut held = rig.client(HISTORIAN).await;
    let _ = held.call(1, &read_holding(100, 1)).await;
    const REFUSED: u64 = 30;
    for _ in 0..REFUSED {
        let mut c = rig.client(STRANGER).await;
        assert!(c.closed_within(WAIT).await, "refused at max_connections");
    }
    drop(held);
    let Rig {
        sim,
        gateway,
        dir,
        audit,
        ..
    } = rig;
    gateway.shutdown().await;
    sim.stop().await;
    // Whatever the refusal's reason (max_connections today; a source no rule names may be
    // refused earlier with its own reason), each reason is one record in full plus one summary.
    let refusals: Vec<_> = read_events(&audit)
        .into_iter()
        .filter(|e| {
            e.kind == Kind::Connection
                && e.src
                    .as_deref()
                    .is_some_and(|s| s == STRANGER || s.starts_with(&format!("{STRANGER}:")))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let mut reasons: Vec<_> = refusals.iter().map(|e| e.reason.clone()).collect();
    reasons.sort();
    reasons.dedup();
    assert!(
        refusals.len() <= 2 * reasons.len() && refusals.len() < 5,
        "{refusals:?}"
    );
    assert!(refusals.iter().any(|e| e.count.is_some()), "{refusals:?}");
    assert_eq!(
        refusals.iter().map(|e| e.count.unwrap_or(1)).sum::<u64>(),
        REFUSED,
        "every refused connection is accounted for"
    );
}

#[tokio::test]
async fn aggregate_interval_zero_writes_every_refusal_in_full() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let upstream = sim.local_addr();
    let rig = Rig::launch(
        sim,
        upstream,
        "      max_connections: 1\n      max_connections_wait: 50ms\n",
        None,
        "  aggregate_interval: 0s\n",
        None,
    )
    .await;
    let mut held = rig.client(HISTORIAN).await;
    let _ = held.call(1, &read_holding(100, 1)).await;
    for _ in 0..5 {
        let mut c = rig.client(STRANGER).await;
        assert!(c.closed_within(WAIT).await);
    }
    drop(held);
    let Rig {
        sim,
        gateway,
        dir,
        audit,
        ..
    } = rig;
    gateway.shutdown().await;
    sim.stop().await;
    let refusals: Vec<_> = read_events(&audit)
        .into_iter()
        .filter(|e| e.kind == Kind::Connection)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    assert!(refusals.iter().all(|e| e.count.is_none()), "{refusals:?}");
}

/// The operations view of the audit log (what `/metrics` and `/api/state` serve, the admin
/// crate rendering these): with `sync: writes` the durable records are fsynced and the fsync
/// latency histogram counts them; with a signing key the state shows the last checkpoint
/// once one is on disk; reads over more than a second give the unit a poll rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_fsync_histogram_and_the_state_the_last_signed_checkpoint() {
    let keys = temp_dir();
    let key = zonegate_audit::keys::generate().unwrap();
    let (secret, _) = zonegate_audit::keys::write_key_pair(&keys.join("audit"), &key).unwrap();
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let upstream = sim.local_addr();
    let rig = Rig::launch(
        sim,
        upstream,
        "",
        None,
        &format!(
            "  signing_key: {}\n  checkpoint_every: 4\n",
            secret.display()
        ),
        None,
    )
    .await;
    let m = rig.gateway.metrics();
    // Durable records: allowed writes (and a denial) are fsynced before they are answered.
    let mut ews = rig.client(EWS).await;
    for v in [200, 201, 202] {
        let pdu = ews.call(1, &write_one(100, v)).await;
        assert_eq!(exception_of(&pdu), None, "{pdu:?}");
    }
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(
        exception_of(&hist.call(1, &write_one(100, 200)).await),
        Some(1)
    );

    let text = m.encode();
    assert!(
        text.contains("# TYPE zonegate_audit_fsync_seconds histogram"),
        "{text}"
    );
    let sample = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let count = sample("zonegate_audit_fsync_seconds_count ");
    assert!(
        count >= 4.0,
        "genesis, start and the durable records: {text}"
    );
    assert_eq!(
        sample("zonegate_audit_fsync_seconds_bucket{le=\"+Inf\"} "),
        count
    );
    assert!(sample("zonegate_audit_fsync_seconds_sum ") > 0.0, "{text}");
    assert!(sample("zonegate_audit_fsyncs_total ") >= 4.0, "{text}");
    assert!(
        !text.contains("zonegate_audit_fsync_seconds_total"),
        "{text}"
    );

    // The checkpoint after every 4 records: on disk, then in the state with its seq and age.
    let deadline = tokio::time::Instant::now() + WAIT;
    let state = loop {
        let state = m.snapshot();
        if !state["audit"]["last_checkpoint"].is_null() || tokio::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cp = &state["audit"]["last_checkpoint"];
    let seq = cp["seq"].as_u64().unwrap_or_else(|| panic!("{state}"));
    let age = cp["age_s"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&age), "{cp}");
    let events = rig
        .events_until(|ev| ev.iter().any(|e| e.kind == Kind::Checkpoint))
        .await;
    let on_disk: Vec<u64> = events
        .iter()
        .filter(|e| e.kind == Kind::Checkpoint)
        .filter_map(|e| e.seq)
        .collect();
    assert!(on_disk.contains(&seq), "{seq} in {on_disk:?}");
    assert!(
        state["audit"]["head_seq"].as_u64().unwrap() >= seq,
        "{state}"
    );

    // Polls over more than a whole second: the unit's rate is above zero.
    let until = tokio::time::Instant::now() + Duration::from_millis(1300);
    while tokio::time::Instant::now() < until {
        let _ = hist.call(1, &read_holding(0, 2)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = m.snapshot();
    let unit = &state["units"][0];
    let rate = unit["polls_per_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("{unit}"));
    assert!(rate > 1.0 && rate < 100.0, "{unit}");
    drop((ews, hist));
    rig.stop().await;
    let _ = std::fs::remove_dir_all(&keys);
}
