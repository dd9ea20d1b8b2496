//! `zonegate analyze`, `learn`: counts against tshark on the shared real captures, silence on
//! the normal ones, the crafted Quickdraw data firing its detectors, learn -> check -> replay
//! with no would-deny, EVE lines, baselines and exit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::util::{repo_root, zonegate};

fn capture(name: &str) -> PathBuf {
    repo_root().join("../shared/captures").join(name)
}

fn json_of(args: &[&str]) -> (i32, Value) {
    let out = zonegate(args);
    let code = out.status.code().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

fn analyze(name: &str) -> (i32, Value) {
    let path = capture(name);
    json_of(&["analyze", "--format", "json", path.to_str().unwrap()])
}

fn by_function(v: &Value) -> BTreeMap<String, u64> {
    v["requests_by_function"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

/// tshark's requests by function code, when tshark is installed (`None` otherwise).
fn tshark_requests(name: &str) -> Option<BTreeMap<String, u64>> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(capture(name))
        .args([
            "-d",
            "tcp.port==502,mbtcp",
            "-Y",
            "tcp.dstport==502 && modbus",
            "-T",
            "fields",
            "-e",
            "modbus.func_code",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        for fc in line.split(',').filter(|s| !s.is_empty()) {
            *counts.entry(fc.to_string()).or_default() += 1;
        }
    }
    Some(counts)
}

fn pinned(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn request_counts_match_tshark_on_the_shared_captures() {
    // Pinned from the captures README (tshark 4.0); compared live too where tshark is here.
    let cases = [
        (
            "ModbusTCP.pcap",
            pinned(&[
                ("1", 1519),
                ("2", 1574),
                ("4", 2768),
                ("15", 2115),
                ("16", 14),
            ]),
        ),
        ("modbus_test.pcap", pinned(&[("4", 1079), ("6", 63)])),
        (
            "modbus_test_data_part1.pcap",
            pinned(&[
                ("1", 2),
                ("3", 1),
                ("5", 2),
                ("6", 1),
                ("8", 8),
                ("17", 2),
                ("43", 2),
            ]),
        ),
    ];
    for (name, expected) in cases {
        let (_, v) = analyze(name);
        assert_eq!(by_function(&v), expected, "{name}");
        if let Some(live) = tshark_requests(name) {
            assert_eq!(by_function(&v), live, "{name} against tshark");
        }
    }
    let (_, v) = analyze("ModbusTCP.pcap");
    assert_eq!(v["frames"], 15387);
    assert_eq!(v["requests"], 7990);
    // The README's 8 retransmitted segments, counted once.
    assert_eq!(v["tcp"]["retransmitted"], 8);
}

#[test]
fn normal_captures_are_silent_and_exit_zero() {
    for name in ["ModbusTCP.pcap", "modbus_test.pcap"] {
        let (code, v) = analyze(name);
        assert_eq!(
            v["alerts"],
            Value::Array(vec![]),
            "{name}: {:#}",
            v["alerts"]
        );
        assert_eq!(code, 0, "{name}");
    }
    let (_, v) = analyze("ModbusTCP.pcap");
    let assets = v["assets"].as_array().unwrap();
    let masters: Vec<&Value> = assets.iter().filter(|a| a["role"] == "master").collect();
    assert_eq!(masters.len(), 1);
    assert_eq!(masters[0]["address"], "141.81.0.10");
    assert_eq!(assets.iter().filter(|a| a["role"] == "slave").count(), 13);
}

#[test]
fn the_quickdraw_test_data_fires_its_detectors() {
    let (code, v) = analyze("modbus_test_data_part1.pcap");
    assert_eq!(code, 1);
    let kinds = v["alerts_by_kind"].as_object().unwrap();
    assert_eq!(kinds["diagnostics_listen_only"], 3);
    for k in [
        "diagnostics_restart",
        "diagnostics_clear_counters",
        "report_server_id",
        "unsolicited_response",
        "malformed_frame",
        "non_modbus_traffic",
    ] {
        assert!(kinds.contains_key(k), "{k} missing: {kinds:?}");
    }
    for a in v["alerts"].as_array().unwrap() {
        for field in ["kind", "ts", "src", "dst", "unit", "fc", "message"] {
            assert!(a.get(field).is_some(), "{field} missing in {a}");
        }
    }
    let (_, v) = analyze("modbus-eit.pcap");
    assert_eq!(v["alerts_by_kind"]["device_identification"], 2);
    assert_eq!(v["exceptions_by_code"]["4"], 1);
}

#[test]
fn modbus_eit_fc43_answer_is_not_refused_for_conformity_level_0() {
    // Regression (issue 12.5): the codec refused this FC 43/14 answer for its conformity
    // level 0x00, which only describes the device and is now kept as sent. The answer
    // (`2b 0e 01 00 4d b7 00 00 00 00 00`) still breaks two rules that are not tolerable:
    // "more follows" is 0x4D (only 0x00 / 0xFF exist) and 4 bytes follow the 0 objects it
    // announces. That is what the alert must say.
    let (_, v) = analyze("modbus-eit.pcap");
    let mismatched: Vec<&Value> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "mismatched_response")
        .collect();
    assert_eq!(mismatched.len(), 1, "{mismatched:?}");
    let message = mismatched[0]["message"].as_str().unwrap();
    assert!(!message.contains("conformity"), "{message}");
    assert!(message.contains("more follows"), "{message}");
}

#[test]
fn the_fuzz_trace_is_reported_not_a_crash() {
    let (code, v) = analyze("fuzz-72.pcap");
    assert_eq!(code, 1);
    assert!(!v["alerts_by_kind"].as_object().unwrap().is_empty());
}

#[test]
fn learn_then_replay_gives_no_would_deny_on_the_same_traffic() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ModbusTCP.pcap", "modbus_test.pcap"] {
        let model = dir.path().join(format!("{name}.yaml"));
        let cap = capture(name);
        let out = zonegate(&[
            "learn",
            cap.to_str().unwrap(),
            "-o",
            model.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let check = zonegate(&["check", model.to_str().unwrap()]);
        assert_eq!(
            check.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let (_, v) = json_of(&[
            "analyze",
            "--format",
            "json",
            "--model",
            model.to_str().unwrap(),
            cap.to_str().unwrap(),
        ]);
        assert_eq!(v["policy"]["would_deny"], 0, "{name}: {:#}", v["policy"]);
        assert_eq!(v["policy"]["allowed"], v["requests"]);
    }
    // The model of one plant denies the other plant's traffic, with reasons and examples.
    let other = dir.path().join("ModbusTCP.pcap.yaml");
    let cap = capture("modbus_test.pcap");
    let (_, v) = json_of(&[
        "analyze",
        "--format",
        "json",
        "--model",
        other.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(v["policy"]["would_deny"], 1142);
    assert_eq!(v["policy"]["by_reason"]["no_conduit"], 1142);
    assert!(!v["policy"]["examples"].as_array().unwrap().is_empty());
}

#[test]
fn min_writes_keeps_rare_writes_out_of_the_learned_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.yaml");
    let cap = capture("modbus_test.pcap");
    // 192.168.0.156 wrote FC 6 63 times: with --min-writes 64 the write is left out.
    let out = zonegate(&[
        "learn",
        cap.to_str().unwrap(),
        "--min-writes",
        "64",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&model).unwrap();
    assert!(
        text.contains("left out") || text.contains("not learned"),
        "{text}"
    );
    let (_, v) = json_of(&[
        "analyze",
        "--format",
        "json",
        "--model",
        model.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(v["policy"]["would_deny"], 63);
}

#[test]
fn a_baseline_round_trips_and_flags_another_plant() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b.json");
    let cap = capture("modbus_test.pcap");
    let out = zonegate(&[
        "analyze",
        cap.to_str().unwrap(),
        "--write-baseline",
        b.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let (code, v) = json_of(&[
        "analyze",
        "--format",
        "json",
        "--baseline",
        b.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!((code, v["alerts"].clone()), (0, Value::Array(vec![])));
    let other = capture("ModbusTCP.pcap");
    let (code, v) = json_of(&[
        "analyze",
        "--format",
        "json",
        "--baseline",
        b.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    for k in ["new_master", "new_slave", "new_function"] {
        assert!(v["alerts_by_kind"].get(k).is_some(), "{k}");
    }
}

#[test]
fn eve_writes_one_line_per_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let cap = capture("modbus_test.pcap");
    let (_, v) = json_of(&[
        "analyze",
        "--format",
        "json",
        "--eve",
        eve.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&eve).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every request (answered or not) is one transaction.
    assert_eq!(lines.len() as u64, v["requests"].as_u64().unwrap());
    let first = &lines[0];
    assert_eq!(first["event_type"], "modbus");
    assert_eq!(first["dest_port"], 502);
    assert!(first["modbus"]["request"]["function_raw"].is_u64());
}

#[test]
fn exit_two_on_input_that_is_not_a_capture_and_alert_on_a_truncated_one() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"definitely not a capture").unwrap();
    let out = zonegate(&["analyze", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let missing = zonegate(&["analyze", "/nonexistent/x.pcap"]);
    assert_eq!(missing.status.code(), Some(2));
    let bytes = std::fs::read(capture("modbus_test.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, v) = json_of(&["analyze", "--format", "json", cut.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(v["alerts_by_kind"]["truncated_capture"], 1);
}

#[test]
fn list_detectors_prints_every_kind_the_issue_names() {
    let out = zonegate(&["analyze", "--list-detectors"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for k in [
        "new_master",
        "new_slave",
        "new_function",
        "diagnostics_listen_only",
        "diagnostics_restart",
        "diagnostics_clear_counters",
        "device_identification",
        "report_server_id",
        "function_code_scan",
        "address_scan",
        "write_out_of_baseline",
        "value_out_of_baseline",
        "poll_rate_change",
        "request_flood",
        "unsolicited_response",
        "mismatched_response",
        "malformed_frame",
        "non_modbus_traffic",
        "function_code_scan_count: 3",
        "address_scan_count: 5",
    ] {
        assert!(text.contains(k), "{k} missing from:\n{text}");
    }
}

#[test]
fn port_adds_a_modbus_port() {
    // The same capture analysed with only a port nobody uses adds nothing; 502 stays on.
    let cap = capture("modbus_test.pcap");
    let (_, v) = json_of(&[
        "analyze",
        "--format",
        "json",
        "--port",
        "1502",
        cap.to_str().unwrap(),
    ]);
    assert_eq!(v["requests"], 1142);
}

#[test]
fn inventory_lists_assets_for_a_model() {
    let cap = capture("modbus_test.pcap");
    let out = zonegate(&["inventory", cap.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "  - id: S-192-168-0-20\n    address: \"192.168.0.20\"\n    unit_ids: [1, 2, 3, 7]"
        ),
        "{text}"
    );
    assert_eq!(text.matches("  - id: M-").count(), 5, "{text}");
    let out = zonegate(&["inventory", "--format", "json", cap.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);
}
