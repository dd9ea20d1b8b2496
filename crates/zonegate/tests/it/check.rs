//! Tests of `zonegate check`: exit codes 0/1/2, formats, every example clean, every flawed
//! example with errors.
//!
//! The helpers at the top are shared by the other toolkit command tests (report, assess,
//! compile): `use super::check::{ex, ...}`.

use std::path::PathBuf;
use std::process::Output;

use super::util::{repo_root, zonegate};

/// The example models under `examples/` (each also has a flawed twin in `examples/flawed/`).
pub(crate) const EXAMPLES: [&str; 3] = [
    "cleanroom-hvac.yaml",
    "refinery-unit.yaml",
    "water-treatment.yaml",
];

/// The path of `examples/NAME` as an argument.
pub(crate) fn ex(name: &str) -> String {
    repo_root()
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

/// Asserts the exit status (showing stdout and stderr when it differs) and returns stdout.
pub(crate) fn expect_exit(out: &Output, code: i32) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fresh scratch directory for one test, removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// Creates `$TMP/zonegate-cli-TAG-PID`.
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("zonegate-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside the directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_example_checks_clean() {
    for f in EXAMPLES {
        let stdout = expect_exit(&zonegate(&["check", &ex(f)]), 0);
        assert!(
            stdout.contains("0 error(s)") && stdout.contains("- ok"),
            "{stdout}"
        );
    }
}

#[test]
fn every_flawed_example_has_errors() {
    for f in EXAMPLES {
        let stdout = expect_exit(&zonegate(&["check", &ex(&format!("flawed/{f}"))]), 1);
        assert!(stdout.contains("error[ZG-C"), "{stdout}");
        // file:line: prefix on every finding line.
        let first = stdout.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("{}:", ex(&format!("flawed/{f}")))),
            "{first}"
        );
    }
}

#[test]
fn unreadable_or_unparsable_model_exits_2() {
    let out = zonegate(&["check", "/nonexistent/model.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.yaml"));
    let dir = Scratch::new("check");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "zones:\n  - zone_id: Z1\n    purdue_level: [oops\n").unwrap();
    let out = zonegate(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:"), "{err}");
}

