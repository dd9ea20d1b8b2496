//! Tests of `zonegate run` and `zonegate sim` as a user starts them: what they refuse to start
//! with (exit 2, every model error named with file:line:col and key; exit 1, the error findings
//! of `check`), what they print, and the design gate on reload.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{bin, zonegate};

fn scratch(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zonegate-it-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_rejects_a_bad_model_naming_every_error() {
    let path = scratch(
        "bad.yaml",
        "zones: []\nconduits:\n  - conduit_id: C1\n    gateway:\n      listen: 127.0.0.1:0\n      upstream: tcp://127.0.0.1:502\n      mode: enforcing\n    rules:\n      - id: r\n        from: [10.0.0.0/8]\n        functions: [read]\n        holding: 0-70000\n",
    );
    let out = zonegate(&["run", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:7:"),
        "mode error with its line: {stderr}"
    );
    assert!(stderr.contains("conduits[0].gateway.mode"), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:12:"),
        "range error with its line: {stderr}"
    );
    assert!(stderr.contains("conduits[0].rules[0].holding"), "{stderr}");
}

#[test]
fn run_refuses_a_model_without_gateways() {
    let path = scratch("descriptive.yaml", "facility: x\nzones: []\nconduits: []\n");
    let out = zonegate(&["run", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
}

#[test]
fn run_refuses_a_missing_file() {
    let out = zonegate(&["run", "-c", "/nonexistent/model.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.yaml"));
}

#[test]
fn sim_prints_its_bound_address() {
    let mut child = Command::new(bin())
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let started = Instant::now();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(started.elapsed() < Duration::from_secs(30));
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_default();
    let addr: std::net::SocketAddr = addr
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert!(addr.ip().is_loopback() && addr.port() != 0);
}

/// A model whose only rule lets any source write holding 0-9: `check` exits 1 (ZG-C017).
/// `{AUDIT}` is the audit path, `{FROM}` the rule's source.
const ANY_SOURCE_WRITE: &str = "zones:
  - zone_id: Z2
    purdue_level: 2
    security_level_target: SL 1
    networks: [127.0.0.0/24]
    allowed_conduits: [C1]
  - zone_id: Z1
    purdue_level: 1
    security_level_target: SL 1
    networks: [127.0.1.0/24]
    allowed_conduits: [C1]
conduits:
  - conduit_id: C1
    connects: [Z2, Z1]
    security_level: SL 1
    gateway:
      listen: 127.0.0.1:0
      upstream: tcp://127.0.1.10:502
    rules:
      - id: anyone-writes
        from: [{FROM}]
        functions: [write_multiple_registers]
        holding: 0-9
        values: {min: 0, max: 10}
        rate: 1/s
audit:
  path: {AUDIT}
";

fn any_source_model(dir: &str, from: &str) -> PathBuf {
    let path = scratch(
        &format!("{dir}/model.yaml"),
        &ANY_SOURCE_WRITE
            .replace("{FROM}", from)
            .replace("{AUDIT}", "audit.jsonl"),
    );
    let _ = std::fs::remove_file(path.with_file_name("audit.jsonl"));
    path
}

/// Waits (bounded) for the child to exit; kills it and returns `None` if it keeps running.
fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Polls `path` (bounded) until a line satisfies `want`; returns that line.
fn wait_for_line(path: &Path, limit: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(l) = text.lines().find(|l| want(l)) {
                return Some(l.to_owned());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The child's stdout lines, read by a thread so that every wait is bounded.
fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next stdout line within 20 s (`None`: none came).
fn next_line(lines: &std::sync::mpsc::Receiver<String>) -> Option<String> {
    lines.recv_timeout(Duration::from_secs(20)).ok()
}

/// Ends the child (bounded). SIGKILL: std has no other signal, and every record a test reads
/// is waited for before.
fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn run_starts_a_model_that_check_rejects() {
    let model = any_source_model("any-source", "0.0.0.0/0");
    let check = zonegate(&["check", model.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1), "check rejects the model");
    let mut child = Command::new(bin())
        .args(["run", "-c", model.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = exit_within(&mut child, Duration::from_secs(20));
    assert_eq!(code, Some(1), "run must refuse what check rejects");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("error[ZG-C017]"), "{stderr}");
    assert!(stderr.contains("--accept-findings ZG-C017"), "{stderr}");
    assert!(stderr.contains("nothing started"), "{stderr}");
    // Nothing was written: no audit chain was started for a refused model.
    assert!(!model.with_file_name("audit.jsonl").exists());
}

#[test]
fn run_with_accepted_findings_starts_and_records_them_in_the_audit_log() {
    let model = any_source_model("accepted", "0.0.0.0/0");
    let dir = model.parent().unwrap().to_path_buf();
    // Started from another directory: the relative audit path still lands next to the model,
    // and `run` says where, as an absolute path.
    let mut child = Command::new(bin())
        .args([
            "run",
            "-c",
            model.to_str().unwrap(),
            "--accept-findings",
            "ZG-C017",
        ])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let first = next_line(&lines);
    let audit = dir.join("audit.jsonl");
    if first.is_none() {
        stop(child);
        panic!("run printed nothing");
    }
    let first = first.unwrap_or_default();
    assert_eq!(
        first,
        format!("audit log: {}", audit.display()),
        "run names the absolute path of its audit log first"
    );
    let line = wait_for_line(&audit, Duration::from_secs(20), |l| {
        l.contains("\"policy_load\"")
    });
    stop(child);
    let line = line.expect("a policy_load record");
    assert!(
        line.contains("accepted finding ZG-C017 (any-source-rule) on C1/anyone-writes"),
        "{line}"
    );
}

#[test]
fn run_accepts_only_check_ids_that_exist() {
    let model = any_source_model("bad-id", "0.0.0.0/0");
    let out = zonegate(&[
        "run",
        "-c",
        model.to_str().unwrap(),
        "--accept-findings",
        "ZG-C17",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a check id"));
}

#[test]
fn run_reload_applies_a_model_that_check_rejects() {
    // Starts with a sound rule (sources of zone Z2), then the file is saved with an
    // any-source rule: the reload must be refused and the old policy stay in force.
    let model = any_source_model("reload", "Z2");
    let audit = model.with_file_name("audit.jsonl");
    let mut child = Command::new(bin())
        .args(["run", "-c", model.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let listening =
        (0..3).find_map(|_| next_line(&lines).filter(|l| l.starts_with("listening on ")));
    if listening.is_none() {
        stop(child);
        panic!("run never said it was listening");
    }
    std::fs::write(
        &model,
        ANY_SOURCE_WRITE
            .replace("{FROM}", "0.0.0.0/0")
            .replace("{AUDIT}", "audit.jsonl"),
    )
    .unwrap();
    // The gateway watches the file (every second by default): saving it is a reload.
    let rejected = wait_for_line(&audit, Duration::from_secs(20), |l| {
        l.contains("\"policy_rejected\"") || l.contains("\"policy_reload\"")
    });
    stop(child);
    let rejected = rejected.expect("a policy_rejected record");
    assert!(rejected.contains("\"policy_rejected\""), "{rejected}");
    assert!(rejected.contains("ZG-C017"), "{rejected}");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("\"policy_reload\""), "{text}");
}

#[test]
fn run_and_check_word_a_non_utf8_model_differently() {
    let path = scratch("latin1.yaml", "zones: []\nfacility: \"caf\u{e9}\"\n");
    // Re-encode the file as Latin-1: one byte 0xE9 where UTF-8 has two.
    let bytes: Vec<u8> = std::fs::read_to_string(&path)
        .unwrap()
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let check = zonegate(&["check", path.to_str().unwrap()]);
    let run = zonegate(&["run", "-c", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    assert_eq!(run.status.code(), Some(2));
    let first = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(first(&check), first(&run), "one wording for one problem");
    assert!(first(&run).contains("is not UTF-8"), "{}", first(&run));
}

#[test]
fn sim_defaults_to_the_same_port_as_an_example_gateway() {
    let sim: std::net::SocketAddr = zonegate_gateway::sim::DEFAULT_LISTEN.parse().unwrap();
    let printed: std::net::SocketAddr = zonegate_gateway::demo::PRINTED_LISTEN.parse().unwrap();
    let examples = super::util::repo_root().join("examples");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [examples.clone(), examples.join("flawed")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let m = zonegate_policy::load_file(&f).unwrap();
        for c in &m.conduits {
            if let Some(g) = &c.gateway {
                for ours in [sim, printed] {
                    assert_ne!(g.listen.port(), ours.port(), "{}: {}", f.display(), c.id);
                }
            }
        }
    }
    assert_ne!(sim.port(), printed.port());
}
