//! Function classes grant only codes bound to the rule's tables (issue 14.6), the `file:` key
//! for FC 20/21, and `may_match_source`, the accept-time question of the gateway (14.1).

use std::net::IpAddr;
use std::time::Instant;

use zonegate_modbus::{Request, UnitId};
use zonegate_policy::*;

fn policy(rules: &str) -> Policy {
    let text = format!(
        "zones:\n  - zone_id: Z-OPS\n    networks: [10.30.0.0/16, \"fd00:30::/64\"]\nconduits:\n  - conduit_id: C1\n    rules:\n{rules}"
    );
    let model = load_str(&text, "classes.yaml").unwrap();
    Policy::compile(&model).unwrap()
}

fn decide(p: &Policy, src: &str, pdu: &[u8]) -> Reason {
    let limiter = RateLimiter::new(p);
    let request = Request::parse(pdu).unwrap();
    let tx = Transaction {
        src: src.parse().unwrap(),
        unit: UnitId::new(1),
        request: &request,
        role: None,
    };
    p.conduits()[0].decide(&tx, &limiter, Instant::now()).reason
}

/// FC 21 with one sub-request: `file`, `record`, `values`.
fn fc21(file: u16, record: u16, values: &[u16]) -> Vec<u8> {
    let mut sub = vec![6u8];
    sub.extend(file.to_be_bytes());
    sub.extend(record.to_be_bytes());
    sub.extend((values.len() as u16).to_be_bytes());
    for v in values {
        sub.extend(v.to_be_bytes());
    }
    let mut pdu = vec![21u8, sub.len() as u8];
    pdu.extend(sub);
    pdu
}

/// FC 20 with one sub-request: `file`, `record`, `length`.
fn fc20(file: u16, record: u16, length: u16) -> Vec<u8> {
    let mut pdu = vec![20u8, 7, 6];
    pdu.extend(file.to_be_bytes());
    pdu.extend(record.to_be_bytes());
    pdu.extend(length.to_be_bytes());
    pdu
}

fn fc6(address: u16, value: u16) -> Vec<u8> {
    [&[6u8][..], &address.to_be_bytes(), &value.to_be_bytes()].concat()
}

const WRITE_HOLDING: &str = "      - id: setpoints
        from: [Z-OPS]
        functions: [write]
        holding: 100-109
";

/// Regression (14.6): `functions: [write]` with `holding: 100-109` allowed FC 21 to write any
/// file record, because FC 21 touches no table and so passed the address check.
#[test]
fn write_class_with_holding_ranges_lets_fc21_write_any_file_record() {
    let p = policy(WRITE_HOLDING);
    assert_eq!(decide(&p, "10.30.0.5", &fc6(100, 1)), Reason::Allowed);
    assert_eq!(
        decide(&p, "10.30.0.5", &fc21(1, 0, &[0xDEAD])),
        Reason::Denied(Denial::NoRuleForFunction)
    );
    assert_eq!(
        decide(&p, "10.30.0.5", &fc21(9, 42, &[1, 2, 3])),
        Reason::Denied(Denial::NoRuleForFunction)
    );
}

#[test]
fn classes_grant_only_codes_bound_to_the_rules_tables() {
    let p = policy(
        "      - id: r
        from: [Z-OPS]
        functions: [read, write]
        holding: 0-9
        input: 0-9
      - id: c
        from: [10.40.0.0/24]
        functions: [write, diagnostics]
        coils: 0-7
",
    );
    let allowed = |rule: usize| -> Vec<u8> {
        (0u8..128)
            .filter(|&c| p.conduits()[0].rules()[rule].allows_function(c))
            .collect()
    };
    // read: 3, 4, 24 (FIFO pointer in holding); write on holding: 6, 16, 22, 23. Not FC 1, 2
    // (no coil or discrete ranges), FC 5, 15 (no coils), FC 21 (no `file:`).
    assert_eq!(allowed(0), [3, 4, 6, 16, 22, 23, 24]);
    // write on coils: 5, 15; diagnostics stay table-less and whole.
    assert_eq!(allowed(1), [5, 7, 8, 11, 12, 15, 17, 43]);
}

#[test]
fn a_function_named_explicitly_is_granted_with_or_without_a_table() {
    let p = policy(
        "      - id: r
        from: [Z-OPS]
        functions: [read_coils, write_file_record]
        holding: 0-9
",
    );
    // Named, so granted; FC 1 has no coil range, so it is denied at the address (0x02).
    let fc1 = [1u8, 0, 0, 0, 1];
    assert_eq!(
        decide(&p, "10.30.0.5", &fc1),
        Reason::Denied(Denial::AddressOutOfRange)
    );
    // FC 21 named without `file:` may touch any file record (a deliberate, visible grant).
    assert_eq!(decide(&p, "10.30.0.5", &fc21(77, 5, &[1])), Reason::Allowed);
}

