//! One-way replications in `check` and `compile` (issue 13).

use zonegate_toolkit::compile::{self, Target};

use super::compile::external_check;
use super::util::{findings, site};

const BASE: &str = r#"
zones:
  - zone_id: Z3-OPS
    networks: [10.30.0.0/16]
    security_level_target: 2
    purdue_level: 3
  - zone_id: Z4-DMZ
    networks: [172.16.1.0/24]
    security_level_target: 2
    purdue_level: 3.5
conduits: []
replications:
  - replication_id: R1-HIST
    connects: [Z3-OPS, Z4-DMZ]
    source: tcp://10.30.1.10:502
    auth: ed25519
    blocks:
      - {unit: 1, table: holding, range: 0-99, period: 1s}
    transmit: {to: 172.16.1.100:5450, key: diode.key}
    receive: {bind: 172.16.1.100:5450, key: diode.pub, serve: 172.16.1.100:502, max_age: 5s}
"#;

fn ids(yaml: &str) -> Vec<&'static str> {
    findings(yaml).iter().map(|f| f.id).collect()
}

#[test]
fn a_clean_replication_has_no_replication_findings() {
    let ids = ids(BASE);
    assert!(
        !ids.iter().any(
            |i| ["ZG-C036", "ZG-C037", "ZG-C038", "ZG-C039", "ZG-C040", "ZG-C041"].contains(i)
        ),
        "{ids:?}"
    );
}

#[test]
fn a_rule_from_the_receiving_zone_back_across_is_an_error() {
    let yaml = BASE.replace(
        "conduits: []",
        r#"conduits:
  - conduit_id: C-BACK
    connects: [Z4-DMZ, Z3-OPS]
    gateway: {listen: 10.30.0.1:5020, upstream: tcp://10.30.1.10:502}
    rules:
      - {id: dmz-reads-plc, from: [Z4-DMZ], functions: [read], holding: 0-9}
  - conduit_id: C-PROSE
    connects: [Z3-OPS, Z4-DMZ]
    protocols_allowed:
      - {protocol: modbus-tcp, port: 502, direction: "Z4-DMZ -> Z3-OPS"}"#,
    );
    let f = findings(&yaml);
    let back: Vec<_> = f.iter().filter(|f| f.id == "ZG-C036").collect();
    assert_eq!(back.len(), 2, "{f:#?}");
    assert!(back.iter().any(|f| f.element == "C-BACK/dmz-reads-plc"));
    assert!(back.iter().any(|f| f.element == "C-PROSE"));
    // The forward direction declared in prose is fine.
    let fwd = BASE.replace(
        "conduits: []",
        r#"conduits:
  - conduit_id: C-PROSE
    connects: [Z3-OPS, Z4-DMZ]
    protocols_allowed:
      - {protocol: udp, port: 5450, direction: "Z3-OPS -> Z4-DMZ"}"#,
    );
    assert!(!ids(&fwd).contains(&"ZG-C036"));
}

#[test]
fn a_replication_the_other_way_is_an_error() {
    let yaml = format!(
        "{BASE}  - replication_id: R2-BACK\n    connects: [Z4-DMZ, Z3-OPS]\n    source: tcp://172.16.1.5:502\n    auth: ed25519\n    blocks: [{{unit: 1, table: holding, range: 0, period: 1s}}]\n    transmit: {{to: 10.30.0.9:5451, key: k}}\n    receive: {{bind: 10.30.0.9:5451, key: k, serve: 10.30.0.9:502}}\n"
    );
    let f = findings(&yaml);
    assert!(
        f.iter()
            .any(|f| f.id == "ZG-C036" && f.element == "R2-BACK"),
        "{f:#?}"
    );
}

#[test]
fn endpoints_max_age_addresses_and_hmac_are_checked() {
    let yaml = BASE
        .replace("connects: [Z3-OPS, Z4-DMZ]", "connects: [Z3-OPS, Z9-NOPE]")
        .replace("max_age: 5s", "max_age: 500ms")
        .replace("to: 172.16.1.100:5450", "to: 172.16.1.100:5451")
        .replace("    auth: ed25519\n", "");
    let ids = ids(&yaml);
    for id in ["ZG-C037", "ZG-C038", "ZG-C039", "ZG-C040"] {
        assert!(ids.contains(&id), "{id} missing in {ids:?}");
    }
}

#[test]
fn compile_lets_only_the_udp_stream_through_one_way() {
    let text = compile::render(&site(BASE), Target::Nftables);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let accept = lines
        .iter()
        .position(|l| {
            l.starts_with("ip saddr 10.30.0.0/16 ip daddr 172.16.1.100 udp dport 5450 accept")
        })
        .unwrap_or_else(|| panic!("no UDP accept:\n{text}"));
    let reverse = lines
        .iter()
        .position(|l| l.starts_with("ip saddr 172.16.1.100 ip daddr 10.30.0.0/16 log prefix"))
        .unwrap_or_else(|| panic!("no reverse drop:\n{text}"));
    let established = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("ct state established,related accept"))
        .map(|(i, _)| i)
        .nth(1)
        .unwrap();
    // The reverse drop comes before conntrack can call a reply "established".
    assert!(reverse < established && established < accept, "{text}");
    // Nothing opens the other way.
    assert!(
        !text.contains("ip saddr 172.16.1.0/24 ip daddr 10.30"),
        "{text}"
    );
    if let Some((ok, err)) = external_check("nft", &["-c", "-f"], &text, "replication-nft") {
        assert!(ok, "nft -c -f rejected:\n{err}\n{text}");
    }
}

