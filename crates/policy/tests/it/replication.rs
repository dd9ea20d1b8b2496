//! The `replications:` section (issue 13): defaults, every key, and every error at once.

use std::time::Duration;

use zonegate_policy::{load_str, ReplicaTable, ReplicationAuth, Upstream};

const SKETCH: &str = r#"
replications:
  - replication_id: R1-HIST
    connects: [Z3-OPS, Z4-DMZ]
    source: tcp://10.30.1.10:502
    blocks:
      - {unit: 1, table: holding, range: 0-99, period: 1s}
      - {unit: 1, table: coils, range: 0-15, period: 500ms}
    transmit: {to: 172.16.1.100:5450, key: diode.key, repeat: 2, refresh: 30s}
    receive: {bind: 172.16.1.100:5450, key: diode.key, serve: 172.16.1.100:502, max_age: 5s}
"#;

#[test]
fn the_issue_sketch_loads_with_its_values() {
    let m = load_str(SKETCH, "m.yaml").unwrap();
    let r = m.replication("R1-HIST").unwrap();
    assert_eq!(r.from_zone(), Some("Z3-OPS"));
    assert_eq!(r.to_zone(), Some("Z4-DMZ"));
    assert_eq!(
        r.source,
        Upstream::Tcp {
            host: "10.30.1.10".into(),
            port: 502
        }
    );
    assert_eq!(r.blocks.len(), 2);
    assert_eq!(r.blocks[1].id, 1);
    assert_eq!(r.blocks[1].table, ReplicaTable::Coils);
    assert_eq!(r.blocks[0].count(), 100);
    assert_eq!(r.blocks[1].period, Duration::from_millis(500));
    assert_eq!(r.auth, ReplicationAuth::HmacSha256);
    assert_eq!(r.transmit.repeat, 2);
    assert_eq!(r.transmit.refresh, Duration::from_secs(30));
    assert_eq!(r.receive.max_age, Some(Duration::from_secs(5)));
    assert_eq!(r.receive.serve.port(), 502);
}

#[test]
fn defaults_apply_when_keys_are_left_out() {
    let m = load_str(
        r#"
replications:
  - replication_id: R1
    connects: [A, B]
    source: tcp://127.0.0.1
    auth: ed25519
    blocks: [{unit: 1, table: input, range: 5, period: 2s}]
    transmit: {to: 127.0.0.1:5450, key: tx.key}
    receive: {bind: 127.0.0.1:5450, key: tx.pub, serve: 127.0.0.1:5502}
"#,
        "m.yaml",
    )
    .unwrap();
    let r = &m.replications[0];
    assert_eq!(r.auth, ReplicationAuth::Ed25519);
    assert_eq!(r.transmit.repeat, 2);
    assert_eq!(r.transmit.refresh, Duration::from_secs(30));
    assert_eq!(r.receive.max_age, None);
    assert_eq!(
        r.receive.max_age_for(r.blocks[0].period),
        Duration::from_secs(6)
    );
    assert_eq!(
        r.receive.max_age_for(Duration::from_millis(100)),
        Duration::from_secs(1)
    );
    assert_eq!(r.blocks[0].count(), 1);
}

