//! Loader tests: the docs/DESIGN.md example, a descriptive IEC 62443-3-2 document, and a file with
//! many mistakes that must all be reported with their lines and key paths.

use std::path::Path;
use std::time::Duration;

use zonegate_policy::*;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/data")
        .join(name)
}

#[test]
fn design_example_loads() {
    let m = load_file(&data("design-complete.yaml")).unwrap();
    assert_eq!(m.facility.as_deref(), Some("Building 4 cleanroom HVAC"));
    assert_eq!(m.zones.len(), 2);
    let z1 = &m.zones[0];
    assert_eq!(z1.id, "Z1-CTRL");
    assert_eq!(z1.line, 4);
    assert_eq!(z1.purdue_level.unwrap().to_string(), "1");
    assert_eq!(z1.security_level_target, Some(SecurityLevel::Uniform(2)));
    assert_eq!(z1.networks[0].to_string(), "10.20.0.0/16");
    assert!(z1.assets[0].descriptive);
    assert_eq!(z1.assets[1].id.as_deref(), Some("AHU-01"));
    assert_eq!(z1.assets[1].kind, Some(AssetKind::Plc));
    assert_eq!(z1.assets[1].unit_ids, vec![1]);
    let c = &m.conduits[0];
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.listen, "127.0.0.1:5020".parse().unwrap());
    assert_eq!(
        g.upstream,
        Upstream::Tcp {
            host: "10.20.1.10".into(),
            port: 502
        }
    );
    assert_eq!(g.mode, Mode::Enforce);
    assert_eq!(g.deny, DenyAction::Exception);
    assert_eq!(g.idle_timeout, Duration::from_secs(30));
    assert_eq!(g.max_in_flight, GatewaySettings::DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(c.rules.len(), 2);
    let r = &c.rules[1];
    assert_eq!(r.id, "ews-setpoints");
    assert_eq!(r.holding.to_string(), "100-109");
    assert_eq!(r.values, Some(ValueBounds { min: 180, max: 240 }));
    assert_eq!(r.rate.unwrap().to_string(), "2/s");
    assert!(matches!(r.from[0].target, SourceTarget::Asset { .. }));
    assert_eq!(r.line_of("holding"), r.line + 3);
    let a = m.audit.as_ref().unwrap();
    assert_eq!(a.sync, AuditSync::Writes);
    assert_eq!(a.on_failure, AuditOnFailure::BlockWrites);
    assert_eq!(m.policy_hash().len(), 64);
}

#[test]
fn design_excerpt_names_its_missing_zone_and_asset() {
    // docs/DESIGN.md's snippet shows one zone; its rules name Z2-OPS and EWS-01, defined elsewhere.
    let e = load_file(&data("design.yaml")).unwrap_err();
    let msgs: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(msgs[0].contains("rules[0].from[0]") && msgs[0].contains("Z2-OPS"));
    assert!(msgs[1].contains("rules[1].from[0]") && msgs[1].contains("EWS-01"));
}

#[test]
fn descriptive_document_loads() {
    let m = load_file(&data("descriptive.yaml")).unwrap();
    // It compiles to a policy that enforces nothing: no gateway, no rules.
    let p = Policy::compile(&m).unwrap();
    assert!(p
        .conduits()
        .iter()
        .all(|c| c.gateway.is_none() && c.rules().is_empty()));
    assert_eq!(m.zone("Z0-SIS").unwrap().access_points.len(), 1);
    assert_eq!(m.zones.len(), 5);
    assert_eq!(m.assessment_date.as_deref(), Some("2025-03-14"));
    let sis = m.zone("Z0-SIS").unwrap();
    assert_eq!(sis.allowed_conduits.as_deref(), Some(&[][..]));
    assert_eq!(sis.security_level_target.unwrap().get(Fr::Dc), Some(2));
    assert_eq!(sis.security_level_target.unwrap().max(), 3);
    assert_eq!(
        m.zone("Z1-BPCS").unwrap().purdue_level.unwrap().to_string(),
        "1-2"
    );
    assert!(m.zone("Z3-DMZ").unwrap().purdue_level.unwrap().is_dmz());
    assert_eq!(m.zone("Z2-SCADA").unwrap().assets.len(), 3);
    let c1 = m.conduit("C1-SCADA").unwrap();
    assert!(c1.gateway.is_none() && c1.rules.is_empty());
    assert_eq!(
        c1.protocols_allowed[0].direction.as_deref(),
        Some("Z2 -> Z1 (read only, FC 3/4 only; setpoint writes from EWS only)")
    );
    assert_eq!(c1.protocols_allowed[1].ports, vec![20000]);
    assert_eq!(
        m.conduit("C3-ENT").unwrap().security_level,
        Some(SecurityLevel::Uniform(1))
    );
}

