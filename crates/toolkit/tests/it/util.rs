//! Helpers shared by the toolkit tests: a small clean model to break on purpose, loaders.
#![allow(dead_code)]

use std::path::PathBuf;

use zonegate_toolkit::check::{self, Finding, Severity};
use zonegate_toolkit::model::Site;

/// A small, clean model: enterprise -> DMZ -> supervisory -> control, one gateway conduit.
pub(crate) const BASE: &str = r#"facility: "Test site"
assessment_date: "2026-11-01"
standard: "IEC 62443-3-2:2020"
zones:
  - zone_id: Z4
    name: Enterprise
    purdue_level: 4
    security_level_target: 1
    networks: [10.4.0.0/16]
    allowed_conduits: [C4]
  - zone_id: DMZ
    name: DMZ
    purdue_level: 3.5
    security_level_target: 2
    networks: [10.35.0.0/24]
    assets:
      - id: REPL
        address: 10.35.0.10
        kind: historian
    allowed_conduits: [C4, C3]
  - zone_id: Z2
    name: Supervisory
    purdue_level: 2
    security_level_target: 2
    networks: [10.2.0.0/24]
    assets:
      - id: HMI
        address: 10.2.0.10
        kind: hmi
      - id: EWS
        address: 10.2.0.20
        kind: ews
    allowed_conduits: [C3, C1]
  - zone_id: Z1
    name: Control
    purdue_level: 1
    security_level_target: 2
    networks: [10.1.0.0/24]
    assets:
      - id: PLC
        address: 10.1.0.10
        unit_ids: [1]
        kind: plc
    allowed_conduits: [C1]
conduits:
  - conduit_id: C4
    connects: [Z4, DMZ]
    security_level: 2
    protocols_allowed:
      - protocol: HTTPS
        port: 443
        direction: "Z4 -> DMZ"
        security_mode: TLS
  - conduit_id: C3
    connects: [DMZ, Z2]
    security_level: 2
    protocols_allowed:
      - protocol: HTTPS
        port: 443
        direction: "Z2 -> DMZ"
        security_mode: TLS
  - conduit_id: C1
    connects: [Z2, Z1]
    security_level: 2
    gateway:
      listen: 127.0.0.1:5020
      upstream: tcp://10.1.0.10:502
    rules:
      - id: hmi-read
        from: [HMI]
        unit_ids: [1]
        functions: [read_holding_registers]
        holding: 0-99
        rate: 10/s
      - id: ews-write
        from: [EWS]
        unit_ids: [1]
        functions: [write_single_register]
        holding: 10-19
        values: {min: 0, max: 100}
        rate: 1/s
audit:
  path: audit.log
  rotate_size: 64MiB
"#;

/// BASE with each `(from, to)` replaced once; panics when `from` is not in the text.
pub(crate) fn with(edits: &[(&str, &str)]) -> String {
    let mut s = BASE.to_owned();
    for (from, to) in edits {
        assert!(s.contains(from), "BASE has no {from:?}");
        s = s.replacen(from, to, 1);
    }
    s
}

/// Loads YAML text (panics with the loader's errors).
pub(crate) fn site(yaml: &str) -> Site {
    match zonegate_toolkit::load_str(yaml, "test.yaml") {
        Ok(s) => s,
        Err(e) => panic!("model does not load:\n{e}\n---\n{yaml}"),
    }
}

/// Runs the checks on YAML text.
pub(crate) fn findings(yaml: &str) -> Vec<Finding> {
    check::check(&site(yaml))
}

/// The findings with this id.
pub(crate) fn with_id<'a>(f: &'a [Finding], id: &str) -> Vec<&'a Finding> {
    f.iter().filter(|x| x.id == id).collect()
}

/// Asserts a check fires with the severity, and returns its findings.
pub(crate) fn fires(yaml: &str, id: &str, severity: Severity) -> Vec<Finding> {
    let f = findings(yaml);
    let hits = with_id(&f, id);
    assert!(
        hits.iter().any(|x| x.severity == severity),
        "{id} ({severity:?}) did not fire; findings: {f:#?}"
    );
    f
}

/// The repository's examples directory.
pub(crate) fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The three clean examples.
pub(crate) fn clean_examples() -> Vec<PathBuf> {
    [
        "cleanroom-hvac.yaml",
        "refinery-unit.yaml",
        "water-treatment.yaml",
    ]
    .iter()
    .map(|f| examples().join(f))
    .collect()
}

/// The three flawed examples.
pub(crate) fn flawed_examples() -> Vec<PathBuf> {
    [
        "cleanroom-hvac.yaml",
        "refinery-unit.yaml",
        "water-treatment.yaml",
    ]
    .iter()
    .map(|f| examples().join("flawed").join(f))
    .collect()
}

/// Loads a model file (panics with the loader's errors).
pub(crate) fn load(path: &std::path::Path) -> Site {
    match zonegate_toolkit::load(path) {
        Ok(s) => s,
        Err(e) => panic!("{} does not load:\n{e}", path.display()),
    }
}
