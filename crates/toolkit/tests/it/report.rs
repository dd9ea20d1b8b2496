//! The zone implementation report: sections, numbers, probe results, self-contained HTML.

use zonegate_toolkit::probe::{ProbeResult, ProbeRun};
use zonegate_toolkit::report;

use super::util::{clean_examples, examples, flawed_examples, load};

fn sample_probe() -> ProbeRun {
    ProbeRun {
        conduit: "C1-SUP-CTRL".into(),
        gateway: "127.0.0.1:5020".into(),
        source: "127.0.0.1".into(),
        started: "2026-11-22T03:00:00Z".into(),
        tls: None,
        tests: vec![
            ProbeResult {
                name: "allowed-read".into(),
                expect: "allow".into(),
                request: "unit 1 FC 3 read_holding_registers holding 0".into(),
                outcome: "normal response (value 215)".into(),
                pass: true,
            },
            ProbeResult {
                name: "write-denied".into(),
                expect: "deny".into(),
                request: "unit 1 FC 6 write_single_register holding 0".into(),
                outcome: "normal response; value still 215".into(),
                pass: false,
            },
        ],
        passed: 1,
        failed: 1,
        notes: Vec::new(),
    }
}

#[test]
fn text_report_has_the_integrator_layout() {
    let site = load(&examples().join("cleanroom-hvac.yaml"));
    let r = report::build(&site, vec![sample_probe()]);
    assert_eq!(r.summary.zones, 5);
    assert_eq!(r.summary.conduits, 4);
    assert_eq!(r.summary.enforced_conduits, 1);
    assert_eq!(r.summary.rules, 4);
    assert_eq!(r.summary.errors, 0);
    assert_eq!((r.summary.probe_passed, r.summary.probe_failed), (1, 1));
    let t = report::render_text(&r);
    let order = [
        "Facility:         Building 4 cleanroom HVAC",
        "Assessment date:  2026-11-20",
        "Standard:         IEC 62443-3-2:2020",
        "ZONE ARCHITECTURE",
        "CONDUIT CONFIGURATION",
        "VALIDATION RESULTS",
    ];
    let mut at = 0;
    for o in order {
        let i = t[at..]
            .find(o)
            .unwrap_or_else(|| panic!("{o:?} missing or out of order:\n{t}"));
        at += i;
    }
    // Zones top of the Purdue model first.
    assert!(t.find("Zone Z4-ENT").unwrap() < t.find("Zone Z1-CTRL").unwrap());
    assert!(t.contains("Modbus inspection: ON (zonegate, enforce)"));
    assert!(t.contains("Modbus inspection: OFF (no zonegate gateway)"));
    assert!(t.contains("1. ALLOW historian-read"));
    assert!(t.contains("DENY everything else (implicit default deny"));
    assert!(t.contains("Assets (3):"));
    assert!(t.contains("FAIL write-denied"));
    assert!(t.contains("ATTENTION"));
}

#[test]
fn flawed_report_lists_the_findings() {
    let site = load(&flawed_examples()[1]);
    let r = report::build(&site, Vec::new());
    assert!(r.summary.errors > 0);
    let t = report::render_text(&r);
    assert!(t.contains("[ERROR] ZG-C008"));
    assert!(t.contains("Commissioning probes: none included"));
}

#[test]
fn markdown_json_and_html() {
    for p in clean_examples() {
        let site = load(&p);
        let r = report::build(&site, vec![sample_probe()]);
        let m = report::render_markdown(&r);
        assert!(m.starts_with("# IEC 62443 Zone Implementation Report"));
        assert!(
            m.contains("## Zone architecture")
                && m.contains("## Conduit configuration")
                && m.contains("## Validation results")
        );
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["zones"].as_array().unwrap().len(), site.zones.len());
        assert_eq!(j["conduits"].as_array().unwrap().len(), site.conduits.len());
        let h = report::render_html(&r, &site);
        assert!(h.starts_with("<!DOCTYPE html>") && h.trim_end().ends_with("</html>"));
        assert!(h.contains("<style>") && h.contains("<svg"));
        // Self-contained: no external scripts, styles or images.
        assert!(!h.contains("<script") && !h.contains("<link") && !h.contains("src=\"http"));
        // One box per zone, one labelled line per zone pair of each conduit.
        assert_eq!(h.matches("<rect").count(), site.zones.len());
        for c in &site.conduits {
            assert!(h.contains(&format!("<title>{}</title>", c.id)), "{}", c.id);
        }
    }
}

#[test]
fn svg_puts_higher_purdue_levels_on_top() {
    let site = load(&examples().join("refinery-unit.yaml"));
    let svg = report::svg(&site);
    let y_of = |id: &str| -> f32 {
        let i = svg.find(&format!(">{id}</text>")).unwrap();
        let before = &svg[..i];
        let r = before.rfind("<rect").unwrap();
        let y = &before[r..];
        let ys = y.find("y=\"").unwrap() + 3;
        y[ys..ys + y[ys..].find('"').unwrap()].parse().unwrap()
    };
    assert!(y_of("Z4-ENT") < y_of("Z35-DMZ"));
    assert!(y_of("Z35-DMZ") < y_of("Z3-SITE"));
    assert!(y_of("Z2-OPS") < y_of("Z1-BPCS"));
    assert_eq!(y_of("Z1-BPCS"), y_of("Z1-SIS"));
}

#[test]
fn probe_results_round_trip() {
    let run = sample_probe();
    let one = serde_json::to_string(&run).unwrap();
    assert_eq!(
        zonegate_toolkit::probe::read_results(&one).unwrap(),
        vec![run.clone()]
    );
    let many = serde_json::to_string(&vec![run.clone(), run]).unwrap();
    assert_eq!(
        zonegate_toolkit::probe::read_results(&many).unwrap().len(),
        2
    );
    assert!(zonegate_toolkit::probe::read_results("{\"x\": 1}").is_err());
}
