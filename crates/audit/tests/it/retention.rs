//! Retention (`max_segments`, `max_bytes`): the oldest segments go, each vouched for by a
//! chained `segment_removed` record, so the kept files verify as a chain that starts mid-way,
//! and deleting any other file is still caught.

use std::fs;

use zonegate_audit::verify::Problem;
use zonegate_audit::{Kind, VerifyOptions};

use super::util::*;

fn retained_log(max_segments: usize, max_bytes: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rotate_bytes = 3000;
    c.max_segments = max_segments;
    c.max_bytes = max_bytes;
    let h = start(c);
    append_n(&h, 120, true);
    h.shutdown().wait().unwrap();
    dir
}

#[test]
fn max_segments_keeps_the_newest_and_the_rest_still_verifies() {
    let dir = retained_log(2, 0);
    let segs = zonegate_audit::storage::segments(&dir.path().join("audit.log")).unwrap();
    assert_eq!(segs.len(), 2, "{segs:?}");
    // The oldest kept segment is not the first ever made.
    assert!(segs[0].0 > 1, "{segs:?}");
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    assert!(r.is_ok(), "{r}");
    assert!(r.first_seq.unwrap() > 0);
    let note = r.retention.clone().unwrap();
    assert!(note.contains("removed by retention"), "{note}");
    assert!(r.to_string().contains("note: the log starts at seq"), "{r}");
    let removed: Vec<_> = files(dir.path())
        .iter()
        .flat_map(|f| events(f))
        .filter(|e| e.kind == Kind::SegmentRemoved)
        .collect();
    assert!(!removed.is_empty());
    for e in &removed {
        assert!(
            e.file.as_deref().unwrap().starts_with("audit.log.0"),
            "{e:?}"
        );
        assert!(e.last_seq.is_some() && e.last_hash.as_deref().map(str::len) == Some(64));
    }
}

#[test]
fn max_bytes_bounds_the_log_on_disk() {
    let dir = retained_log(0, 10_000);
    let total: u64 = files(dir.path())
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    // Checked after each rotation: at most the limit plus the active file since.
    assert!(total <= 10_000 + 3000 + 1000, "{total}");
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
}

#[test]
fn deleting_the_oldest_kept_segment_is_not_vouched_for() {
    let dir = retained_log(2, 0);
    let segs = zonegate_audit::storage::segments(&dir.path().join("audit.log")).unwrap();
    fs::remove_file(&segs[0].1).unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    let p = r
        .problem
        .expect("a removed segment without a segment_removed record");
    assert_eq!(p.problem, Problem::NotGenesis, "{p}");
    assert_eq!(p.file, segs[1].1);
}

#[test]
fn deleting_a_segment_in_the_middle_is_still_a_gap() {
    let dir = retained_log(3, 0);
    let segs = zonegate_audit::storage::segments(&dir.path().join("audit.log")).unwrap();
    assert_eq!(segs.len(), 3);
    fs::remove_file(&segs[1].1).unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::default());
    let p = r.problem.expect("a segment deleted in the middle");
    assert_eq!(p.problem, Problem::Gap, "{p}");
}

#[test]
fn a_signed_log_with_retention_verifies_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (k, kp, _) = key_pair(dir.path());
    let mut c = config(dir.path());
    c.rotate_bytes = 3000;
    c.max_segments = 2;
    c.signing_key = Some(kp);
    c.checkpoint_every = 10;
    let h = start(c);
    append_n(&h, 120, true);
    h.shutdown().wait().unwrap();
    let r = verify_dir(dir.path(), &VerifyOptions::with_key(k.verifying_key()));
    assert!(r.is_ok() && r.signatures_verified > 0, "{r}");
    assert!(r.retention.is_some(), "{r}");
}
