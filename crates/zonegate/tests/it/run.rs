//! Tests of `zonegate run` and `zonegate sim` as a user starts them: what they refuse to start
//! with (exit 2, every model error named with file:line:col and key) and what they print.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{bin, zonegate};

fn scratch(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zonegate-it-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
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