const MISTAKES: &str = r#"facility: Test plant
zones:
  - zone_id: Z1
    purdue_level: 7
    networks: [10.20.1.0/16]
    assets:
      - id: PLC-1
        address: 10.20.1.300
        kind: plcc
  - zone_id: Z2
    colour: blue
conduits:
  - conduit_id: C1
    connects: [Z1, Z2]
    gateway:
      listen: localhost
      upstream: udp://10.20.1.10:502
      idle_timeout: 30
    rules:
      - id: r1
        from: [Z2, NOPE-ZONE]
        functions: [read, read_everything]
        holding: "0-70000"
      - id: r1
        from: [Z1]
        functions: [write]
        holdng: 0-10
        values: {min: 300, max: 200}
        rate: 5/fortnight
audit:
  sync: sometimes
"#;

#[test]
fn many_mistakes_all_reported_with_lines_and_keys() {
    let errs = load_str(MISTAKES, "model.yaml").unwrap_err();
    let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let expect = [
        "model.yaml:4:19: zones[0].purdue_level: `7`: Purdue levels go from 0 to 5",
        "model.yaml:5:16: zones[0].networks[0]: host bits are set in 10.20.1.0/16; did you mean 10.20.0.0/16?",
        "model.yaml:8:18: zones[0].assets[0].address: `10.20.1.300` is not an IP address",
        "model.yaml:9:15: zones[0].assets[0].kind: expected one of plc | rtu | hmi | ews | historian | sis | server | other, found `plcc`",
        "model.yaml:11:5: zones[1].colour: unknown key `colour`",
        "model.yaml:16:15: conduits[0].gateway.listen: `localhost` is not an address:port; write e.g. 127.0.0.1:5020 or [::1]:5020",
        "model.yaml:17:17: conduits[0].gateway.upstream: `udp://10.20.1.10:502`: unknown scheme `udp` (use tcp, tls, rtu or rtu+tcp)",
        "model.yaml:18:21: conduits[0].gateway.idle_timeout: `30` has no unit; write e.g. 800ms, 2s, 5m",
        "model.yaml:21:20: conduits[0].rules[0].from[1]: `NOPE-ZONE` names no zone or asset and is not a CIDR or IP address",
        "model.yaml:22:27: conduits[0].rules[0].functions[1]: `read_everything`: unknown function `read_everything`",
        "model.yaml:23:18: conduits[0].rules[0].holding: \"0-70000\": address 70000 is above 65535",
        "model.yaml:24:9: conduits[0].rules[1].id: rule id `r1` is already used by the rule at line 20 in this conduit",
        "model.yaml:27:9: conduits[0].rules[1].holdng: unknown key `holdng`; did you mean `holding`?",
        "model.yaml:28:17: conduits[0].rules[1].values: max (200) is below min (300)",
        "model.yaml:29:15: conduits[0].rules[1].rate: `5/fortnight`: unknown period `fortnight` (use s, min or h)",
        "model.yaml:31:9: audit.sync: expected one of every | writes | batch, found `sometimes`",
    ];
    for (i, e) in expect.iter().enumerate() {
        let found = got.iter().any(|g| g.starts_with(e));
        assert!(
            found,
            "expected #{i} not reported:\n  {e}\ngot:\n  {}",
            got.join("\n  ")
        );
    }
    assert_eq!(got.len(), expect.len(), "got:\n  {}", got.join("\n  "));
    // Errors come sorted by position.
    let lines: Vec<u32> = errs.iter().map(|e| e.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]));
}

