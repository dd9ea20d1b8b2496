//! Regression tests for issue 8 (report, check and compile claim only what zonegate does) and
//! the `check` warnings of issue 14.6, each named after the bug it fixes.

use zonegate_toolkit::check::{self, Severity};
use zonegate_toolkit::{compile, report};

use super::util::{examples, findings, site, with, with_id};

/// BASE with its gateway forwarding to a serial line.
fn rtu_model() -> String {
    with(&[(
        "upstream: tcp://10.1.0.10:502",
        "upstream: rtu:///dev/ttyUSB0?baud=9600&parity=even",
    )])
}

/// A model `check` reports an error for: cleartext Modbus on SL-T 3 zones (ZG-C013).
fn erroneous_model() -> String {
    rtu_model().replace("security_level_target: 2", "security_level_target: 3")
}

#[test]
fn rtu_conduit_reported_as_enforced_although_run_refuses_it() {
    // Issue 8: this was reported enforced while `zonegate run` refused rtu://. Issue 11 made
    // run serve rtu://: now it is enforced, and the report says so, and what it does not see.
    let s = site(&rtu_model());
    let r = report::build(&s, Vec::new());
    let c1 = r.conduits.iter().find(|c| c.id == "C1").unwrap();
    assert!(
        c1.inspection
            .starts_with("ON (zonegate, enforce); RTU bus master"),
        "{}",
        c1.inspection
    );
    assert!(c1.inspection.contains("other masters on the line are not"));
    assert!(c1.default_action.contains("DENY everything else"));
    assert_eq!(r.summary.enforced_conduits, 1);
    let t = report::render_text(&r);
    assert!(t.contains("Modbus inspection: ON"), "{t}");
    // The same conduit with a tcp:// upstream is credited without the bus note.
    let r = report::build(&site(&with(&[])), Vec::new());
    assert_eq!(r.summary.enforced_conduits, 1);
    assert!(report::render_text(&r).contains("Modbus inspection: ON (zonegate, enforce)"));
}

#[test]
fn check_says_ok_for_a_gateway_run_refuses() {
    // Every upstream kind this build parses is runnable since issue 11 (rtu://, rtu+tcp://):
    // ZG-C031 stays for kinds a later model version may add, and must not fire on these.
    assert!(with_id(&findings(&rtu_model()), "ZG-C031").is_empty());
    let converter = with(&[(
        "upstream: tcp://10.1.0.10:502",
        "upstream: rtu+tcp://10.1.0.20:4001",
    )]);
    assert!(with_id(&findings(&converter), "ZG-C031").is_empty());
    assert!(!report::build(&site(&rtu_model()), Vec::new()).has_errors());
    assert!(with_id(&findings(&with(&[])), "ZG-C031").is_empty());
    assert!(!report::build(&site(&with(&[])), Vec::new()).has_errors());
}

#[test]
fn report_lists_functions_a_rule_can_never_allow() {
    // `read` with only holding and input ranges: the gateway denies FC 1 and 2 (no coil or
    // discrete range), so the report must not list them as allowed.
    let y = with(&[(
        "functions: [read_holding_registers]\n        holding: 0-99",
        "functions: [read]\n        holding: 0-99\n        input: 0-9",
    )]);
    let r = report::build(&site(&y), Vec::new());
    let rule = &r.conduits.iter().find(|c| c.id == "C1").unwrap().rules[0];
    assert!(
        rule.functions.contains("read_holding_registers (3)"),
        "{}",
        rule.functions
    );
    assert!(
        rule.functions.contains("read_input_registers (4)"),
        "{}",
        rule.functions
    );
    assert!(!rule.functions.contains("read_coils"), "{}", rule.functions);
    assert!(
        !rule.functions.contains("read_discrete_inputs"),
        "{}",
        rule.functions
    );
    assert_eq!(
        rule.never_allowed,
        vec!["read_coils (1)", "read_discrete_inputs (2)"]
    );
    assert!(report::render_text(&r).contains("named but never allowed: read_coils (1)"));
}

#[test]
fn class_with_no_table_to_act_on_is_not_flagged() {
    // `write` next to an input range only: input registers are read-only, so no write of the
    // class acts on a table the rule names.
    let y = with(&[(
        "functions: [write_single_register]\n        holding: 10-19",
        "functions: [write]\n        input: 10-19\n        justification: \"test\"",
    )]);
    let f = findings(&y);
    let hits = with_id(&f, "ZG-C032");
    assert_eq!(hits.len(), 1, "{f:#?}");
    assert!(
        hits[0].message.contains("class write"),
        "{}",
        hits[0].message
    );
    // A class with one usable table is fine.
    assert!(with_id(&findings(&with(&[])), "ZG-C032").is_empty());
}

