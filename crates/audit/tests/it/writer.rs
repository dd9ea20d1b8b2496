//! The writer: chain shape, lifecycle records, rotation, restart, checkpoints, group commit.

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::thread;

use zonegate_audit::{keys, AuditError, AuditLog, Kind, SyncMode, VerifyOptions, GENESIS_PREV};

use super::util::*;

#[test]
fn new_log_has_genesis_start_records_stop_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    let seqs = append_n(&h, 10, true);
    assert_eq!(seqs, (2..12).collect::<Vec<_>>());
    let stop = h.shutdown().wait().unwrap();
    assert_eq!(stop, 12);
    let ev = events(&dir.path().join("audit.log"));
    assert_eq!(ev.len(), 13);
    assert_eq!(ev[0].kind, Kind::Genesis);
    assert_eq!(ev[0].prev.as_deref(), Some(GENESIS_PREV));
    assert_eq!(ev[0].gateway.as_deref(), Some("test-gw"));
    assert!(ev[0].policy_hash.is_some());
    assert_eq!(ev[1].kind, Kind::Start);
    assert_eq!(ev[12].kind, Kind::Stop);
    for w in ev.windows(2) {
        assert_eq!(w[1].prev, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq.map(|s| s + 1));
    }
    let ts = ev[2].ts.as_deref().unwrap();
    assert_eq!(ts.len(), 27, "RFC 3339 with microseconds: {ts}");
    assert!(ts.ends_with('Z'));
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.records, 13);
    assert_eq!((r.first_seq, r.last_seq), (Some(0), Some(12)));
}

#[test]
fn append_after_shutdown_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    h.shutdown().wait().unwrap();
    assert_eq!(h.append(request(1), true).wait(), Err(AuditError::Closed));
}

#[test]
fn tickets_are_futures() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = h.append(request(1), true).await.unwrap();
        let b = h.append(request(2), false).await.unwrap();
        assert_eq!(b, a + 1);
        let p = h.policy_loaded("abc", "loaded model.yaml").await.unwrap();
        assert_eq!(p, b + 1);
        h.shutdown().await.unwrap();
    });
    let ev = events(&dir.path().join("audit.log"));
    assert!(ev
        .iter()
        .any(|e| e.kind == Kind::PolicyLoad && e.policy_hash.as_deref() == Some("abc")));
}

#[test]
fn rotation_keeps_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rotate_bytes = 4000;
    let h = start(c);
    append_n(&h, 100, false);
    h.shutdown().wait().unwrap();
    let files = files(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        assert!(
            fs::metadata(f).unwrap().len() < 4000 + 1000,
            "{f:?} too big"
        );
    }
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.records, 103);
    // Argument order does not matter.
    let mut rev = files.clone();
    rev.reverse();
    assert!(zonegate_audit::verify(&rev, &VerifyOptions::default())
        .unwrap()
        .is_ok());
    // Only the last file: not the start of a chain, unless asked to check it alone.
    let last = vec![files.last().unwrap().clone()];
    let r = zonegate_audit::verify(&last, &VerifyOptions::default()).unwrap();
    assert_eq!(
        r.problem.unwrap().problem,
        zonegate_audit::verify::Problem::NotGenesis
    );
    let mut o = VerifyOptions::default();
    o.allow_partial = true;
    assert!(zonegate_audit::verify(&last, &o).unwrap().is_ok());
}

#[test]
fn restart_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    append_n(&h, 5, true);
    h.shutdown().wait().unwrap();
    let h = start(config(dir.path()));
    let seqs = append_n(&h, 5, true);
    assert_eq!(
        seqs[0], 9,
        "genesis, start, 5, stop = 8 records before the new start"
    );
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    assert_eq!(ev.iter().filter(|e| e.kind == Kind::Genesis).count(), 1);
    assert_eq!(ev.iter().filter(|e| e.kind == Kind::Start).count(), 2);
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
}