fn errors(text: &str) -> Vec<String> {
    load_str(text, "m.yaml")
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn duplicate_keys_are_errors() {
    let e = errors("facility: a\nfacility: b\n");
    assert_eq!(
        e,
        ["m.yaml:2:1: facility: duplicate key `facility` (first at line 1)"]
    );
}

#[test]
fn unreadable_and_broken_files() {
    let missing = load_file(Path::new("/nonexistent/model.yaml")).unwrap_err();
    assert!(missing.is_unreadable());
    assert!(missing
        .to_string()
        .starts_with("/nonexistent/model.yaml: cannot read"));
    let bad = load_bytes(b"facility: \xff\n", "b.yaml").unwrap_err();
    assert!(bad.is_unreadable() && bad.to_string().contains("not UTF-8"));
    let syntax = load_str("zones:\n  - zone_id: [Z1\n", "s.yaml").unwrap_err();
    assert!(syntax.is_unreadable());
    assert!(syntax.to_string().starts_with("s.yaml:"), "{syntax}");
    let empty = load_str("", "e.yaml").unwrap_err();
    assert!(!empty.is_unreadable());
    assert_eq!(empty.to_string(), "e.yaml:1:1: the model file is empty");
    let list = load_str("- a\n- b\n", "l.yaml").unwrap_err();
    assert!(list
        .to_string()
        .contains("expected the model (a mapping), found a list"));
    let invalid = load_str("zones: 3\n", "i.yaml").unwrap_err();
    assert!(!invalid.is_unreadable());
}

#[test]
fn enforcement_syntax_variants() {
    let text = r#"
zones:
  - zone_id: Z1
    networks: ["fd00:1::/48", 10.1.0.0/16]
    security_level_target: {IAC: 2, RA: 1}
    assets:
      - id: RTU-7
        name: Pump station 7
        address: "::ffff:10.1.0.7"
        unit_ids: [1, "10-12", 12]
        kind: rtu
        vendor: ACME
        firmware: "2.1"
conduits:
  - conduit_id: C1
    gateway:
      listen: "[::1]:5020"
      upstream: "rtu:///dev/ttyUSB0?baud=9600&parity=none&stop_bits=2"
      mode: monitor
      deny: close
      idle_timeout: 5m
      request_timeout: 800ms
      connect_timeout: 1s
      max_connections: 8
      max_in_flight: 4
    rules:
      - id: diag
        from: [RTU-7, "10.9.9.9", "fd00:2::/64"]
        unit_ids: "1-3"
        roles: operator
        functions:
          - {function: diagnostics, sub_functions: [0, "10-18"]}
          - "encapsulated_interface:14"
          - 0x41
        coils: [0-15, 32, "0x40-0x4F"]
        rate: 30/min
audit:
  path: /var/log/zonegate/audit.log
  sync: every
  on_failure: block_all
  rotate_size: 64MiB
  checkpoint_every: 1000
  signing_key: keys/audit.key
  syslog:
    transport: tls
    address: "siem.example:6514"
    ca: ca.pem
    facility: local3
"#;
    let m = load_str(text, "v.yaml").unwrap();
    let z = &m.zones[0];
    assert_eq!(z.networks.len(), 2);
    assert_eq!(
        z.security_level_target.unwrap().to_string(),
        "{IAC: 2, RA: 1}"
    );
    let a = &z.assets[0];
    assert_eq!(a.address, Some("10.1.0.7".parse().unwrap()));
    assert_eq!(a.unit_ids, vec![1, 10, 11, 12]);
    assert_eq!(a.kind, Some(AssetKind::Rtu));
    let g = m.conduits[0].gateway.as_ref().unwrap();
    assert_eq!(g.listen, "[::1]:5020".parse().unwrap());
    assert!(matches!(
        g.upstream,
        Upstream::Rtu {
            baud: 9600,
            parity: Parity::None,
            stop_bits: 2,
            ..
        }
    ));
    assert_eq!((g.mode, g.deny), (Mode::Monitor, DenyAction::Close));
    assert_eq!(g.idle_timeout, Duration::from_secs(300));
    assert_eq!(g.request_timeout, Duration::from_millis(800));
    assert_eq!((g.max_connections, g.max_in_flight), (8, 4));
    let r = &m.conduits[0].rules[0];
    assert_eq!(r.unit_ids.as_deref(), Some(&[1, 2, 3][..]));
    assert_eq!(r.roles.as_deref(), Some(&["operator".to_owned()][..]));
    assert!(r.functions[0].selects(8, Some(12)) && !r.functions[0].selects(8, Some(4)));
    assert!(r.functions[1].selects(43, Some(14)));
    assert!(r.functions[2].selects(0x41, None));
    assert_eq!(r.coils.to_string(), "0-15, 32, 64-79");
    assert_eq!(r.rate.unwrap().to_string(), "30/min");
    assert!(matches!(r.from[2].target, SourceTarget::Network(_)));
    let audit = m.audit.as_ref().unwrap();
    assert_eq!(audit.rotate_size, Some(64 << 20));
    assert_eq!(audit.checkpoint_every, Some(1000));
    let s = audit.syslog.as_ref().unwrap();
    assert_eq!((s.transport, s.facility), (SyslogTransport::Tls, 19));
    assert_eq!(s.app_name, "zonegate");
}

#[test]
fn unknown_key_suggests_the_closest_known_key() {
    let e = errors("zones:\n  - zone_id: Z\n    purdue_levl: 2\n");
    assert_eq!(
        e,
        ["m.yaml:3:5: zones[0].purdue_levl: unknown key `purdue_levl`; did you mean `purdue_level`?"]
    );
}

#[test]
fn missing_required_keys_are_named() {
    let e = errors(
        "zones:\n  - name: no id\nconduits:\n  - conduit_id: C\n    rules:\n      - id: r\n",
    );
    assert_eq!(
        e,
        [
            "m.yaml:2:5: zones[0]: missing required key `zone_id`",
            "m.yaml:6:9: conduits[0].rules[0]: missing required key `from`",
            "m.yaml:6:9: conduits[0].rules[0]: missing required key `functions`",
        ]
    );
}

#[test]
fn sub_functions_only_for_fc8_and_fc43() {
    let text = "zones: [{zone_id: Z, networks: [10.0.0.0/8]}]\nconduits:\n  - conduit_id: C\n    rules:\n      - {id: r, from: [Z], functions: [\"3:1\", {function: 16, sub_functions: [1]}]}\n";
    let e = errors(text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e
        .iter()
        .all(|m| m.contains("only diagnostics (8) and encapsulated_interface (43)")));
}

#[test]
fn function_names_come_from_the_codec() {
    for code in 0..=u8::MAX {
        let fc = zonegate_modbus::FunctionCode::new(code);
        assert_eq!(function_name(code), fc.name(), "FC {code}");
        if let Some(name) = function_name(code) {
            assert_eq!(function_code(name), Some(code), "{name}");
        }
    }
    assert_eq!(function_code("write_multiple_registers"), Some(16));
    assert_eq!(function_code("read_device_identification"), None);
}

#[test]
fn yaml_merge_keys_share_gateway_defaults() {
    let text = r#"
x-gateway-defaults: &gw
  mode: monitor
  deny: drop
  request_timeout: 1s
zones: []
conduits:
  - conduit_id: C1
    gateway:
      <<: *gw
      listen: "127.0.0.1:5020"
      upstream: "tcp://127.0.0.1:502"
      deny: close
  - conduit_id: C2
    gateway:
      <<: [*gw, {idle_timeout: 5s}]
      listen: "127.0.0.1:5021"
      upstream: "tcp://127.0.0.1:502"
"#;
    let m = load_str(text, "m.yaml").unwrap();
    let g = m.conduits[0].gateway.as_ref().unwrap();
    assert_eq!(g.mode, Mode::Monitor);
    assert_eq!(
        g.deny,
        DenyAction::Close,
        "explicit keys win over merged ones"
    );
    assert_eq!(g.request_timeout, Duration::from_secs(1));
    let g2 = m.conduits[1].gateway.as_ref().unwrap();
    assert_eq!(
        (g2.deny, g2.idle_timeout),
        (DenyAction::Drop, Duration::from_secs(5))
    );
    // Merged-in mistakes are still caught, at the line where they are written.
    let bad = text.replace("  request_timeout: 1s", "  request_timeout: soon");
    let e = errors(&bad);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with("m.yaml:5:20: conduits[0].gateway.request_timeout: `soon`"));
    // Only top-level `x-` keys are extension fields.
    let e = errors("zones:\n  - zone_id: Z\n    x-note: hi\n");
    assert!(e[0].contains("unknown key `x-note`"));
}

