//! The IEC 62443-3-3 assessment: the requirements table, verdicts, SL-A vs SL-T, threats.

use zonegate_toolkit::assess::{self, Status};
use zonegate_toolkit::requirements;

use super::util::{examples, load, site, with, BASE};

fn item<'a>(c: &'a assess::ConduitAssessment, id: &str) -> &'a assess::Item {
    c.items
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

#[test]
fn embedded_table_is_parsed_at_run_time() {
    let t = requirements::table().unwrap();
    assert_eq!(t.len(), 100);
    assert!(requirements::CSV.contains("NOT CONFIRMED"));
    assert!(requirements::CSV.contains("Nemo10982/IEC62443DSL"));
}

#[test]
fn enforced_gateway_meets_boundary_requirements() {
    let a = assess::assess(&site(BASE)).unwrap();
    assert_eq!(a.table_size, 100);
    let c = a.conduits.iter().find(|c| c.id == "C1").unwrap();
    assert_eq!(c.items.len(), 100);
    assert_eq!(item(c, "SR 5.2 RE1").status, Status::Met);
    assert_eq!(item(c, "SR 2.1").status, Status::Met);
    assert_eq!(item(c, "SR 3.9").status, Status::Met);
    assert_eq!(item(c, "SR 2.8").status, Status::Met);
    assert_eq!(item(c, "SR 3.5").status, Status::Provided);
    assert_eq!(item(c, "SR 7.1 RE1").status, Status::Met);
    assert_eq!(item(c, "SR 7.7").status, Status::Met);
    assert_eq!(item(c, "SR 5.1").status, Status::Met);
    // Plaintext Modbus: no device identity, no crypto integrity.
    assert_eq!(item(c, "SR 1.2").status, Status::Gap);
    assert_eq!(item(c, "SR 3.1 RE1").status, Status::Gap);
    // Target SL 2 everywhere; IAC held down by SR 1.2 (SL 2) => SL-A IAC = 1.
    assert_eq!(c.target.unwrap().0, [2; 7]);
    assert_eq!(c.achieved.0[0], 1);
    assert!(c
        .limited_by
        .iter()
        .any(|(fr, g)| *fr == "IAC" && g.contains(&"SR 1.2".to_owned())));
    // RDF: 5.1, 5.2, 5.2 RE1 met; 5.2 RE2 (island mode, SL 3) is a gap => RDF 2.
    assert_eq!(c.achieved.0[4], 2);
    // Threats come from gaps at or below the target.
    assert!(c.threats.iter().any(|t| t.threat.starts_with("Spoofing")));
    assert!(!c
        .threats
        .iter()
        .any(|t| t.requirements.contains(&"SR 3.1 RE1".to_owned())));
}

#[test]
fn monitor_mode_and_missing_rates_are_gaps() {
    let y = with(&[
        (
            "upstream: tcp://10.1.0.10:502",
            "upstream: tcp://10.1.0.10:502\n      mode: monitor",
        ),
        (
            "        holding: 0-99\n        rate: 10/s\n",
            "        holding: 0-99\n",
        ),
    ]);
    let a = assess::assess(&site(&y)).unwrap();
    let c = a.conduits.iter().find(|c| c.id == "C1").unwrap();
    assert_eq!(item(c, "SR 5.2 RE1").status, Status::Gap);
    assert_eq!(item(c, "SR 7.1 RE1").status, Status::Gap);
    assert!(item(c, "SR 7.1 RE1").evidence.contains("hmi-read"));
    assert_eq!(c.achieved.0[1], 0, "UC: SR 2.1 is a gap in monitor mode");
}

#[test]
fn plaintext_at_sl4_gives_the_classic_threats() {
    let y = with(&[(
        "connects: [Z2, Z1]\n    security_level: 2",
        "connects: [Z2, Z1]\n    security_level: 4",
    )]);
    let a = assess::assess(&site(&y)).unwrap();
    let c = a.conduits.iter().find(|c| c.id == "C1").unwrap();
    let threats: Vec<&str> = c.threats.iter().map(|t| t.threat.as_str()).collect();
    for t in ["Interception", "Tampering", "Spoofing", "Session hijacking"] {
        assert!(
            threats.iter().any(|x| x.starts_with(t)),
            "{t} missing: {threats:#?}"
        );
    }
    assert!(c
        .plaintext_interfaces
        .iter()
        .any(|p| p.contains("tcp://10.1.0.10:502")));
    let text = assess::render_text(&a);
    assert!(text.contains("THREAT: Interception") && text.contains("COUNTER: TLS (mbaps)"));
}

