//! kill -9 under concurrent durable writes: the test re-runs its own binary as a child
//! (`crash_child`, enabled by an env var) that appends durable records from 8 threads and prints
//! `ACK <seq>` for every acknowledged one; the parent SIGKILLs it mid-flight, then checks that
//! the log verifies (a torn last line at most) and holds every acknowledged seq, and that a
//! restarted writer continues the chain.
//!
//! SIGKILL keeps the page cache, so this shows process-crash consistency; power loss is covered
//! by the fsync-before-ack rule (group commit), which `group_commit_*` counts.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use zonegate_audit::{Kind, VerifyOptions};

use super::util::*;

const ENV: &str = "ZONEGATE_AUDIT_CRASH_DIR";

/// The child side: does nothing unless started by `kill_9_under_concurrent_writes`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    let mut c = config(&PathBuf::from(dir));
    c.rotate_bytes = 64 * 1024; // rotate now and then, to crash around rotations too
    let h = Arc::new(start(c));
    let deadline = Instant::now() + Duration::from_secs(30);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                for i in 0..100_000u64 {
                    if Instant::now() > deadline {
                        break;
                    }
                    let seq = h.append(request(t * 1_000_000 + i), true).wait().unwrap();
                    println!("ACK {seq} {t} {i}");
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill_9_under_concurrent_writes() {
    if std::env::var_os(ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "it::crash::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = thread::spawn(move || {
            let mut acked = HashMap::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parts: Vec<&str> = line.split_whitespace().collect();
                if parts.len() == 4 && parts[0] == "ACK" {
                    let seq: u64 = parts[1].parse().unwrap();
                    let tid: u64 = parts[2].parse::<u64>().unwrap() * 1_000_000
                        + parts[3].parse::<u64>().unwrap();
                    acked.insert(seq, tid);
                }
            }
            acked
        });
        // Let it run until it has written a fair amount, then kill it mid-flight.
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = 200_000 + round * 70_000;
        while Instant::now() < deadline {
            let size: u64 = files(dir.path())
                .iter()
                .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
                .sum();
            if size > target * (round + 1) {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let acked = reader.join().unwrap();
        assert!(!acked.is_empty(), "child acknowledged nothing");

        let r = verify_dir(dir.path(), &VerifyOptions::default());
        assert!(
            r.is_ok(),
            "round {round}: log does not verify after kill -9: {r}"
        );
        let mut in_log = HashMap::new();
        for f in files(dir.path()) {
            for e in events_tolerant(&f) {
                if e.kind == Kind::Request {
                    in_log.insert(e.seq.unwrap(), (e.tid, e.src.clone()));
                }
            }
        }
        let missing: BTreeSet<u64> = acked
            .keys()
            .filter(|s| !in_log.contains_key(s))
            .copied()
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but not in the log: {missing:?}"
        );
        for (seq, id) in &acked {
            let expected = request(*id);
            assert_eq!(in_log[seq], (expected.tid, expected.src), "seq {seq}");
        }
        eprintln!(
            "round {round}: {} acknowledged records all present; torn: {:?}",
            acked.len(),
            r.torn
        );
    }
    // A restarted writer continues the chain (cutting any torn line).
    let h = start(config(dir.path()));
    append_n(&h, 3, true);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok() && r.torn.is_none(), "{r}");
}

/// Records of a file, skipping an unterminated last line.
fn events_tolerant(p: &std::path::Path) -> Vec<zonegate_audit::Event> {
    let text = std::fs::read_to_string(p).unwrap();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l.trim_end()).unwrap())
        .collect()
}
