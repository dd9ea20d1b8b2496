//! Tests of `zonegate report`: formats, probe inclusion, exit codes.

use super::check::{ex, expect_exit, Scratch};
use super::util::zonegate;

#[test]
fn text_report_sections() {
    let t = expect_exit(&zonegate(&["report", &ex("water-treatment.yaml")]), 0);
    for s in [
        "Facility:         Riverside water treatment plant",
        "ZONE ARCHITECTURE",
        "CONDUIT CONFIGURATION",
        "VALIDATION RESULTS",
        "upstream tcp://10.50.3.10:502",
    ] {
        assert!(t.contains(s), "{s:?} missing:\n{t}");
    }
}

#[test]
fn html_markdown_json_and_probe_results() {
    let dir = Scratch::new("report");
    let probe = dir.join("probe.json");
    std::fs::write(
        &probe,
        r#"{"conduit":"C2-OPS-BPCS","gateway":"127.0.0.1:5022","source":"127.0.0.1","started":"2026-11-22T03:00:00Z","tests":[{"name":"allowed-read","expect":"allow","request":"unit 1 FC 3","outcome":"normal response","pass":true}],"passed":1,"failed":0}"#,
    )
    .unwrap();
    let html = dir.join("r.html");
    let out = zonegate(&[
        "report",
        "--format",
        "html",
        "--probe",
        probe.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
        &ex("refinery-unit.yaml"),
    ]);
    expect_exit(&out, 0);
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.contains("<svg") && h.contains("C2-OPS-BPCS") && h.contains("allowed-read"));
    let out = zonegate(&["report", "--format", "markdown", &ex("refinery-unit.yaml")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("## Conduit configuration"));
    let out = zonegate(&[
        "report",
        "--format",
        "json",
        "--probe",
        probe.to_str().unwrap(),
        &ex("refinery-unit.yaml"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["probe_passed"], 1);
    assert_eq!(v["zones"].as_array().unwrap().len(), 6);
    // A probe file that is not probe results: input error.
    std::fs::write(&probe, "{}").unwrap();
    let out = zonegate(&[
        "report",
        "--probe",
        probe.to_str().unwrap(),
        &ex("refinery-unit.yaml"),
    ]);
    expect_exit(&out, 2);
}

#[test]
fn missing_model_exits_2() {
    assert_eq!(
        zonegate(&["report", "/nonexistent.yaml"]).status.code(),
        Some(2)
    );
}

#[test]
fn report_exits_0_on_a_model_with_errors() {
    for f in [
        "cleanroom-hvac.yaml",
        "refinery-unit.yaml",
        "water-treatment.yaml",
    ] {
        let out = zonegate(&["report", &ex(&format!("flawed/{f}"))]);
        let stdout = expect_exit(&out, 1);
        assert!(
            stdout.contains("VALIDATION RESULTS"),
            "the report is still written"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("error finding(s)"));
    }
    // A sound model: 0.
    expect_exit(&zonegate(&["report", &ex("cleanroom-hvac.yaml")]), 0);
}