#[test]
fn zones_take_the_weakest_conduit() {
    let a = assess::assess(&load(&examples().join("refinery-unit.yaml"))).unwrap();
    let bpcs = a.zones.iter().find(|z| z.id == "Z1-BPCS").unwrap();
    assert_eq!(bpcs.conduits.len(), 3);
    for fr in 0..7 {
        let min = a
            .conduits
            .iter()
            .filter(|c| bpcs.conduits.contains(&c.id))
            .map(|c| c.achieved.0[fr])
            .min()
            .unwrap();
        assert_eq!(bpcs.achieved.unwrap().0[fr], min);
    }
    let sis = a.conduits.iter().find(|c| c.id == "C1-BPCS-SIS").unwrap();
    assert_eq!(sis.target.unwrap().0, [3; 7]);
    assert_eq!(item(sis, "SR 3.1 RE1").status, Status::Declared);
    assert!(assess::has_shortfall(&a));
    let md = assess::render_markdown(&a);
    assert!(md.contains("## Conduit C1-BPCS-SIS"));
    let j = serde_json::to_value(&a).unwrap();
    assert_eq!(j["conduits"].as_array().unwrap().len(), 5);
}

#[test]
fn assess_marks_sr_met_for_a_gateway_run_refuses() {
    // The bug: an rtu:// gateway (which `zonegate run` refuses) got SR 2.1 and SR 2.8 MET.
    let y = with(&[(
        "upstream: tcp://10.1.0.10:502",
        "upstream: rtu:///dev/ttyUSB0?baud=9600&parity=even",
    )]);
    // Issue 11: run serves rtu:// now, so the gateway's enforcement is credited there too;
    // the bus itself still has no sessions (a gap, not met).
    let a = assess::assess(&site(&y)).unwrap();
    let c = a.conduits.iter().find(|c| c.id == "C1").unwrap();
    assert_eq!(
        item(c, "SR 2.1").status,
        Status::Met,
        "{:?}",
        item(c, "SR 2.1")
    );
    let a = assess::assess(&site(BASE)).unwrap();
    let c = a.conduits.iter().find(|c| c.id == "C1").unwrap();
    assert_eq!(item(c, "SR 2.1").status, Status::Met);
}

#[test]
fn assess_declared_prose_raises_sl_a() {
    // The bug: zones got SL-A 4 on every FR from DECLARED prose alone.
    let mut raised = 0;
    for p in super::util::clean_examples() {
        let a = assess::assess(&load(&p)).unwrap();
        let table = requirements::table().unwrap();
        for c in &a.conduits {
            for (fr, &l) in c.achieved.0.iter().enumerate() {
                assert!(l <= c.declared.0[fr], "{}: achieved above declared", c.id);
                // Nothing at or below the achieved level of this FR is prose only.
                for (i, r) in c.items.iter().zip(&table) {
                    if r.fr == fr && r.sl <= l {
                        assert!(
                            !matches!(i.status, Status::Declared | Status::Gap),
                            "{} {}: {} {:?} counted into SL-A {l}",
                            p.display(),
                            c.id,
                            i.id,
                            i.status
                        );
                    }
                }
            }
            raised += usize::from(c.achieved != c.declared);
        }
        for z in &a.zones {
            if let (Some(ach), Some(dec)) = (z.achieved, z.declared) {
                assert!(ach.0.iter().zip(dec.0).all(|(a, d)| *a <= d), "{}", z.id);
            }
        }
    }
    assert!(
        raised > 0,
        "no example has prose-only requirements: the test proves nothing"
    );
    // The refinery's enterprise zone: all its conduits' protection is prose.
    let a = assess::assess(&load(&examples().join("refinery-unit.yaml"))).unwrap();
    let z4 = a.zones.iter().find(|z| z.id == "Z4-ENT").unwrap();
    assert!(z4.achieved.unwrap().0[0] < 4, "{z4:?}");
    assert_eq!(z4.declared.unwrap().0[0], 4, "{z4:?}");
    let t = assess::render_text(&a);
    assert!(t.contains("declared") && t.contains("prose counted; not achieved"));
}

