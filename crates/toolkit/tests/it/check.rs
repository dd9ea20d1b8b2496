//! Every check id is triggered by a minimal model, and none of the error/warning checks fires on
//! the shipped examples; every flawed example has errors.

use zonegate_toolkit::check::{self, Severity, CHECKS};

use super::util::{
    clean_examples, findings, fires, flawed_examples, load, site, with, with_id, BASE,
};

use Severity::{Error, Info, Warning};

#[test]
fn base_model_is_clean() {
    let f = findings(BASE);
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn clean_examples_have_no_errors_or_warnings() {
    for p in clean_examples() {
        let f = check::check(&load(&p));
        let bad: Vec<_> = f.iter().filter(|x| x.severity != Info).collect();
        assert!(bad.is_empty(), "{}: {bad:#?}", p.display());
    }
}

#[test]
fn flawed_examples_have_many_errors() {
    for p in flawed_examples() {
        let f = check::check(&load(&p));
        let (e, w, _) = check::counts(&f);
        assert!(e >= 5, "{}: only {e} errors: {f:#?}", p.display());
        assert!(w >= 2, "{}: only {w} warnings", p.display());
        // Every finding names a real line of the file.
        let lines = std::fs::read_to_string(&p).unwrap().lines().count() as u32;
        assert!(f.iter().all(|x| x.line >= 1 && x.line <= lines));
    }
}

#[test]
fn check_ids_are_unique_and_ordered() {
    for (i, c) in CHECKS.iter().enumerate() {
        assert_eq!(c.id, format!("ZG-C{:03}", i + 1));
        assert!(!c.description.is_empty() && !c.name.is_empty());
    }
}

#[test]
fn one_edit_fires_its_check() {
    // (text in BASE, replacement, check id, severity)
    let cases = [
        ("connects: [Z2, Z1]", "connects: [Z1, Z1]", "ZG-C003", Error),
        (
            "      - id: EWS\n        address: 10.2.0.20\n        kind: ews\n",
            "      - id: EWS\n        address: 10.2.0.20\n        kind: ews\n      - id: PLC2\n        address: 10.1.0.10\n",
            "ZG-C005",
            Error,
        ),
        // An asset outside every network: warning; inside another zone's network: error.
        (
            "address: 10.1.0.10\n        unit_ids",
            "address: 10.9.0.10\n        unit_ids",
            "ZG-C007",
            Warning,
        ),
        (
            "address: 10.1.0.10\n        unit_ids",
            "address: 10.2.0.99\n        unit_ids",
            "ZG-C007",
            Error,
        ),
        (
            "connects: [Z2, Z1]\n    security_level: 2",
            "connects: [Z2, Z1]\n    security_level: 1",
            "ZG-C010",
            Warning,
        ),
        ("from: [HMI]", "from: [0.0.0.0/0]", "ZG-C017", Error),
        ("from: [HMI]", "from: [\"::/0\"]", "ZG-C017", Error),
        (
            "upstream: tcp://10.1.0.10:502",
            "upstream: tcp://10.1.0.10:502\n      mode: monitor",
            "ZG-C023",
            Warning,
        ),
        (
            "upstream: tcp://10.1.0.10:502",
            "upstream: tcp://10.200.0.1:502",
            "ZG-C024",
            Warning,
        ),
        (
            "audit:\n  path: audit.log\n  rotate_size: 64MiB\n",
            "",
            "ZG-C026",
            Warning,
        ),
        (
            "        values: {min: 0, max: 100}\n        rate: 1/s\n",
            "",
            "ZG-C027",
            Info,
        ),
        (
            "unit_ids: [1]\n        functions: [read_holding_registers]",
            "unit_ids: [1, 5]\n        functions: [read_holding_registers]",
            "ZG-C030",
            Warning,
        ),
    ];
    for (from, to, id, severity) in cases {
        fires(&with(&[(from, to)]), id, severity);
    }
}

#[test]
fn c001_duplicate_ids() {
    // A second zone Z4 and a second conduit C4.
    let y = with(&[
        ("  - zone_id: DMZ\n", "  - zone_id: Z4\n    purdue_level: 4\n    security_level_target: 1\n  - zone_id: DMZ\n"),
        ("audit:", "  - conduit_id: C4\n    connects: [Z2, Z1]\n    security_level: 2\n    protocols_allowed:\n      - protocol: SSH\n        port: 22\naudit:"),
    ]);
    let f = fires(&y, "ZG-C001", Error);
    let dup: Vec<&str> = with_id(&f, "ZG-C001")
        .iter()
        .map(|x| x.element.as_str())
        .collect();
    assert!(dup.contains(&"Z4") && dup.contains(&"C4"), "{dup:?}");
    // Two assets with one id in one zone.
    let y = with(&[(
        "        unit_ids: [1]\n        kind: plc\n",
        "        unit_ids: [1]\n        kind: plc\n      - id: IO\n        address: 10.1.0.12\n      - id: IO\n        address: 10.1.0.13\n",
    )]);
    fires(&y, "ZG-C001", Error);
}

#[test]
fn c002_unknown_conduit_in_allowed_conduits() {
    let f = fires(
        &with(&[(
            "allowed_conduits: [C1]\nconduits",
            "allowed_conduits: [C1, C9]\nconduits",
        )]),
        "ZG-C002",
        Error,
    );
    assert_eq!(with_id(&f, "ZG-C002")[0].element, "Z1");
}

#[test]
fn c004_allowed_conduits_disagree() {
    // Z1 allows C3, which does not connect it; and Z2 no longer lists C1.
    let f = fires(
        &with(&[
            (
                "allowed_conduits: [C1]\nconduits",
                "allowed_conduits: [C1, C3]\nconduits",
            ),
            ("allowed_conduits: [C3, C1]", "allowed_conduits: [C3]"),
        ]),
        "ZG-C004",
        Error,
    );
    assert_eq!(with_id(&f, "ZG-C004").len(), 2);
}

#[test]
fn c006_overlapping_networks() {
    let f = fires(
        &with(&[("networks: [10.1.0.0/24]", "networks: [10.0.0.0/8]")]),
        "ZG-C006",
        Error,
    );
    assert!(with_id(&f, "ZG-C006").len() >= 3);
}

const SIS_ZONE: &str = "  - zone_id: SIS\n    purdue_level: 1\n    security_level_target: 2\n    criticality: safety (SIL 2)\n    networks: [10.9.0.0/24]\n    assets:\n      - id: LS1\n        address: 10.9.0.10\n        unit_ids: [9]\n        kind: sis\n    allowed_conduits: [C9]\nconduits:\n";

#[test]
fn c008_sis_conduit_beyond_bpcs() {
    let y = with(&[
        ("conduits:\n", SIS_ZONE),
        ("allowed_conduits: [C4, C3]", "allowed_conduits: [C4, C3, C9]"),
        ("audit:", "  - conduit_id: C9\n    connects: [SIS, DMZ]\n    security_level: 2\n    protocols_allowed:\n      - protocol: HTTPS\n        port: 443\n        security_mode: TLS\naudit:"),
    ]);
    let f = fires(&y, "ZG-C008", Error);
    assert_eq!(with_id(&f, "ZG-C008")[0].element, "C9");
    // To the BPCS is fine.
    let ok = with(&[
        ("allowed_conduits: [C1]\nconduits", "allowed_conduits: [C1, C9]\nconduits"),
        ("conduits:\n", SIS_ZONE),
        ("audit:", "  - conduit_id: C9\n    connects: [SIS, Z1]\n    security_level: 2\n    protocols_allowed:\n      - protocol: Modbus/TCP Security\n        port: 802\n        security_mode: TLS\naudit:"),
    ]);
    let f = findings(&ok);
    assert!(with_id(&f, "ZG-C008").is_empty(), "{f:#?}");
}

#[test]
fn c009_purdue_bypass_over_two_hops() {
    // Z4 -> Z3 (level 3, not a DMZ) -> Z2: no direct L4 -> L2 edge, still a bypass.
    let y = with(&[
        ("allowed_conduits: [C4]\n", "allowed_conduits: [C4, C8]\n"),
        ("  - zone_id: DMZ\n", "  - zone_id: Z3\n    purdue_level: 3\n    security_level_target: 2\n    allowed_conduits: [C8, C7]\n  - zone_id: DMZ\n"),
        ("allowed_conduits: [C3, C1]", "allowed_conduits: [C3, C1, C7]"),
        ("audit:", "  - conduit_id: C8\n    connects: [Z4, Z3]\n    security_level: 2\n    protocols_allowed:\n      - protocol: VPN\n        port: 4500\n  - conduit_id: C7\n    connects: [Z3, Z2]\n    security_level: 2\n    protocols_allowed:\n      - protocol: RDP\n        port: 3389\naudit:"),
    ]);
    let f = fires(&y, "ZG-C009", Error);
    let msgs: Vec<&str> = with_id(&f, "ZG-C009")
        .iter()
        .map(|x| x.message.as_str())
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("Z4 --C8--> Z3 --C7--> Z2")),
        "{msgs:#?}"
    );
    assert!(msgs.iter().any(|m| m.contains("zone Z1")), "{msgs:#?}");
    // Through the DMZ only: the base model has the same reach and no finding.
    assert!(with_id(&findings(BASE), "ZG-C009").is_empty());
}