#[test]
fn restart_after_rotation_continues_from_the_active_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rotate_bytes = 3000;
    let h = start(c.clone());
    append_n(&h, 40, false);
    h.shutdown().wait().unwrap();
    let h = start(c);
    append_n(&h, 40, false);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.records, 2 + 40 + 1 + 1 + 40 + 1);
}

#[test]
fn torn_last_line_is_reported_as_torn_and_cut_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    append_n(&h, 5, true);
    h.shutdown().wait().unwrap();
    let path = dir.path().join("audit.log");
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"ts":"2026-01-01T00:00:00.000000Z","seq":8,"kind":"requ"#)
        .unwrap();
    drop(f);
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "a torn line is not tampering: {r}");
    let torn = r.torn.clone().unwrap();
    assert_eq!(torn.line, 9);
    assert!(r.to_string().contains("torn last line"), "{r}");

    let h = start(config(dir.path()));
    append_n(&h, 2, true);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok() && r.torn.is_none(), "{r}");
    let ev = events(&path);
    let start2 = ev.iter().rfind(|e| e.kind == Kind::Start).unwrap();
    assert!(
        start2.message.as_deref().unwrap().contains("torn"),
        "{start2:?}"
    );
}

#[test]
fn restart_refuses_a_log_whose_last_record_was_edited() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    append_n(&h, 3, true);
    h.shutdown().wait().unwrap();
    let path = dir.path().join("audit.log");
    let mut l = lines(&path);
    let last = l.len() - 1;
    l[last] = l[last].replace("stopped", "stoppeD");
    write_lines(&path, &l);
    match AuditLog::start(config(dir.path())) {
        Err(AuditError::Corrupt { line, .. }) => assert_eq!(line, 6),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn signed_checkpoints_every_n_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (k, kp, _) = key_pair(dir.path());
    let mut c = config(dir.path());
    c.signing_key = Some(kp);
    c.checkpoint_every = 10;
    let h = start(c);
    append_n(&h, 35, false);
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    let cps: Vec<_> = ev.iter().filter(|e| e.kind == Kind::Checkpoint).collect();
    assert_eq!(cps.len(), 4, "3 periodic + 1 final");
    assert_eq!(ev.last().unwrap().kind, Kind::Checkpoint);
    assert_eq!(
        cps[0].key_id.as_deref(),
        Some(keys::key_id(&k.verifying_key()).as_str())
    );
    let r = verify_dir(dir.path(), &VerifyOptions::with_key(k.verifying_key()));
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.signatures_verified, 4);
    assert_eq!(
        h.stats().checkpoints,
        4,
        "stats of a stopped writer stay readable"
    );
}

#[test]
fn stats_carry_the_fsync_histogram_and_the_last_checkpoint_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_, kp, _) = key_pair(dir.path());
    let mut c = config(dir.path());
    c.signing_key = Some(kp.clone());
    c.checkpoint_every = 10;
    let h = start(c);
    append_n(&h, 15, true);
    let s = h.stats();
    assert!(s.fsyncs > 0, "{s:?}");
    assert_eq!(
        s.fsync_histogram.count(),
        s.fsyncs,
        "no fsync failed: one bucket each"
    );
    let cp = s.last_checkpoint.expect("a checkpoint after 10 records");
    let ev = events(&dir.path().join("audit.log"));
    let on_disk = ev.iter().rfind(|e| e.kind == Kind::Checkpoint).unwrap();
    assert_eq!(Some(cp.seq), on_disk.seq);
    assert!(cp.unix_ms > 1_700_000_000_000, "{cp:?}");
    h.shutdown().wait().unwrap();
    let last = h.stats().last_checkpoint.unwrap();
    assert!(last.seq > cp.seq, "the final checkpoint: {last:?}");

    // The next run starts from the log's final checkpoint, not "none yet".
    let mut c = config(dir.path());
    c.signing_key = Some(kp);
    let h = start(c);
    assert_eq!(h.stats().last_checkpoint, Some(last));
    h.shutdown().wait().unwrap();
}