#[test]
fn iptables_output_has_the_reverse_drop_before_conntrack() {
    let text = compile::render(&site(BASE), Target::Iptables);
    let lines: Vec<&str> = text.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
    };
    let drop = pos("-A FORWARD -s 172.16.1.100/32 -d 10.30.0.0/16");
    let accept = pos("-A FORWARD -s 10.30.0.0/16 -d 172.16.1.100/32 -p udp -m udp --dport 5450");
    let established = pos("-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT");
    assert!(drop < established && accept < established, "{text}");
    if let Some((ok, err)) =
        external_check("iptables-restore", &["--test"], &text, "replication-ipt")
    {
        assert!(ok, "iptables-restore --test rejected:\n{err}\n{text}");
    }
}

/// Regression (issue 13): ZG-C041 asked the gateway whether it could run the source, so
/// `tls://` was reported refused while the transmit agent read it. It follows the transmit
/// agent (`Replication::source_runnable`), which now reads every upstream kind: `tls://`,
/// `rtu://` (serial line) and `rtu+tcp://` (converter) raise no ZG-C041.
#[test]
fn zg_c041_follows_the_transmit_agent_tls_rtu_and_rtu_tcp_are_read() {
    for source in [
        "tls://10.30.1.10:802?ca=ca.pem&cert=tx.pem&key=tx.key",
        "rtu:///dev/ttyUSB0?baud=9600&parity=none",
        "rtu+tcp://10.30.1.20:4001",
    ] {
        let yaml = BASE.replace("tcp://10.30.1.10:502", source);
        assert!(
            !ids(&yaml).contains(&"ZG-C041"),
            "{source}: {:?}",
            ids(&yaml)
        );
    }
}

#[test]
fn the_report_body_lists_each_replication_and_what_is_enforced_one_way() {
    use zonegate_toolkit::report;
    let yaml = BASE.replace(
        "max_age: 5s}",
        "max_age: 5s, tls: {cert: r.pem, key: r.key, client_ca: ca.pem}}",
    );
    let s = site(&yaml);
    let probe = zonegate_toolkit::probe::ProbeRun {
        conduit: "R1-HIST".into(),
        gateway: "172.16.1.100:502".into(),
        source: "this host".into(),
        started: "2026-12-02T19:00:00Z".into(),
        tls: None,
        tests: Vec::new(),
        passed: 5,
        failed: 0,
        notes: vec!["replication latency (source write to replica visible): 12.5 ms".into()],
    };
    let r = report::build(&s, vec![probe]);
    assert_eq!(r.replications.len(), 1);
    let row = &r.replications[0];
    assert_eq!((row.from.as_str(), row.to.as_str()), ("Z3-OPS", "Z4-DMZ"));
    assert_eq!(row.repeat, 2);
    assert_eq!(row.refresh, "30 s");
    assert!(
        row.blocks[0].contains("unit 1 holding 0-99 every 1 s, max_age 5 s"),
        "{row:?}"
    );
    assert!(row.receive.contains("mutual TLS"), "{}", row.receive);
    assert!(
        row.one_way
            .iter()
            .any(|o| o.contains("never reads its socket")),
        "{row:?}"
    );
    assert!(
        row.one_way
            .iter()
            .any(|o| o.contains("drop everything from 172.16.1.100")),
        "{row:?}"
    );
    assert!(
        row.probes[0].contains("5 passed, 0 failed; replication latency"),
        "{row:?}"
    );
    let text = report::render_text(&r);
    for want in [
        "ONE-WAY REPLICATIONS (DATA DIODE)",
        "Replication R1-HIST",
        "Z3-OPS -> Z4-DMZ only",
        "ed25519",
        "UDP to 172.16.1.100:5450, repeat 2, refresh 30 s",
        "Probe:            probe from this host",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let md = report::render_markdown(&r);
    assert!(md.contains("## One-way replications (data diode)"), "{md}");
    let html = report::render_html(&r, &s);
    assert!(html.contains("<h2>One-way replications (data diode)</h2>"));
    // Issue 13: an rtu:// source was "NOT RUNNABLE"; the transmit agent reads it now, and the
    // report says what the bus is (and that the firewall says nothing about the line).
    let rtu = report::build(
        &site(&BASE.replace("tcp://10.30.1.10:502", "rtu:///dev/ttyUSB0")),
        vec![],
    );
    let one_way = &rtu.replications[0].one_way;
    assert!(one_way[0].starts_with("transmit agent"), "{one_way:?}");
    assert!(
        one_way
            .iter()
            .any(|l| l.contains("RTU bus") && l.contains("not filtered")),
        "{one_way:?}"
    );
}