#[test]
fn c011_writes_from_upper_levels() {
    // From the DMZ (error, and also a source outside the conduit).
    let y = with(&[("from: [EWS]", "from: [REPL]")]);
    fires(&y, "ZG-C011", Error);
    fires(&y, "ZG-C012", Error);
    // From a level 3 zone connected by the conduit: warning.
    let y = with(&[("purdue_level: 2\n", "purdue_level: 3\n")]);
    fires(&y, "ZG-C011", Warning);
}

#[test]
fn c011_writes_declared_in_prose() {
    let y = with(&[(
        "        direction: \"Z4 -> DMZ\"\n        security_mode: TLS\n",
        "        direction: \"Z4 -> DMZ\"\n        security_mode: TLS\n      - protocol: Modbus TCP\n        port: 502\n        direction: \"Z4 -> DMZ (FC 3, FC 6/16 setpoints)\"\n",
    )]);
    let f = fires(&y, "ZG-C011", Error);
    assert_eq!(with_id(&f, "ZG-C011")[0].element, "C4");
    let y = with(&[(
        "        direction: \"Z4 -> DMZ\"\n        security_mode: TLS\n",
        "        direction: \"Z4 -> DMZ\"\n        security_mode: TLS\n      - protocol: Modbus TCP\n        port: 502\n        direction: \"Z4 -> DMZ (read only, FC 3/4 only)\"\n",
    )]);
    assert!(with_id(&findings(&y), "ZG-C011").is_empty());
}