#[test]
fn group_commit_uses_fewer_fsyncs_than_durable_records() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    let before = h.stats();
    let h = Arc::new(h);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                for i in 0..250 {
                    h.append(request(t * 1000 + i), true).wait().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = h.stats();
    let records = after.records - before.records;
    let fsyncs = after.fsyncs - before.fsyncs;
    assert_eq!(records, 2000);
    assert!(
        fsyncs < records,
        "group commit: {fsyncs} fsyncs for {records} durable records"
    );
    eprintln!("group commit: {fsyncs} fsyncs for {records} durable records from 8 threads");
    h.shutdown().wait().unwrap();
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
}

#[test]
fn sync_modes_all_produce_valid_logs() {
    for mode in [SyncMode::Every, SyncMode::Writes, SyncMode::Batch] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.sync = mode;
        c.batch_interval = std::time::Duration::from_millis(20);
        let h = start(c);
        append_n(&h, 20, false);
        let s = h.stats();
        match mode {
            SyncMode::Every => assert!(s.fsyncs >= 20, "{mode:?}: {s:?}"),
            _ => assert!(s.fsyncs < 20, "{mode:?}: {s:?}"),
        }
        h.sync().wait().unwrap();
        h.shutdown().wait().unwrap();
        let r = verify_dir(dir.path(), &VerifyOptions::default());
        assert!(r.is_ok(), "{mode:?}: {r}");
    }
}

#[test]
fn values_are_bounded_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    let mut e = request(1);
    e.values = Some((0..1968).collect());
    h.append(e, true).wait().unwrap();
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    let rec = ev.iter().find(|e| e.kind == Kind::Request).unwrap();
    assert_eq!(
        rec.values.as_ref().unwrap().len(),
        zonegate_audit::MAX_VALUES
    );
    assert!(rec.values_truncated);
}

#[test]
fn dropping_every_handle_writes_stop() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    append_n(&h, 2, true);
    drop(h);
    let path = dir.path().join("audit.log");
    for _ in 0..200 {
        if events(&path).last().map(|e| e.kind) == Some(Kind::Stop) {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(events(&path).last().unwrap().kind, Kind::Stop);
}

#[test]
fn clock_stepping_back_is_a_warning_not_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    append_n(&h, 2, true);
    let mut e = request(9);
    e.ts = Some("2001-01-01T00:00:00.000000Z".into());
    h.append(e, true).wait().unwrap();
    append_n(&h, 2, true);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("clock stepped back"), "{r}");
}

#[test]
fn outcome_records_reference_their_request() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    let seq = h.append(request(1), true).wait().unwrap();
    let o = h
        .append(zonegate_audit::Event::outcome(seq, Some(2), 850), false)
        .wait()
        .unwrap();
    assert_eq!(o, seq + 1);
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    let out = ev.iter().find(|e| e.kind == Kind::Outcome).unwrap();
    assert_eq!(
        (out.ref_seq, out.exception, out.latency_us),
        (Some(seq), Some(2), Some(850))
    );
}

#[test]
fn storage_low_raises_one_alarm_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.min_free_bytes = u64::MAX; // never enough
    let h = start(c);
    append_n(&h, 3, true);
    let st = h.stats();
    assert_eq!(st.storage_alarms, 1, "{st:?}");
    assert!(st.free_bytes > 0);
    assert!(h.is_healthy(), "low space warns, it does not fail");
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    let low: Vec<_> = ev.iter().filter(|e| e.kind == Kind::StorageLow).collect();
    assert_eq!(low.len(), 1);
    assert!(low[0]
        .message
        .as_deref()
        .unwrap()
        .contains("below the threshold"));
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
}

