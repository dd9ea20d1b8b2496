//! Tests of `zonegate assess`.

use super::check::{ex, expect_exit};
use super::util::zonegate;

#[test]
fn assess_text_json_and_gap_exit() {
    let t = expect_exit(&zonegate(&["assess", &ex("cleanroom-hvac.yaml")]), 0);
    assert!(t.contains("IEC 62443-3-3 ASSESSMENT") && t.contains("NOT confirmed"));
    assert!(t.contains("MET       SR 5.2 RE1"), "{t}");
    assert!(t.contains("THREAT: Spoofing"));
    let out = zonegate(&["assess", "--format", "json", &ex("refinery-unit.yaml")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["table_size"], 100);
    assert_eq!(v["conduits"][0]["items"].as_array().unwrap().len(), 100);
    // Plaintext Modbus at SL 2 cannot reach IAC 2: a shortfall, so --fail-on-gap exits 1.
    expect_exit(
        &zonegate(&["assess", "--fail-on-gap", &ex("cleanroom-hvac.yaml")]),
        1,
    );
    let out = zonegate(&[
        "assess",
        "--format",
        "markdown",
        &ex("water-treatment.yaml"),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# IEC 62443-3-3 assessment"));
    assert_eq!(
        zonegate(&["assess", "/nonexistent.yaml"]).status.code(),
        Some(2)
    );
}