#[test]
fn c012_rule_source_outside_the_conduit() {
    fires(
        &with(&[("from: [HMI]", "from: [10.4.0.0/24]")]),
        "ZG-C012",
        Error,
    );
    fires(&with(&[("from: [HMI]", "from: [Z4]")]), "ZG-C012", Error);
    assert!(with_id(
        &findings(&with(&[("from: [HMI]", "from: [10.2.0.0/25]")])),
        "ZG-C012"
    )
    .is_empty());
}

#[test]
fn c013_plaintext_modbus_at_sl3() {
    let f = fires(
        &with(&[(
            "    security_level_target: 2\n    networks: [10.1.0.0/24]",
            "    security_level_target: 3\n    networks: [10.1.0.0/24]",
        )]),
        "ZG-C013",
        Error,
    );
    assert!(with_id(&f, "ZG-C013")
        .iter()
        .any(|x| x.message.contains("tcp://10.1.0.10:502")));
    // SL-T 2 everywhere: no finding (base is clean).
}

#[test]
fn c014_sensitive_functions_need_justification() {
    let y = with(&[(
        "functions: [read_holding_registers]",
        "functions: [read_holding_registers, 8]",
    )]);
    fires(&y, "ZG-C014", Error);
    let y = with(&[(
        "functions: [read_holding_registers]",
        "functions: [read_holding_registers, 43]\n        justification: \"asset inventory scan by the EWS\"",
    )]);
    assert!(with_id(&findings(&y), "ZG-C014").is_empty());
}