#[test]
fn json_and_sarif_formats() {
    let out = zonegate(&[
        "check",
        "--format",
        "json",
        &ex("flawed/refinery-unit.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["summary"]["errors"].as_u64().unwrap() > 0);
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "ZG-C008"));
    let out = zonegate(&[
        "check",
        "--format",
        "sarif",
        &ex("flawed/water-treatment.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let r = &v["runs"][0]["results"][0];
    assert!(r["ruleId"].as_str().unwrap().starts_with("ZG-C"));
    assert!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let out = zonegate(&["check", "--format", "sarif", &ex("cleanroom-hvac.yaml")]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn list_checks() {
    let out = zonegate(&["check", "--list"]);
    assert_eq!(out.status.code(), Some(0));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.lines().count() >= 30 && t.contains("ZG-C009 error    purdue-dmz-bypass"),
        "{t}"
    );
    // Without --list the model is required: usage error.
    assert_eq!(zonegate(&["check"]).status.code(), Some(2));
}

#[test]
fn examples_readme_says_check_help_where_check_list_is_meant() {
    let text = std::fs::read_to_string(repo_root().join("examples/README.md")).unwrap();
    assert!(!text.contains("check --help"), "examples/README.md");
    assert!(text.contains("zonegate check --list"));
}

#[test]
fn the_demo_model_passes_check() {
    let dir = Scratch::new("demo-model");
    let out = zonegate(&["demo", "--print-model"]);
    let model = dir.join("demo.yaml");
    std::fs::write(&model, &out.stdout).unwrap();
    let stdout = expect_exit(&zonegate(&["check", model.to_str().unwrap()]), 0);
    assert!(stdout.contains("0 error(s), 0 warning(s)"), "{stdout}");
}

#[test]
fn a_monitor_section_and_a_shadow_candidate_check_clean_and_bad_keys_are_named() {
    let dir = Scratch::new("monitor");
    let base = std::fs::read_to_string(ex("cleanroom-hvac.yaml")).unwrap();
    let with_shadow = base.replacen(
        "  - conduit_id: C1-SUP-CTRL\n",
        "  - conduit_id: C1-SUP-CTRL\n    shadow: candidate.yaml\n",
        1,
    );
    assert_ne!(with_shadow, base, "the example names C1-SUP-CTRL");
    let good = format!(
        "{with_shadow}\nmonitor:\n  baseline: baseline.json\n  queue: 1024\n  detectors: {{request_flood: off}}\n  thresholds: {{address_scan_count: 3, poll_rate_factor: 2.5}}\n"
    );
    let path = dir.join("model.yaml");
    std::fs::write(&path, &good).unwrap();
    // `check` reads the files the section names (ZG-C042, ZG-C043): both load.
    std::fs::write(dir.join("baseline.json"), EMPTY_BASELINE).unwrap();
    std::fs::write(dir.join("candidate.yaml"), &base).unwrap();
    let stdout = expect_exit(&zonegate(&["check", path.to_str().unwrap()]), 0);
    assert!(stdout.contains("0 error(s)"), "{stdout}");

    let bad = good.replace("address_scan_count: 3", "adress_scan_count: 3");
    std::fs::write(&path, &bad).unwrap();
    let out = zonegate(&["check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = bad.lines().position(|l| l.contains("adress")).unwrap() + 1;
    assert!(
        stderr.contains(&format!("model.yaml:{line}:"))
            && stderr.contains("monitor.thresholds.adress_scan_count")
            && stderr.contains("did you mean `address_scan_count`"),
        "{stderr}"
    );
}

const EMPTY_BASELINE: &str =
    "{\"version\": 1, \"requests\": 0, \"channels_dropped\": 0, \"channels\": []}\n";

/// Regression (issue 12): `check` said nothing of a baseline or a `shadow:` candidate that
/// does not load; the gateway then ran without them, saying so only in its log.
#[test]
fn check_reports_a_shadow_candidate_or_baseline_that_does_not_load() {
    let dir = Scratch::new("monitor-files");
    let base = std::fs::read_to_string(ex("cleanroom-hvac.yaml")).unwrap();
    let model = base.replacen(
        "  - conduit_id: C1-SUP-CTRL\n",
        "  - conduit_id: C1-SUP-CTRL\n    shadow: candidate.yaml\n",
        1,
    ) + "\nmonitor:\n  baseline: baseline.json\n";
    let path = dir.join("model.yaml");
    std::fs::write(&path, &model).unwrap();
    let shadow_line = model.lines().position(|l| l.contains("shadow:")).unwrap() + 1;
    let baseline_line = model.lines().position(|l| l.contains("baseline:")).unwrap() + 1;
    let check = || zonegate(&["check", path.to_str().unwrap()]);

    // Neither file exists: two errors, exit 1.
    let stdout = expect_exit(&check(), 1);
    assert!(
        stdout.contains(&format!(
            "model.yaml:{shadow_line}: error[ZG-C043] C1-SUP-CTRL: "
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "model.yaml:{baseline_line}: error[ZG-C042] monitor: monitor.baseline: "
        )),
        "{stdout}"
    );
    assert!(stdout.contains("cannot be read"), "{stdout}");

    // A candidate with a problem of its own: named at its line in the candidate.
    let candidate = base.replacen("holding: ", "holding: 70000-70001 #", 1);
    std::fs::write(dir.join("candidate.yaml"), &candidate).unwrap();
    std::fs::write(
        dir.join("baseline.json"),
        "{\"version\": 1, \"channels\": 3}",
    )
    .unwrap();
    let stdout = expect_exit(&check(), 1);
    let bad_line = candidate.lines().position(|l| l.contains("70000")).unwrap() + 1;
    assert!(
        stdout.contains(&format!("candidate.yaml:{bad_line}: error[ZG-C043] C1-SUP-CTRL: shadow candidate of conduit C1-SUP-CTRL")),
        "{stdout}"
    );
    assert!(stdout.contains(".holding: "), "{stdout}");
    assert!(stdout.contains("is not a baseline"), "{stdout}");

    // A valid candidate without the conduit, a valid baseline: one error left.
    std::fs::write(
        dir.join("candidate.yaml"),
        base.replace("C1-SUP-CTRL", "C9"),
    )
    .unwrap();
    std::fs::write(dir.join("baseline.json"), EMPTY_BASELINE).unwrap();
    let stdout = expect_exit(&check(), 1);
    assert!(stdout.contains("has no conduit C1-SUP-CTRL"), "{stdout}");
    assert!(stdout.contains(" 1 error(s)"), "{stdout}");
}