#[test]
fn disabled_handle_records_nothing_and_never_blocks() {
    let h = AuditLog::disabled();
    assert!(!h.is_enabled());
    assert_eq!(h.append(request(1), true).wait(), Ok(0));
    assert!(h.is_healthy() && !h.should_block(true));
    assert_eq!(h.shutdown().wait(), Ok(0));
    assert_eq!(h.stats().records, 0);
}

const STDOUT_ENV: &str = "ZONEGATE_AUDIT_STDOUT_CHILD";

/// Child side of `no_path_writes_json_lines_to_stdout`.
#[test]
fn stdout_child() {
    if std::env::var_os(STDOUT_ENV).is_none() {
        return;
    }
    let mut c = zonegate_audit::AuditConfig::default();
    c.min_free_bytes = 0;
    let h = start(c);
    append_n(&h, 3, true);
    h.shutdown().wait().unwrap();
}

#[test]
fn no_path_writes_json_lines_to_stdout() {
    if std::env::var_os(STDOUT_ENV).is_some() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["it::writer::stdout_child", "--exact", "--nocapture"])
        .env(STDOUT_ENV, "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let json: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_owned)
        .collect();
    assert_eq!(json.len(), 6, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stdout.log");
    write_lines(&p, &json);
    let r = zonegate_audit::verify(&[p], &VerifyOptions::default()).unwrap();
    assert!(r.is_ok(), "{r}");
}

#[test]
fn a_second_writer_on_the_same_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(config(dir.path()));
    match AuditLog::start(config(dir.path())) {
        Err(AuditError::Unavailable(m)) => assert!(m.contains("another process"), "{m}"),
        other => panic!("expected the lock to refuse, got {other:?}"),
    }
    a.shutdown().wait().unwrap();
    let b = start(config(dir.path()));
    b.shutdown().wait().unwrap();
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
}

#[test]
fn caller_timestamps_are_normalized_to_utc_micros() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    let mut a = request(1);
    a.ts = Some("2026-11-22T05:04:05.5+02:00".into());
    let mut b = request(2);
    b.ts = Some("not a time".into());
    h.append(a, true).wait().unwrap();
    h.append(b, true).wait().unwrap();
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    let req: Vec<_> = ev.iter().filter(|e| e.kind == Kind::Request).collect();
    assert_eq!(req[0].ts.as_deref(), Some("2026-11-22T03:04:05.500000Z"));
    assert!(zonegate_audit::event::parse_ts(req[1].ts.as_deref().unwrap()).is_some());
}

#[test]
fn an_arrival_time_becomes_the_ts_and_an_unreadable_caller_ts_gives_way_to_it() {
    // The writer formats `at` (off the caller's thread): the record still says when the
    // request arrived, not when it was queued or written.
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_000_000_123_456);
    let mut a = request(1);
    a.at = Some(at);
    let mut b = request(2);
    b.at = Some(at + std::time::Duration::from_secs(1));
    b.ts = Some("not a time".into());
    let mut c = request(3);
    c.at = Some(at + std::time::Duration::from_secs(2));
    h.record(c, false).unwrap();
    h.append(a, true).wait().unwrap();
    h.append(b, true).wait().unwrap();
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    let ts: Vec<_> = ev
        .iter()
        .filter(|e| e.kind == Kind::Request)
        .map(|e| (e.tid, e.ts.clone().unwrap()))
        .collect();
    assert_eq!(ts.len(), 3, "{ts:?}");
    let of = |tid: u16| {
        ts.iter()
            .find(|(t, _)| *t == Some(tid))
            .map(|(_, ts)| ts.as_str())
    };
    assert_eq!(of(1), Some("2026-11-18T11:06:40.123456Z"));
    assert_eq!(of(2), Some("2026-11-18T11:06:41.123456Z"));
    assert_eq!(of(3), Some("2026-11-18T11:06:42.123456Z"));
}

