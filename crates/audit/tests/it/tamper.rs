//! Every kind of tampering is caught, and the verifier names the FIRST bad record.

use std::path::{Path, PathBuf};

use zonegate_audit::chain::encode_line;
use zonegate_audit::verify::Problem;
use zonegate_audit::{verify, Event, VerifyOptions};

use super::util::*;

/// A log of 2 + 30 + 1 (+ checkpoints) records; returns (dir, path, verify options with key).
fn signed_log(checkpoint_every: u64) -> (tempfile::TempDir, PathBuf, VerifyOptions) {
    let dir = tempfile::tempdir().unwrap();
    let (k, kp, _) = key_pair(dir.path());
    let mut c = config(dir.path());
    c.signing_key = Some(kp);
    c.checkpoint_every = checkpoint_every;
    let h = start(c);
    append_n(&h, 30, true);
    h.shutdown().wait().unwrap();
    let path = dir.path().join("audit.log");
    let opts = VerifyOptions::with_key(k.verifying_key());
    assert!(verify(std::slice::from_ref(&path), &opts).unwrap().is_ok());
    (dir, path, opts)
}

fn unsigned_log() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let h = start(config(dir.path()));
    append_n(&h, 30, true);
    h.shutdown().wait().unwrap();
    let path = dir.path().join("audit.log");
    (dir, path)
}

fn first_problem(path: &Path, opts: &VerifyOptions) -> (u64, Option<u64>, Problem) {
    let r = verify(&[path.to_path_buf()], opts).unwrap();
    let p = r
        .problem
        .clone()
        .unwrap_or_else(|| panic!("tampering not detected: {r}"));
    (p.line, p.seq, p.problem)
}

/// Re-hashes lines from index `from` on, as an attacker without the key would.
fn rehash_from(lines: &mut [String], from: usize) {
    let mut prev = serde_json::from_str::<Event>(&lines[from - 1])
        .unwrap()
        .hash
        .unwrap();
    for l in lines.iter_mut().skip(from) {
        let mut e: Event = serde_json::from_str(l).unwrap();
        e.prev = Some(prev);
        e.hash = None;
        let (line, hash) = encode_line(&e).unwrap();
        *l = line.trim_end().to_owned();
        prev = hash;
    }
}

#[test]
fn edited_field_is_caught_at_that_line() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    assert!(l[9].contains("\"decision\":\"deny\"") || l[9].contains("\"decision\":\"allow\""));
    l[9] = l[9]
        .replace("\"decision\":\"deny\"", "\"decision\":\"allow\"")
        .replace("\"address\":100", "\"address\":101");
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()),
        (10, Some(9), Problem::Edited)
    );
}

#[test]
fn edited_and_rehashed_record_breaks_the_link_to_the_next() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    let mut e: Event = serde_json::from_str(&l[9]).unwrap();
    e.values = Some(vec![999]);
    e.hash = None;
    l[9] = encode_line(&e).unwrap().0.trim_end().to_owned();
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()),
        (11, Some(10), Problem::BrokenLink)
    );
}

#[test]
fn deleted_line_is_caught() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    l.remove(9);
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()),
        (10, Some(10), Problem::Gap)
    );
}

#[test]
fn deleted_first_line_is_caught() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    l.remove(0);
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()),
        (1, Some(1), Problem::NotGenesis)
    );
}

#[test]
fn inserted_copy_is_caught() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    let copy = l[4].clone();
    l.insert(7, copy);
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()),
        (8, Some(4), Problem::OutOfOrder)
    );
}

#[test]
fn inserted_forged_record_is_caught() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    // A well-formed record claiming to follow line 7 (seq 6), hashed correctly.
    let before: Event = serde_json::from_str(&l[6]).unwrap();
    let mut forged = request(99);
    forged.ts = before.ts.clone();
    forged.seq = Some(7);
    forged.prev = before.hash;
    l.insert(7, encode_line(&forged).unwrap().0.trim_end().to_owned());
    write_lines(&path, &l);
    // The forged line links fine; the original seq 7 after it does not.
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()),
        (9, Some(7), Problem::OutOfOrder)
    );
}

#[test]
fn swapped_lines_are_caught() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    l.swap(9, 10);
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()),
        (10, Some(10), Problem::Gap)
    );
}

#[test]
fn garbage_line_is_caught() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    l.insert(3, "hello".into());
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &VerifyOptions::default()).2,
        Problem::Malformed
    );
}