#[test]
fn write_class_lets_fc21_write_any_file_record_unflagged() {
    let y = with(&[(
        "functions: [write_single_register]\n        holding: 10-19",
        "functions: [write]\n        holding: 10-19\n        justification: \"test\"",
    )]);
    let s = site(&y);
    let c1 = s.conduits.iter().find(|c| c.id == "C1").unwrap();
    // What the compiled policy decides about FC 21 under the class is what check reports.
    let fc21_allowed = s.rules(c1)[1].functions().contains(&21);
    let hits = with_id(&check::check(&s), "ZG-C033")
        .into_iter()
        .filter(|h| h.element == "C1/ews-write")
        .count();
    assert_eq!(
        hits,
        usize::from(fc21_allowed),
        "FC 21 allowed: {fc21_allowed}"
    );
    // Named explicitly, it is meant: no warning.
    let y = with(&[(
        "functions: [write_single_register]\n        holding: 10-19",
        "functions: [write_single_register, write_file_record]\n        holding: 10-19\n        justification: \"recipe download\"",
    )]);
    assert!(with_id(&findings(&y), "ZG-C033").is_empty());
}

#[test]
fn fifo_read_checked_only_at_its_pointer_unflagged() {
    let y = with(&[(
        "functions: [read_holding_registers]",
        "functions: [read_holding_registers, read_fifo_queue]",
    )]);
    let f = findings(&y);
    let hits = with_id(&f, "ZG-C034");
    assert_eq!(hits.len(), 1, "{f:#?}");
    assert_eq!(hits[0].severity, Severity::Warning);
    assert!(hits[0].message.contains("pointer"), "{}", hits[0].message);
    assert!(with_id(&findings(&with(&[])), "ZG-C034").is_empty());
}

#[test]
fn gateway_listening_on_every_interface_is_not_flagged() {
    for listen in ["0.0.0.0:5020", "\"[::]:5020\""] {
        let y = with(&[("listen: 127.0.0.1:5020", &format!("listen: {listen}"))]);
        let f = findings(&y);
        let hits = with_id(&f, "ZG-C035");
        assert_eq!(hits.len(), 1, "{listen}: {f:#?}");
        assert_eq!(hits[0].severity, Severity::Warning);
    }
    assert!(with_id(&findings(&with(&[])), "ZG-C035").is_empty());
}

#[test]
fn html_report_shows_literal_backticks() {
    let y = with(&[(
        "rate: 10/s",
        "rate: 10/s\n        justification: \"see `MOC-7` and `zonegate log verify`\"",
    )]);
    let s = site(&y);
    let h = report::render_html(&report::build(&s, Vec::new()), &s);
    assert!(h.contains("<code>MOC-7</code>"), "{h}");
    let body = &h[h.find("<body>").unwrap()..];
    assert!(!body.contains('`'), "literal backtick in the HTML body");
}

#[test]
fn markdown_and_html_reports_lack_the_overall_line() {
    let s = site(&with(&[]));
    let r = report::build(&s, Vec::new());
    let want = format!("Overall: {}", r.overall());
    assert!(report::render_text(&r).contains(&want));
    assert!(report::render_markdown(&r).contains(&want));
    assert!(report::render_html(&r, &s).contains(&want));
    let bad = site(&erroneous_model());
    let r = report::build(&bad, Vec::new());
    assert!(report::render_markdown(&r).contains("Overall: ATTENTION"));
}

#[test]
fn serial_conduit_shows_port_dash() {
    let y = with(&[(
        "        direction: \"Z2 -> DMZ\"",
        "        direction: \"Z2 -> DMZ\"\n      - protocol: Modbus RTU over RS-485\n        direction: \"Z2 -> DMZ\"",
    )]);
    let r = report::build(&site(&y), Vec::new());
    let t = report::render_text(&r);
    let m = report::render_markdown(&r);
    assert!(t.contains("    - Modbus RTU over RS-485: Z2 -> DMZ"), "{t}");
    assert!(!t.contains("(port -)") && !m.contains("(port -)"));
    assert!(t.contains("HTTPS (port 443)"));
}