#[test]
fn rs485_conduit_gets_tcp_threats() {
    // The bug: the RS-485 conduit got session hijacking and "Modbus/TCP Security, port 802".
    let a = assess::assess(&load(&examples().join("cleanroom-hvac.yaml"))).unwrap();
    let c = a.conduits.iter().find(|c| c.id == "C0-CTRL-FIELD").unwrap();
    let all: String = c
        .threats
        .iter()
        .map(|t| format!("{} | {}\n", t.threat, t.countermeasure))
        .collect();
    for bad in [
        "hijack",
        "port 802",
        "Modbus/TCP Security",
        "mbaps",
        "TCP session",
    ] {
        assert!(
            !all.contains(bad),
            "{bad:?} in the serial conduit's threats:\n{all}"
        );
    }
    for good in [
        "Bus access",
        "Rogue master",
        "No confidentiality on the wire",
        "Encryption in transit where the path leaves the cabinet",
        "Monitoring of the bus",
    ] {
        assert!(all.contains(good), "{good:?} missing:\n{all}");
    }
    assert_ne!(
        item(c, "SR 3.8").evidence,
        "cleartext Modbus TCP sessions can be hijacked or injected"
    );
    // A TCP conduit keeps its TCP threats.
    let tcp = a.conduits.iter().find(|c| c.id == "C1-SUP-CTRL").unwrap();
    assert!(tcp
        .threats
        .iter()
        .any(|t| t.countermeasure.contains("port 802")));
}

#[test]
fn serial_threats_include_degraded_mode_operation() {
    use zonegate_toolkit::threats::{threats_for, Transport};
    let t = threats_for("SR 7.1 RE1", Transport::Serial);
    assert!(
        t.iter().any(|(_, c)| c.contains("Degraded-mode operation")),
        "{t:?}"
    );
    // Both legs: the TCP threat and the bus threat.
    assert_eq!(threats_for("SR 4.1", Transport::Both).len(), 2);
    assert_eq!(threats_for("SR 4.1", Transport::Tcp).len(), 1);
    assert!(threats_for("SR 3.8", Transport::Serial)[0]
        .0
        .starts_with("Rogue master"));
}

/// Issue 10: a Modbus/TCP Security listener with roles is credited for SR 1.2, 2.1 and
/// 3.1/4.1, and cleartext Modbus at SL-T >= 3 is no longer a finding for that conduit.
#[test]
fn tls_listener_with_roles_meets_device_identity_roles_and_crypto() {
    let tls = "      upstream: tcp://10.1.0.10:502
      tls:
        cert: pki/gateway.pem
        key: pki/gateway.key
        client_ca: pki/ca.pem
";
    let y = with(&[
        (
            "connects: [Z2, Z1]\n    security_level: 2",
            "connects: [Z2, Z1]\n    security_level: 3",
        ),
        ("      upstream: tcp://10.1.0.10:502\n", tls),
        (
            "        from: [HMI]\n",
            "        from: [HMI]\n        roles: [Operator]\n",
        ),
    ])
    .replace("security_level_target: 2", "security_level_target: 3");
    let a = assess::assess(&site(&y)).unwrap();
    let c = a.conduits.iter().find(|c| c.id == "C1").unwrap();
    for id in ["SR 1.2", "SR 2.1"] {
        assert_eq!(item(c, id).status, Status::Met, "{id}: {:?}", item(c, id));
    }
    for id in ["SR 3.1", "SR 4.1"] {
        assert_ne!(item(c, id).status, Status::Gap, "{id}: {:?}", item(c, id));
    }
    assert!(
        c.plaintext_interfaces.is_empty(),
        "{:?}",
        c.plaintext_interfaces
    );
    let f = super::util::findings(&y);
    assert!(super::util::with_id(&f, "ZG-C013").is_empty(), "{f:#?}");

    // The same conduit without `tls:` keeps the finding (plaintext where TLS is absent).
    let plain = with(&[(
        "connects: [Z2, Z1]\n    security_level: 2",
        "connects: [Z2, Z1]\n    security_level: 3",
    )])
    .replace("security_level_target: 2", "security_level_target: 3");
    let f = super::util::findings(&plain);
    assert!(!super::util::with_id(&f, "ZG-C013").is_empty(), "{f:#?}");
}