#[test]
fn truncated_tail_is_caught_with_the_key() {
    let (_d, path, opts) = signed_log(1000);
    let mut l = lines(&path);
    l.truncate(l.len() - 5);
    write_lines(&path, &l);
    let (line, _, problem) = first_problem(&path, &opts);
    assert_eq!(problem, Problem::MissingCheckpoint);
    assert_eq!(line, l.len() as u64);
    // Without the key the cut cannot be seen: that is what checkpoints are for.
    assert!(
        verify(std::slice::from_ref(&path), &VerifyOptions::default())
            .unwrap()
            .is_ok()
    );
    let mut lenient = opts;
    lenient.require_final_checkpoint = false;
    assert!(verify(&[path], &lenient).unwrap().is_ok());
}

#[test]
fn rewritten_chain_is_caught_by_the_signature() {
    let (_d, path, opts) = signed_log(10);
    let mut l = lines(&path);
    let mut e: Event = serde_json::from_str(&l[5]).unwrap();
    e.decision = Some(zonegate_audit::Decision::Allow);
    e.values = Some(vec![7]);
    e.hash = None;
    l[5] = encode_line(&e).unwrap().0.trim_end().to_owned();
    rehash_from(&mut l, 6);
    write_lines(&path, &l);
    // Without the key the rewrite is consistent...
    assert!(
        verify(std::slice::from_ref(&path), &VerifyOptions::default())
            .unwrap()
            .is_ok()
    );
    // ...with it, the first checkpoint after the change fails.
    let (line, _, problem) = first_problem(&path, &opts);
    assert_eq!(problem, Problem::BadSignature);
    let first_cp = l
        .iter()
        .position(|x| x.contains("\"kind\":\"checkpoint\""))
        .unwrap();
    assert_eq!(line, first_cp as u64 + 1);
}

#[test]
fn forged_signature_is_caught() {
    let (_d, path, opts) = signed_log(10);
    let mut l = lines(&path);
    let i = l
        .iter()
        .position(|x| x.contains("\"kind\":\"checkpoint\""))
        .unwrap();
    let mut e: Event = serde_json::from_str(&l[i]).unwrap();
    let sig = e.signature.clone().unwrap();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    e.signature = Some(format!("{flipped}{}", &sig[1..]));
    e.hash = None;
    l[i] = encode_line(&e).unwrap().0.trim_end().to_owned();
    rehash_from(&mut l, i + 1);
    write_lines(&path, &l);
    assert_eq!(
        first_problem(&path, &opts),
        (i as u64 + 1, e.seq, Problem::BadSignature)
    );
}

#[test]
fn other_key_is_caught() {
    let (d, path, _) = signed_log(10);
    let other = zonegate_audit::keys::generate().unwrap();
    let _ = d;
    assert_eq!(
        first_problem(&path, &VerifyOptions::with_key(other.verifying_key())).2,
        Problem::WrongKey
    );
}

#[test]
fn deleted_middle_segment_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rotate_bytes = 3000;
    let h = start(c);
    append_n(&h, 60, false);
    h.shutdown().wait().unwrap();
    let mut f = files(dir.path());
    assert!(f.len() >= 4);
    f.remove(1);
    let r = verify(&f, &VerifyOptions::default()).unwrap();
    let p = r.problem.unwrap();
    assert_eq!(p.problem, Problem::Gap);
    assert_eq!(p.line, 1);
    assert_eq!(p.file, f[1]);
}

#[test]
fn torn_line_in_a_middle_segment_is_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rotate_bytes = 3000;
    let h = start(c);
    append_n(&h, 60, false);
    h.shutdown().wait().unwrap();
    let f = files(dir.path());
    let text = std::fs::read_to_string(&f[0]).unwrap();
    std::fs::write(&f[0], &text[..text.len() - 10]).unwrap();
    let r = verify(&f, &VerifyOptions::default()).unwrap();
    assert_eq!(
        r.problem.clone().unwrap().problem,
        Problem::Malformed,
        "{r}"
    );
}

fn head_anchor(path: &Path) -> zonegate_audit::Anchor {
    let r = verify(&[path.to_path_buf()], &VerifyOptions::default()).unwrap();
    assert!(r.is_ok(), "{r}");
    format!("{}:{}", r.last_seq.unwrap(), r.head.unwrap())
        .parse()
        .unwrap()
}

#[test]
fn anchor_catches_a_cut_tail_without_a_key() {
    let (_d, path) = unsigned_log();
    let anchor = head_anchor(&path);
    let mut opts = VerifyOptions::default();
    opts.anchors = vec![anchor];
    let r = verify(std::slice::from_ref(&path), &opts).unwrap();
    assert!(r.is_ok() && r.anchors_matched == 1, "{r}");
    let mut l = lines(&path);
    l.truncate(l.len() - 2);
    write_lines(&path, &l);
    assert_eq!(first_problem(&path, &opts).2, Problem::AnchorMissing);
}