#[test]
fn c015_shadowed_rule() {
    let y = with(&[(
        "audit:",
        "      - id: narrow\n        from: [HMI]\n        unit_ids: [1]\n        functions: [read_holding_registers]\n        holding: 10-20\naudit:",
    )]);
    // hmi-read has a rate limit, so requests over the rate fall through: not shadowed.
    assert!(with_id(&findings(&y), "ZG-C015").is_empty());
    let y = y.replacen(
        "        holding: 0-99\n        rate: 10/s\n",
        "        holding: 0-99\n",
        1,
    );
    let f = fires(&y, "ZG-C015", Warning);
    assert_eq!(with_id(&f, "ZG-C015")[0].element, "C1/narrow");
    // A wider later rule is not shadowed.
    let y2 = with(&[
        ("        holding: 0-99\n        rate: 10/s\n", "        holding: 0-99\n"),
        ("audit:", "      - id: wider\n        from: [HMI]\n        unit_ids: [1]\n        functions: [read_holding_registers]\n        holding: 0-199\naudit:"),
    ]);
    assert!(with_id(&findings(&y2), "ZG-C015").is_empty());
}

#[test]
fn c016_rule_that_never_matches() {
    let f = fires(
        &with(&[(
            "unit_ids: [1]\n        functions: [read_holding_registers]",
            "unit_ids: [7]\n        functions: [read_holding_registers]",
        )]),
        "ZG-C016",
        Warning,
    );
    assert!(with_id(&f, "ZG-C016")[0].message.contains("unit id 7"));
    let f = fires(
        &with(&[(
            "functions: [read_holding_registers]\n        holding: 0-99",
            "functions: [read_coils]\n        holding: 0-99",
        )]),
        "ZG-C016",
        Warning,
    );
    assert!(with_id(&f, "ZG-C016")[0].message.contains("address range"));
}

#[test]
fn c018_c019_writes_into_a_sis_zone() {
    // Turn the control zone into a SIS zone that also holds a PLC.
    let y = with(&[(
        "        unit_ids: [1]\n        kind: plc\n",
        "        unit_ids: [1]\n        kind: plc\n      - id: LS1\n        address: 10.1.0.20\n        unit_ids: [2]\n        kind: sis\n",
    )]);
    fires(&y, "ZG-C019", Warning);
    // ews-write has no justification: error.
    fires(&y, "ZG-C018", Error);
    // With one: a warning that it must stay under management of change.
    let y = y.replacen(
        "functions: [write_single_register]",
        "functions: [write_single_register]\n        justification: \"trip reset after MOC-17\"",
        1,
    );
    let f = findings(&y);
    let w = with_id(&f, "ZG-C018");
    assert!(
        !w.is_empty() && w.iter().all(|x| x.severity == Warning),
        "{f:#?}"
    );
}

#[test]
fn c020_c021_missing_sl_target_and_purdue_level() {
    let y = with(&[("    purdue_level: 4\n    security_level_target: 1\n", "")]);
    fires(&y, "ZG-C020", Warning);
    fires(&y, "ZG-C021", Info);
}