#[test]
fn word_number_and_list_errors_name_what_was_expected() {
    let gw = |extra: &str| {
        format!(
            "zones: [{{zone_id: Z, networks: [10.0.0.0/8]}}]\nconduits:\n  - conduit_id: C\n    gateway: {{listen: \"127.0.0.1:5020\", upstream: \"tcp://10.0.0.1:502\", {extra}}}\n"
        )
    };
    let cases = [
        (
            gw("mode: strict"),
            "expected one of enforce | monitor, found `strict`",
        ),
        (
            gw("deny: reject"),
            "expected one of exception | drop | close, found `reject`",
        ),
        (
            gw("deny: [drop]"),
            "expected one of exception | drop | close, found a list",
        ),
        (
            gw("max_connections: [1]"),
            "expected a number, found a list",
        ),
        (
            "zones: []\naudit: {on_failure: panic}\n".to_owned(),
            "expected one of block_writes | block_all | continue, found `panic`",
        ),
        (
            "zones: []\naudit: {syslog: {address: \"10.0.0.9:514\", transport: quic}}\n".to_owned(),
            "expected one of udp | tcp | tls, found `quic`",
        ),
        (
            "zones: [{zone_id: Z, networks: {a: 10.0.0.0/8}}]\n".to_owned(),
            "expected a list, found a mapping",
        ),
    ];
    for (text, want) in &cases {
        let e = errors(text);
        assert!(e.iter().any(|m| m.contains(want)), "{want}\n{text}\n{e:#?}");
    }
}

/// Regression: two gateways on `127.0.0.1:0` (test and demo models let the OS pick the port)
/// were rejected as sharing one listen address. Port 0 never clashes; a fixed port still does.
#[test]
fn port_zero_listeners_do_not_clash() {
    let model = |port: u16| {
        format!(
            r#"
zones: []
conduits:
  - conduit_id: C1
    gateway: {{listen: "127.0.0.1:{port}", upstream: "tcp://127.0.0.1:502"}}
  - conduit_id: C2
    gateway: {{listen: "127.0.0.1:{port}", upstream: "tcp://127.0.0.1:503"}}
"#
        )
    };
    let m = load_str(&model(0), "m.yaml").unwrap();
    assert!(Policy::compile(&m).is_ok());
    let m = load_str(&model(5020), "m.yaml").unwrap();
    let e = Policy::compile(&m).unwrap_err().to_string();
    assert!(
        e.contains("already the listen address of conduit `C1`"),
        "{e}"
    );
}