#[test]
fn file_ranges_bound_file_record_access() {
    let p = policy(
        "      - id: recipes
        from: [Z-OPS]
        functions: [write, read_file_record]
        file: [\"4:0-99\", 6-7]
",
    );
    let rule = &p.conduits()[0].rules()[0];
    assert!(
        rule.allows_function(21),
        "`write` with `file:` grants FC 21"
    );
    assert!(!rule.allows_function(6), "no holding ranges: no FC 6");
    assert_eq!(
        rule.file_ranges()
            .map(|f| f.iter().map(ToString::to_string).collect::<Vec<_>>()),
        Some(vec!["4:0-99".to_owned(), "6-7".to_owned()])
    );
    let ok = Reason::Allowed;
    let out = Reason::Denied(Denial::AddressOutOfRange);
    assert_eq!(decide(&p, "10.30.0.5", &fc21(4, 0, &[1, 2])), ok);
    assert_eq!(decide(&p, "10.30.0.5", &fc21(4, 98, &[1, 2])), ok);
    assert_eq!(decide(&p, "10.30.0.5", &fc21(4, 99, &[1, 2])), out);
    assert_eq!(decide(&p, "10.30.0.5", &fc21(5, 0, &[1])), out);
    assert_eq!(decide(&p, "10.30.0.5", &fc21(7, 9999, &[1])), ok);
    assert_eq!(decide(&p, "10.30.0.5", &fc20(4, 90, 10)), ok);
    assert_eq!(decide(&p, "10.30.0.5", &fc20(4, 90, 11)), out);
    assert_eq!(decide(&p, "10.30.0.5", &fc20(3, 0, 1)), out);
    // Every sub-request must be inside: one good and one bad is denied.
    let mut two = fc20(4, 0, 1);
    two.extend_from_slice(&fc20(5, 0, 1)[2..]);
    two[1] = 14;
    assert_eq!(decide(&p, "10.30.0.5", &two), out);
}

#[test]
fn bad_file_ranges_are_load_errors() {
    for (entry, needle) in [
        ("[0]", "file number 0"),
        ("[\"4:0-10000\"]", "above 9999"),
        ("[]", "empty `file`"),
        ("[\"4:9-1\"]", "before it starts"),
        ("[\"x\"]", "x"),
    ] {
        let text = format!(
            "zones:\n  - zone_id: Z\n    networks: [10.0.0.0/8]\nconduits:\n  - conduit_id: C\n    rules:\n      - id: r\n        from: [Z]\n        functions: [write_file_record]\n        file: {entry}\n"
        );
        let errors = load_str(&text, "f.yaml").unwrap_err().to_string();
        assert!(
            errors.contains("conduits[0].rules[0].file") && errors.contains(needle),
            "{entry}: {errors}"
        );
    }
}

#[test]
fn may_match_source_is_true_only_for_sources_some_rule_names() {
    let p = policy(
        "      - id: a
        from: [Z-OPS]
        functions: [read]
        holding: 0
      - id: b
        from: [192.0.2.7]
        functions: [read]
        holding: 0
",
    );
    let c = &p.conduits()[0];
    let yes = |s: &str| c.may_match_source(s.parse::<IpAddr>().unwrap());
    assert!(yes("10.30.200.1"));
    assert!(yes("fd00:30::1"));
    assert!(yes("192.0.2.7"));
    assert!(yes("::ffff:192.0.2.7"), "IPv4-mapped IPv6 is IPv4");
    assert!(!yes("192.0.2.8"));
    assert!(!yes("10.31.0.1"));
    assert!(!yes("::1"));
    // A conduit without rules matches nobody.
    let empty = load_str("zones: []\nconduits:\n  - conduit_id: C\n", "e.yaml").unwrap();
    let empty = Policy::compile(&empty).unwrap();
    assert!(!empty.conduits()[0].may_match_source("10.0.0.1".parse().unwrap()));
}

#[test]
fn may_match_source_allocates_nothing() {
    let p = policy(WRITE_HOLDING);
    let c = &p.conduits()[0];
    let sources: [IpAddr; 3] = [
        "10.30.0.5".parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
        "::ffff:10.30.0.5".parse().unwrap(),
    ];
    let info = allocation_counter::measure(|| {
        for s in sources {
            std::hint::black_box(c.may_match_source(s));
        }
    });
    assert_eq!(info.count_total, 0, "may_match_source allocated: {info:?}");
}