#[test]
fn anchor_catches_a_rewritten_chain_without_a_key() {
    let (_d, path) = unsigned_log();
    let anchor = head_anchor(&path);
    let mut l = lines(&path);
    let mut e: Event = serde_json::from_str(&l[5]).unwrap();
    e.values = Some(vec![1]);
    e.hash = None;
    l[5] = encode_line(&e).unwrap().0.trim_end().to_owned();
    rehash_from(&mut l, 6);
    write_lines(&path, &l);
    let mut opts = VerifyOptions::default();
    opts.anchors = vec![anchor];
    let (line, _, p) = first_problem(&path, &opts);
    assert_eq!((line, p), (l.len() as u64, Problem::AnchorMismatch));
}

#[test]
fn anchors_parse_strictly() {
    assert!("12:abc".parse::<zonegate_audit::Anchor>().is_err());
    assert!(
        "x:0000000000000000000000000000000000000000000000000000000000000000"
            .parse::<zonegate_audit::Anchor>()
            .is_err()
    );
    let a: zonegate_audit::Anchor =
        "7:ABCDEF0000000000000000000000000000000000000000000000000000000000"
            .parse()
            .unwrap();
    assert_eq!(a.seq, 7);
    assert!(a.hash.starts_with("abcdef"));
}

#[test]
fn any_single_byte_change_is_caught() {
    let (_d, path) = unsigned_log();
    let original = std::fs::read(&path).unwrap();
    // Deterministic pseudo-random positions and values (LCG), every byte but the final '\n'.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let pos = (x >> 33) as usize % (original.len() - 1);
        let mut bytes = original.clone();
        let new = match bytes[pos] {
            b'\n' => b'x',
            b => {
                let candidate = (x >> 13) as u8 | 0x20;
                if candidate == b || candidate == b'\n' {
                    b ^ 0x01
                } else {
                    candidate
                }
            }
        };
        bytes[pos] = new;
        std::fs::write(&path, &bytes).unwrap();
        let r = verify(std::slice::from_ref(&path), &VerifyOptions::default()).unwrap();
        assert!(
            !r.is_ok(),
            "byte {pos} changed to {:?} not caught",
            new as char
        );
    }
}

#[test]
fn an_endless_line_is_refused_without_reading_it_all() {
    let (_d, path) = unsigned_log();
    let mut l = lines(&path);
    l.insert(3, "x".repeat(3 << 20));
    write_lines(&path, &l);
    let (line, _, p) = first_problem(&path, &VerifyOptions::default());
    assert_eq!((line, p), (4, Problem::Malformed));
}

/// Replaces the bytes of one U+FFFD (EF BF BD) in line `idx` by a single FF byte.
fn replacement_char_to_ff(path: &Path, idx: usize) {
    let mut ls = lines(path);
    let mut e: Event = serde_json::from_str(&ls[idx]).unwrap();
    e.message = Some("operator note \u{FFFD}".into());
    e.hash = None;
    // A record as the writer would have made it, with the replacement character in it.
    let (line, _) = encode_line(&e).unwrap();
    ls[idx] = line.trim_end().to_owned();
    rehash_from(&mut ls, idx + 1);
    write_lines(path, &ls);
    assert!(verify(&[path.to_path_buf()], &VerifyOptions::default())
        .unwrap()
        .is_ok());
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(3)
        .position(|w| w == [0xEF, 0xBF, 0xBD])
        .unwrap();
    bytes.splice(at..at + 3, [0xFF]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn lossy_decoding_replacing_ef_bf_bd_with_ff_still_verified() {
    let (_d, path) = unsigned_log();
    replacement_char_to_ff(&path, 5);
    let r = verify(std::slice::from_ref(&path), &VerifyOptions::default()).unwrap();
    let p = r
        .problem
        .expect("an FF byte in place of EF BF BD must not verify");
    assert_eq!((p.line, p.problem), (6, Problem::Malformed), "{}", p);
    assert!(p.message.contains("UTF-8"), "{}", p.message);
}

#[test]
fn writer_refuses_to_continue_a_log_whose_last_line_is_not_utf8() {
    let (d, path) = unsigned_log();
    let n = lines(&path).len();
    replacement_char_to_ff(&path, n - 1);
    match zonegate_audit::AuditLog::start(config(d.path())) {
        Err(zonegate_audit::AuditError::Corrupt { line, message, .. }) => {
            assert_eq!(line, n as u64);
            assert!(message.contains("UTF-8"), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