#[test]
fn zone_security_requirements_listed_under_controls() {
    let y = with(&[(
        "    allowed_conduits: [C1]\nconduits:",
        "    security_requirements: [\"Setpoints bounded at the boundary\"]\n    allowed_conduits: [C1]\nconduits:",
    )]);
    let s = site(&y);
    let r = report::build(&s, Vec::new());
    let z1 = r.zones.iter().find(|z| z.id == "Z1").unwrap();
    assert_eq!(
        z1.security_requirements,
        vec!["Setpoints bounded at the boundary"]
    );
    let t = report::render_text(&r);
    let at = t.find("Zone Z1 ").unwrap();
    let zone = &t[at..at + t[at..].find("\n\n").unwrap()];
    assert!(
        zone.contains("  Security requirements:\n    - Setpoints bounded"),
        "{zone}"
    );
    assert!(!zone.contains("Controls:"), "{zone}");
    let h = report::render_html(&r, &s);
    assert!(h.contains("<th>Security requirements</th>"));
}

#[test]
fn nftables_comment_has_markdown_underscores() {
    // The bug: `# note: C0-CTRL-FIELD: _Modbus RTU over RS-485_ has no port` (the quotes of a
    // Debug string turned into underscores).
    for target in [compile::Target::Nftables, compile::Target::Iptables] {
        let text = compile::render(
            &super::util::load(&examples().join("cleanroom-hvac.yaml")),
            target,
        );
        let note = text
            .lines()
            .find(|l| l.contains("has no port"))
            .unwrap_or_else(|| panic!("no note on the serial conduit:\n{text}"));
        assert!(note.contains(": Modbus RTU"), "{note}");
        for line in text
            .lines()
            .filter(|l| l.starts_with('#') || l.contains("comment"))
        {
            assert!(!line.contains(" _") && !line.contains("_ "), "{line}");
        }
    }
}

#[test]
fn check_run_on_the_policy_model_is_the_same_analysis() {
    let y = erroneous_model();
    let model = zonegate_policy::load_str(&y, "test.yaml").unwrap();
    let f = check::run(&model);
    assert_eq!(f, findings(&y));
    assert!(check::has_errors(&f));
    assert!(!check::has_errors(&check::run(
        &zonegate_policy::load_str(&with(&[]), "test.yaml").unwrap()
    )));
}

#[test]
fn a_rule_naming_only_higher_file_numbers_is_reported_as_allowing_nothing() {
    // `[write]` with only `file: ["4:0-99"]` allows FC 21 inside file 4, records 0-99 (the
    // policy crate's class binding); the toolkit probed FC 21 at file 1 only, so the report
    // said "functions: none" and ZG-C032 called the class useless.
    let y = with(&[(
        "functions: [write_single_register]\n        holding: 10-19\n        values: {min: 0, max: 100}",
        "functions: [write]\n        file: [\"4:0-99\"]\n        justification: \"recipes\"",
    )]);
    let r = report::build(&site(&y), Vec::new());
    let rule = r
        .conduits
        .iter()
        .flat_map(|c| &c.rules)
        .find(|r| r.functions.contains("write_file_record"))
        .unwrap_or_else(|| panic!("no rule allows FC 21: {:#?}", r.conduits));
    assert!(
        rule.functions.contains("write_file_record (21)"),
        "{}",
        rule.functions
    );
    let f = findings(&y);
    assert!(with_id(&f, "ZG-C032").is_empty(), "{f:#?}");
    assert!(with_id(&f, "ZG-C033").is_empty(), "{f:#?}");
}

#[test]
fn compile_says_no_firewall_rule_reaches_a_serial_upstream() {
    // Issue 11: an rtu:// gateway runs; `compile` must not suggest its bus is filtered.
    let plan = compile::plan(&site(&rtu_model()));
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("rtu:///dev/ttyUSB0") && n.contains("serial line")),
        "{:?}",
        plan.notes
    );
    assert!(!compile::plan(&site(&with(&[])))
        .notes
        .iter()
        .any(|n| n.contains("serial line")));
}

#[test]
fn a_serial_listener_is_reported_as_a_line_not_a_tcp_port() {
    // Issue 11: `listen: rtu://` has no socket; report, compile and the threat model say so.
    let y = with(&[(
        "listen: 127.0.0.1:5020",
        "listen: rtu:///dev/ttyS3?baud=19200&parity=none",
    )]);
    let s = site(&y);
    let r = report::build(&s, Vec::new());
    let text = report::render_text(&r);
    assert!(text.contains("listen rtu:///dev/ttyS3"), "{text}");
    let plan = compile::plan(&s);
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("serial line rtu:///dev/ttyS3")),
        "{:?}",
        plan.notes
    );
    assert!(
        plan.flows.iter().all(|f| f.conduit != "C1"),
        "{:?}",
        plan.flows
    );
}