#[test]
fn every_error_is_reported_at_once_with_its_key() {
    let e = load_str(
        r#"
replications:
  - replication_id: R1
    connects: [A]
    source: ftp://x
    blocks:
      - {unit: 300, table: registers, range: 0-10, period: 0s}
      - {unit: 1, table: holding, range: 0-10, period: 1s}
      - {unit: 1, table: holding, range: 5-20, period: 1s}
    transmit: {to: nowhere, key: k, repeat: 0, refrsh: 1s}
    receive: {bind: 127.0.0.1:1, key: k, serve: 127.0.0.1:2}
  - replication_id: R1
    connects: [A, B]
    source: tcp://h
    blocks: []
    transmit: {to: 127.0.0.1:1, key: k}
    receive: {bind: 127.0.0.1:1, key: k, serve: 127.0.0.1:2}
"#,
        "m.yaml",
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "replications[0].connects",
        "exactly two zones",
        "replications[0].source",
        "replications[0].blocks[0].unit",
        "replications[0].blocks[0].table",
        "replications[0].blocks[0].period",
        "replications[0].blocks[2].range",
        "overlaps the block at line 8",
        "replications[0].transmit.to",
        "replications[0].transmit.repeat",
        "did you mean `refresh`",
        "replications[1].blocks",
        "at least one block",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn duplicate_replication_ids_are_an_error() {
    let one = r#"
  - replication_id: R1
    connects: [A, B]
    source: tcp://h
    blocks: [{unit: 1, table: holding, range: 0, period: 1s}]
    transmit: {to: 127.0.0.1:1, key: k}
    receive: {bind: 127.0.0.1:1, key: k, serve: 127.0.0.1:2}"#;
    let e = load_str(&format!("replications:{one}{one}"), "m.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("replication id `R1` is already used"), "{e}");
}

#[test]
fn receive_tls_and_state_and_transmit_audit_keys_decode() {
    let m = zonegate_policy::load_str(
        "replications:\n  - replication_id: R\n    connects: [A, B]\n    source: tls://10.0.0.1:802?ca=ca.pem\n    blocks: [{unit: 1, table: holding, range: 0-9, period: 1s}]\n    transmit: {to: 127.0.0.1:1, key: k, audit: tx.log, counters: 5m}\n    receive: {bind: 127.0.0.1:1, key: k, serve: 127.0.0.1:2, state: rx.state, tls: {cert: s.pem, key: s.key, client_ca: ca.pem, min_version: \"1.3\"}}\n",
        "m.yaml",
    )
    .unwrap();
    let r = &m.replications[0];
    assert!(
        r.source_runnable().is_ok(),
        "tls:// is read by the transmit agent"
    );
    assert_eq!(
        r.transmit.audit.as_deref(),
        Some(std::path::Path::new("tx.log"))
    );
    assert_eq!(r.transmit.counters, std::time::Duration::from_secs(300));
    assert_eq!(
        r.receive.state.as_deref(),
        Some(std::path::Path::new("rx.state"))
    );
    let t = r.receive.tls.as_ref().unwrap();
    assert_eq!(t.min_version, zonegate_policy::TlsVersion::V1_3);
    // The gateway's rules for the block: TLS below 1.2 is refused.
    let e = zonegate_policy::load_str(
        "replications:\n  - replication_id: R\n    connects: [A, B]\n    source: tcp://10.0.0.1:502\n    blocks: [{unit: 1, table: holding, range: 0-9, period: 1s}]\n    transmit: {to: 127.0.0.1:1, key: k}\n    receive: {bind: 127.0.0.1:1, key: k, serve: 127.0.0.1:2, tls: {cert: s.pem, key: s.key, client_ca: ca.pem, min_version: \"1.1\"}}\n",
        "m.yaml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("R-34"), "{e}");
}

/// Issue 13: an RTU source takes its line settings from the URL and its bus options from a
/// `serial:` block with the keys of a gateway's; on a TCP source that block is an error.
#[test]
fn an_rtu_source_takes_a_serial_block_and_a_tcp_source_refuses_one() {
    let rtu = SKETCH.replace(
        "source: tcp://10.30.1.10:502\n",
        "source: rtu:///dev/ttyUSB0?baud=9600&parity=none\n    serial: {retries: 2, turnaround: 50ms, rs485: true}\n",
    );
    let m = load_str(&rtu, "m.yaml").unwrap();
    let r = &m.replications[0];
    assert!(r.source.is_bus());
    r.source_runnable().unwrap();
    let s = r.serial.as_ref().unwrap();
    assert_eq!(s.retries, 2);
    assert_eq!(s.turnaround, Duration::from_millis(50));
    assert!(s.rs485);
    let plain = load_str(SKETCH, "m.yaml").unwrap();
    assert!(plain.replications[0].serial.is_none());
    let tcp = SKETCH.replace(
        "source: tcp://10.30.1.10:502\n",
        "source: tcp://10.30.1.10:502\n    serial: {retries: 2}\n",
    );
    let e = load_str(&tcp, "m.yaml").unwrap_err().to_string();
    assert!(e.contains("rtu:// or rtu+tcp:// source only"), "{e}");
}