#[test]
fn c022_two_gateways_on_one_port() {
    let y = with(&[
        ("allowed_conduits: [C1]\nconduits", "allowed_conduits: [C1, C2]\nconduits"),
        ("allowed_conduits: [C3, C1]", "allowed_conduits: [C3, C1, C2]"),
        ("audit:", "  - conduit_id: C2\n    connects: [Z2, Z1]\n    security_level: 2\n    gateway:\n      listen: 127.0.0.1:5020\n      upstream: tcp://10.1.0.10:502\n    rules: []\naudit:"),
    ]);
    fires(&y, "ZG-C022", Error);
    fires(&y, "ZG-C025", Info);
}

#[test]
fn c028_c029_undeclared_conduit() {
    let y = with(&[(
        "    connects: [Z4, DMZ]\n    security_level: 2\n    protocols_allowed:\n      - protocol: HTTPS\n        port: 443\n        direction: \"Z4 -> DMZ\"\n        security_mode: TLS\n",
        "    connects: [Z4, DMZ]\n",
    )]);
    fires(&y, "ZG-C028", Warning);
    fires(&y, "ZG-C029", Warning);
}

#[test]
fn every_check_id_is_exercised_somewhere() {
    // The flawed examples plus the tests above cover all ids; the examples alone cover most.
    let mut seen = std::collections::BTreeSet::new();
    for p in flawed_examples() {
        for f in check::check(&load(&p)) {
            seen.insert(f.id);
        }
    }
    for must in [
        "ZG-C002", "ZG-C003", "ZG-C004", "ZG-C005", "ZG-C006", "ZG-C008", "ZG-C009", "ZG-C011",
        "ZG-C012", "ZG-C013", "ZG-C014", "ZG-C015", "ZG-C016", "ZG-C017", "ZG-C018", "ZG-C022",
    ] {
        assert!(
            seen.contains(must),
            "no flawed example shows {must}: {seen:?}"
        );
    }
}

#[test]
fn descriptive_document_checks_without_error() {
    let y = r#"facility: "Descriptive only"
standard: "IEC 62443-3-2:2020"
zones:
  - zone_id: Z1
    name: Control
    purdue_level: "1-2"
    security_level_target: "SL 2"
    assets: ["PLC cabinet A", "HMI panel"]
    allowed_conduits: [C1]
  - zone_id: Z2
    name: Operations
    purdue_level: 3
    security_level_target: "SL 2"
    assets: ["Historian"]
    allowed_conduits: [C1]
  - zone_id: ZAIR
    name: Air-gapped test bench
    purdue_level: 1
    security_level_target: "SL 1"
    assets: ["Spare PLC"]
    allowed_conduits: []
conduits:
  - conduit_id: C1
    name: Operations to control
    connects: [Z2, Z1]
    security_level: "SL 2"
    protocols_allowed:
      - protocol: Modbus TCP
        port: 502
        direction: "Z2 -> Z1 (read only, FC 3/4 only)"
        security_mode: none
    controls: ["Firewall"]
"#;
    let f = check::check(&site(y));
    assert_eq!(check::counts(&f).0, 0, "{f:#?}");
}

#[test]
fn json_and_sarif_outputs() {
    let p = &flawed_examples()[0];
    let s = load(p);
    let f = check::check(&s);
    let j = check::render_json(&f, &s.file);
    assert_eq!(
        j["summary"]["errors"].as_u64().unwrap() as usize,
        check::counts(&f).0
    );
    assert!(j["findings"][0]["line"].as_u64().unwrap() >= 1);
    let sarif = check::render_sarif(&f);
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().unwrap().len(),
        CHECKS.len()
    );
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), f.len());
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(run["tool"]["driver"]["rules"][idx]["id"], id);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("cleanroom-hvac.yaml"));
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
    }
    let text = check::render_text(&f, &s.file);
    assert!(text.contains("error[ZG-C009]"));
}

