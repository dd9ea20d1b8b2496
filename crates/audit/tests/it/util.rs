//! Helpers shared by the tests: temp logs, writers, key pairs, line editing.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use zonegate_audit::{
    keys, verify, AuditConfig, AuditHandle, AuditLog, Decision, Event, Kind, Report, SyncMode,
    VerifyOptions,
};

/// A config writing to `dir/audit.log` with a fixed gateway name.
pub(crate) fn config(dir: &Path) -> AuditConfig {
    let mut c = AuditConfig::new(dir.join("audit.log"));
    c.gateway = "test-gw".into();
    c.policy_hash = Some(zonegate_audit::sha256_hex(b"policy"));
    c.sync = SyncMode::Writes;
    c.min_free_bytes = 0; // exact record counts must not depend on the disk
    c
}

/// A request event like the gateway makes.
pub(crate) fn request(i: u64) -> Event {
    Event {
        conduit: Some("C1-OPS-CTRL".into()),
        src: Some(format!("10.0.0.{}:5020", i % 250).into()),
        unit: Some(1),
        tid: Some((i % 65536) as u16),
        fc: Some(if i % 2 == 0 { 3 } else { 16 }),
        function: Some(
            if i % 2 == 0 {
                "read_holding_registers"
            } else {
                "write_multiple_registers"
            }
            .into(),
        ),
        access: Some(if i % 2 == 0 { "read" } else { "write" }.into()),
        table: Some("holding".into()),
        address: Some(100),
        quantity: Some(2),
        decision: Some(if i % 3 == 0 {
            Decision::Deny
        } else {
            Decision::Allow
        }),
        reason: Some("allowed".into()),
        rule: Some("ews-setpoints".into()),
        mode: Some("enforce".into()),
        ..Event::new(Kind::Request)
    }
    .with_values([200, 201])
}

/// Appends `n` requests and waits for each.
pub(crate) fn append_n(h: &AuditHandle, n: u64, durable: bool) -> Vec<u64> {
    (0..n)
        .map(|i| h.append(request(i), durable).wait().unwrap())
        .collect()
}

/// Starts a writer.
pub(crate) fn start(c: AuditConfig) -> AuditHandle {
    AuditLog::start(c).unwrap()
}

/// Every file of the log at `dir/audit.log`, oldest first.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    zonegate_audit::storage::log_files(&dir.join("audit.log")).unwrap()
}

/// Verifies every file of the log in `dir`.
pub(crate) fn verify_dir(dir: &Path, opts: &VerifyOptions) -> Report {
    verify(&files(dir), opts).unwrap()
}

/// Lines of a file (without newlines).
pub(crate) fn lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Writes lines back (each with a newline).
pub(crate) fn write_lines(p: &Path, lines: &[String]) {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    fs::write(p, s).unwrap();
}

/// A key pair written under `dir` (`dir/k.key`, `dir/k.pub`).
pub(crate) fn key_pair(dir: &Path) -> (SigningKey, PathBuf, PathBuf) {
    let k = keys::generate().unwrap();
    let (kp, pp) = keys::write_key_pair(&dir.join("k"), &k).unwrap();
    (k, kp, pp)
}

/// Parsed records of a file.
pub(crate) fn events(p: &Path) -> Vec<Event> {
    lines(p)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