#[test]
fn restart_of_a_large_log_finds_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rotate_bytes = 0; // one big file, over the 1 MiB fast-path threshold
    let h = start(c.clone());
    let h2 = std::sync::Arc::new(h);
    let mut tickets = Vec::new();
    for i in 0..3000 {
        tickets.push(h2.append(request(i), false));
    }
    for t in tickets {
        t.wait().unwrap();
    }
    h2.shutdown().wait().unwrap();
    assert!(fs::metadata(dir.path().join("audit.log")).unwrap().len() > (1 << 20));
    let h = start(c);
    let seq = h.append(request(1), true).wait().unwrap();
    assert_eq!(seq, 3000 + 4);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
}

#[test]
fn a_quiet_log_is_signed_after_checkpoint_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (k, kp, _) = key_pair(dir.path());
    let mut c = config(dir.path());
    c.signing_key = Some(kp);
    c.checkpoint_every = 1_000_000;
    c.checkpoint_interval = std::time::Duration::from_millis(50);
    let h = start(c);
    append_n(&h, 3, false);
    let path = dir.path().join("audit.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while events(&path).last().map(|e| e.kind) != Some(Kind::Checkpoint)
        && std::time::Instant::now() < deadline
    {
        thread::sleep(std::time::Duration::from_millis(10));
    }
    // While the writer still runs, the log already ends signed.
    let r = verify_dir(dir.path(), &VerifyOptions::with_key(k.verifying_key()));
    assert!(r.is_ok(), "{r}");
    // And it does not keep signing when nothing new was written.
    let n = events(&path).len();
    thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(events(&path).len(), n);
    h.shutdown().wait().unwrap();
}

#[test]
fn fire_and_forget_records_are_chained_and_a_durable_append_is_not_held_by_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.linger = std::time::Duration::from_secs(5);
    let h = start(c);
    for i in 0..100 {
        assert_eq!(
            h.record(request(i), false),
            Ok(()),
            "record {i}: {:?}",
            h.stats()
        );
    }
    // The writer lingers 5 s after a non-durable batch; a durable append must cut that short.
    let t = std::time::Instant::now();
    let seq = h.append(request(100), true).wait().unwrap();
    assert_eq!(seq, 102);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "durable append waited {:?}",
        t.elapsed()
    );
    h.shutdown().wait().unwrap();
    let ev = events(&dir.path().join("audit.log"));
    assert_eq!(ev.len(), 104);
    assert_eq!(ev[2].tid, Some(0));
    assert_eq!(ev[101].tid, Some(99));
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    assert_eq!(h.record(request(1), false), Err(AuditError::Closed));
}

#[test]
fn nowait_appends_fail_fast_on_a_full_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.queue = 4;
    c.linger = std::time::Duration::from_secs(5);
    let h = start(c);
    // The first record is taken, then the writer lingers: the queue (4 slots) fills up.
    h.record(request(0), false).unwrap();
    for _ in 0..500 {
        if h.stats().records == 3 {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(h.stats().records, 3, "genesis, start and the first record");
    for i in 1..=4 {
        assert_eq!(
            h.record(request(i), false),
            Ok(()),
            "record {i}: {:?}",
            h.stats()
        );
    }
    let t = std::time::Instant::now();
    assert_eq!(h.record(request(5), false), Err(AuditError::Overloaded));
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    let stats = h.stats();
    assert_eq!(stats.queue_full, 1);
    assert_eq!(stats.lost, 1);
    // The full queue ended the linger: the writer drains it, and the shutdown gets through.
    assert_eq!(h.shutdown().wait(), Ok(8));
    let ev = events(&dir.path().join("audit.log"));
    assert_eq!(ev.len(), 9, "genesis, start, 5 records, audit_lost, stop");
    // The dropped record is not a silent counter: the chain says so.
    let lost = ev.iter().find(|e| e.kind == Kind::AuditLost).unwrap();
    assert_eq!(lost.lost, Some(1));
}