/// BASE's gateway conduit C1 with `monitor:` naming `baseline` and C1 naming `shadow`, written
/// with the files of `files` into a fresh folder; the model loaded from there.
fn with_monitor_files(
    tag: &str,
    baseline: &str,
    shadow: &str,
    files: &[(&str, &str)],
) -> (zonegate_toolkit::model::Site, std::path::PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("zonegate-check-files-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let y = with(&[(
        "    gateway:\n      listen: 127.0.0.1:5020\n",
        &format!("    shadow: {shadow}\n    gateway:\n      listen: 127.0.0.1:5020\n"),
    )]) + &format!("monitor:\n  baseline: {baseline}\n");
    let model = dir.join("model.yaml");
    std::fs::write(&model, y).unwrap();
    (load(&model), dir)
}

/// A candidate for BASE's C1: BASE itself with one rule less.
fn candidate() -> String {
    with(&[(
        "      - id: ews-write\n",
        "      - id: ews-write-candidate\n",
    )])
}

fn file_findings(site: &zonegate_toolkit::model::Site) -> Vec<check::Finding> {
    check::check_with_files(site)
        .into_iter()
        .filter(|f| ["ZG-C042", "ZG-C043"].contains(&f.id))
        .collect()
}

#[test]
fn check_reads_the_baseline_and_candidate_relative_to_the_model_file() {
    // The test runs in the crate's folder: the relative names resolve only against the
    // model's own folder, as the gateway resolves them.
    let baseline = "{\"version\": 1, \"requests\": 0, \"channels_dropped\": 0, \"channels\": []}";
    let (site, dir) = with_monitor_files(
        "ok",
        "baseline.json",
        "candidate.yaml",
        &[
            ("baseline.json", baseline),
            ("candidate.yaml", &candidate()),
        ],
    );
    let f = file_findings(&site);
    assert!(f.is_empty(), "{f:#?}");
    // The gate of `run` (check without the files) never reads them.
    assert!(check::check(&site)
        .iter()
        .all(|f| f.id != "ZG-C042" && f.id != "ZG-C043"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_reports_a_monitor_baseline_that_does_not_load() {
    for (tag, text, says) in [
        ("missing", None, "cannot be read"),
        ("json", Some("{\"version\": 1,"), "is not valid JSON"),
        (
            "shape",
            Some("{\"version\": 1, \"channels\": 7}"),
            "is not a baseline",
        ),
        (
            "version",
            Some("{\"version\": 2, \"requests\": 0, \"channels_dropped\": 0, \"channels\": []}"),
            "version 2 is not supported",
        ),
    ] {
        let files: Vec<(&str, &str)> = text.map(|t| ("b.json", t)).into_iter().collect();
        let mut all = files.clone();
        let c = candidate();
        all.push(("candidate.yaml", &c));
        let (site, dir) = with_monitor_files(tag, "b.json", "candidate.yaml", &all);
        let f = file_findings(&site);
        assert_eq!(f.len(), 1, "{tag}: {f:#?}");
        let x = &f[0];
        assert_eq!((x.id, x.severity), ("ZG-C042", Error), "{tag}");
        assert_eq!(x.file, site.file, "{tag}");
        assert_eq!(
            x.line,
            site.monitor
                .as_ref()
                .unwrap()
                .baseline
                .as_ref()
                .unwrap()
                .line
        );
        assert!(
            x.message.starts_with("monitor.baseline: "),
            "{tag}: {}",
            x.message
        );
        assert!(
            x.message
                .contains(&dir.join("b.json").display().to_string()),
            "{tag}: {}",
            x.message
        );
        assert!(x.message.contains(says), "{tag}: {}", x.message);
        assert!(check::has_errors(&f));
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn check_reports_a_shadow_candidate_that_does_not_load() {
    let baseline = "{\"version\": 1, \"requests\": 0, \"channels_dropped\": 0, \"channels\": []}";
    let shadow_line = |site: &zonegate_toolkit::model::Site| {
        site.conduit("C1").unwrap().shadow.as_ref().unwrap().line
    };
    // Unreadable: one finding at the shadow key.
    let (site, dir) =
        with_monitor_files("unreadable", "b.json", "nope.yaml", &[("b.json", baseline)]);
    let f = file_findings(&site);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].id, f[0].severity, f[0].line),
        ("ZG-C043", Error, shadow_line(&site))
    );
    assert_eq!(f[0].file, site.file);
    assert!(
        f[0].message.starts_with("conduits[2].shadow: "),
        "{}",
        f[0].message
    );
    assert!(f[0].message.contains("cannot be read"), "{}", f[0].message);
    assert!(f[0].message.contains("nope.yaml"), "{}", f[0].message);
    let _ = std::fs::remove_dir_all(dir);

    // Invalid: a finding at the key, and each of the candidate's problems at its own line.
    let bad = candidate()
        .replace("        holding: 10-19\n", "        holding: 10-70000\n")
        .replace("      rotate_size: 64MiB\n", "")
        .replace(
            "  rotate_size: 64MiB\n",
            "  rotate_size: 64MiB\n  colour: blue\n",
        );
    let (site, dir) = with_monitor_files(
        "invalid",
        "b.json",
        "cand.yaml",
        &[("b.json", baseline), ("cand.yaml", &bad)],
    );
    let f = file_findings(&site);
    let cand = dir.join("cand.yaml").display().to_string();
    let at_key: Vec<_> = f.iter().filter(|x| x.file == site.file).collect();
    assert_eq!(at_key.len(), 1, "{f:#?}");
    assert_eq!(at_key[0].line, shadow_line(&site));
    assert!(
        at_key[0]
            .message
            .contains("is not a valid model (2 problem(s)"),
        "{}",
        at_key[0].message
    );
    let inside: Vec<_> = f.iter().filter(|x| x.file == cand).collect();
    assert_eq!(inside.len(), 2, "{f:#?}");
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
    assert!(inside
        .iter()
        .all(|x| x.severity == Error && x.id == "ZG-C043"));
    assert_eq!(inside[0].line, line_of("10-70000"), "{inside:#?}");
    assert!(
        inside[0].message.contains("conduits[2].rules[1].holding: "),
        "{}",
        inside[0].message
    );
    assert!(inside[0].message.contains("70000"), "{}", inside[0].message);
    assert_eq!(inside[1].line, line_of("colour"), "{inside:#?}");
    assert!(inside[1].message.contains("audit"), "{}", inside[1].message);
    let _ = std::fs::remove_dir_all(dir);

    // Valid, but without the conduit.
    let other = candidate()
        .replace("conduit_id: C1", "conduit_id: C1-NEW")
        .replace("[C3, C1]", "[C3, C1-NEW]")
        .replace("allowed_conduits: [C1]", "allowed_conduits: [C1-NEW]");
    let (site, dir) = with_monitor_files(
        "noconduit",
        "b.json",
        "cand.yaml",
        &[("b.json", baseline), ("cand.yaml", &other)],
    );
    let f = file_findings(&site);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].line, f[0].file.as_str()),
        (shadow_line(&site), site.file.as_str())
    );
    assert!(
        f[0].message.contains("has no conduit C1"),
        "{}",
        f[0].message
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_shadow_on_a_conduit_without_a_gateway_is_an_error() {
    let y = with(&[(
        "  - conduit_id: C3\n    connects: [DMZ, Z2]\n",
        "  - conduit_id: C3\n    connects: [DMZ, Z2]\n    shadow: candidate.yaml\n",
    )]);
    let f = fires(&y, "ZG-C044", Error);
    let hit = with_id(&f, "ZG-C044")[0];
    assert_eq!(hit.element, "C3");
    let line = y.lines().position(|l| l.contains("shadow:")).unwrap() as u32 + 1;
    assert_eq!(hit.line, line);
    assert!(
        hit.message
            .contains("shadow: needs a gateway: block; nothing evaluates it"),
        "{}",
        hit.message
    );
    // The candidate is never read for such a conduit (it does not exist here).
    assert!(check::check_with_files(&site(&y))
        .iter()
        .all(|f| f.id != "ZG-C043"));
}
