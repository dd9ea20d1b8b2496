//! Decision engine tests: every denial reason and exception code, FC 23's two ranges, FC 8
//! sub-function selection, IPv6 sources, the rate limiter on an injected clock, and a check
//! that `decide` allocates nothing.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use zonegate_modbus::{ExceptionCode, Request, UnitId};
use zonegate_policy::*;

const MODEL: &str = r#"
facility: Decide tests
zones:
  - zone_id: Z-OPS
    networks: [10.30.0.0/16, "fd00:30::/64"]
    assets:
      - {id: HIST-01, address: 10.30.0.5, kind: historian}
      - {id: EWS-01, address: 10.30.0.20, kind: ews}
  - zone_id: Z-ENG6
    assets:
      - {id: EWS-V6, address: "fd00:99::20", kind: ews}
  - zone_id: Z-CTRL
    networks: [10.20.0.0/16]
conduits:
  - conduit_id: C1
    connects: [Z-OPS, Z-CTRL]
    gateway: {listen: "127.0.0.1:5020", upstream: "tcp://127.0.0.1:502"}
    rules:
      - id: historian-read
        from: [Z-OPS]
        unit_ids: [1]
        functions: [read]
        holding: 0-199
        input: 0-99
        coils: 0-15
      - id: ews-setpoints
        from: [EWS-01, EWS-V6]
        functions: [write_single_register, write_multiple_registers, mask_write_register, write_single_coil]
        holding: 100-109
        coils: 0
        values: {min: 180, max: 240}
        rate: 2/s
      - id: diag-echo
        from: [Z-OPS]
        functions: ["diagnostics:0", read_device_identification]
        justification: "loopback test and device identification"
      - id: engineer-coils
        from: [10.40.0.0/24]
        roles: [engineer]
        functions: [write_single_coil, write_multiple_coils]
        coils: 0-7
      - id: fc23
        from: [10.50.0.1]
        functions: [23]
        holding: [0-9, 100-109]
      - id: unit-five
        from: [10.60.0.0/24]
        unit_ids: [5]
        functions: [read]
        holding: 0-9
"#;

fn policy() -> Policy {
    let model = load_str(MODEL, "decide.yaml").unwrap();
    Policy::compile(&model).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn be(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

fn fc3(start: u16, count: u16) -> Vec<u8> {
    [&[0x03][..], &be(start), &be(count)].concat()
}

fn fc5(addr: u16, on: bool) -> Vec<u8> {
    [&[0x05][..], &be(addr), &be(if on { 0xFF00 } else { 0 })].concat()
}

fn fc6(addr: u16, value: u16) -> Vec<u8> {
    [&[0x06][..], &be(addr), &be(value)].concat()
}

/// Appends quantity, byte count and the register values (FC 16 and FC 23 write part).
fn push_registers(v: &mut Vec<u8>, values: &[u16]) {
    v.extend(be(values.len() as u16));
    v.push((values.len() * 2) as u8);
    for x in values {
        v.extend(be(*x));
    }
}

fn fc16(start: u16, values: &[u16]) -> Vec<u8> {
    let mut v = vec![0x10];
    v.extend(be(start));
    push_registers(&mut v, values);
    v
}

fn fc22(addr: u16, and: u16, or: u16) -> Vec<u8> {
    [&[0x16][..], &be(addr), &be(and), &be(or)].concat()
}

fn fc23(rs: u16, rc: u16, ws: u16, values: &[u16]) -> Vec<u8> {
    let mut v = vec![0x17];
    v.extend(be(rs));
    v.extend(be(rc));
    v.extend(be(ws));
    push_registers(&mut v, values);
    v
}

fn fc8(sub: u16) -> Vec<u8> {
    [&[0x08][..], &be(sub), &be(0)].concat()
}

/// Decides `pdu` from `src` to unit `unit` on conduit C1 with a fresh limiter.
fn decide(
    p: &Policy,
    src: &str,
    unit: u8,
    pdu: &[u8],
    role: Option<&str>,
) -> (Reason, Option<String>) {
    let limiter = RateLimiter::new(p);
    decide_with(p, &limiter, Instant::now(), src, unit, pdu, role)
}

/// Asserts the reason for each (source, unit id, PDU, expected reason) row, without a role.
fn expect_reasons(p: &Policy, rows: &[(&str, u8, Vec<u8>, Reason)]) {
    for (i, (src, unit, pdu, want)) in rows.iter().enumerate() {
        let got = decide(p, src, *unit, pdu, None).0;
        assert_eq!(&got, want, "row {i}: {src} unit {unit} pdu {pdu:02x?}");
    }
}

fn decide_with(
    p: &Policy,
    limiter: &RateLimiter,
    now: Instant,
    src: &str,
    unit: u8,
    pdu: &[u8],
    role: Option<&str>,
) -> (Reason, Option<String>) {
    let request = Request::parse(pdu).unwrap();
    let tx = Transaction {
        src: ip(src),
        unit: UnitId::new(unit),
        request: &request,
        role,
    };
    let v = p.conduits()[0].decide(&tx, limiter, now);
    assert_eq!(v.is_allow(), v.reason == Reason::Allowed);
    assert_eq!(v.exception().is_none(), v.is_allow());
    (v.reason, v.rule.map(str::to_owned))
}

fn denied(d: Denial) -> Reason {
    Reason::Denied(d)
}

#[test]
fn allowed_read_names_its_rule() {
    let p = policy();
    let (r, rule) = decide(&p, "10.30.0.5", 1, &fc3(0, 10), None);
    assert_eq!(r, Reason::Allowed);
    assert_eq!(rule.as_deref(), Some("historian-read"));
    assert_eq!(r.as_str(), "allowed");
}

#[test]
fn unknown_source_is_0x01() {
    let p = policy();
    let (r, rule) = decide(&p, "192.0.2.1", 1, &fc3(0, 10), None);
    assert_eq!(r, denied(Denial::NoRuleForSource));
    assert_eq!(rule, None);
    assert_eq!(
        ExceptionCode::from(Denial::NoRuleForSource),
        ExceptionCode::IllegalFunction
    );
}

#[test]
fn wrong_unit_is_0x01() {
    let p = policy();
    let (r, rule) = decide(&p, "10.60.0.1", 6, &fc3(0, 1), None);
    assert_eq!(r, denied(Denial::NoRuleForUnit));
    assert_eq!(rule.as_deref(), Some("unit-five"));
    assert_eq!(
        decide(&p, "10.60.0.1", 5, &fc3(0, 1), None).0,
        Reason::Allowed
    );
}

#[test]
fn roles_are_required_when_named() {
    let p = policy();
    assert_eq!(
        decide(&p, "10.40.0.9", 1, &fc5(3, true), None).0,
        denied(Denial::RoleNotAllowed)
    );
    assert_eq!(
        decide(&p, "10.40.0.9", 1, &fc5(3, true), Some("viewer")).0,
        denied(Denial::RoleNotAllowed)
    );
    assert_eq!(
        decide(&p, "10.40.0.9", 1, &fc5(3, true), Some("engineer")).0,
        Reason::Allowed
    );
}

/// Regression: an Operator's write that only an Engineer rule allows was recorded as
/// `no_rule_for_function` (from the Operator's read rule), hiding that the role was the problem.
#[test]
fn role_only_denial_names_the_role_not_the_function() {
    let model = r#"
facility: Roles
zones:
  - zone_id: Z-OPS
    networks: [10.30.0.0/24]
  - zone_id: Z-CTRL
    networks: [10.20.0.0/16]
conduits:
  - conduit_id: C1
    connects: [Z-OPS, Z-CTRL]
    gateway: {listen: "127.0.0.1:5020", upstream: "tcp://127.0.0.1:502"}
    rules:
      - id: operator-read
        from: [Z-OPS]
        roles: [Operator, Engineer]
        functions: [read_holding_registers]
        holding: 0-199
      - id: engineer-write
        from: [Z-OPS]
        roles: [Engineer]
        functions: [write_single_register]
        holding: 100-109
      - id: anyone-input
        from: [Z-OPS]
        functions: [read_input_registers]
        input: 0-99
"#;
    let p = Policy::compile(&load_str(model, "roles.yaml").unwrap()).unwrap();
    let fc6 = [0x06, 0x00, 100, 0x00, 200];
    // Operator writes a setpoint: only the role stood in the way, and the rule says whose.
    let (r, rule) = decide(&p, "10.30.0.5", 1, &fc6, Some("Operator"));
    assert_eq!(r, denied(Denial::RoleNotAllowed));
    assert_eq!(rule.as_deref(), Some("engineer-write"));
    // The null role reads a holding register: the read rule wants a role.
    let (r, rule) = decide(&p, "10.30.0.5", 1, &fc3(100, 1), None);
    assert_eq!(r, denied(Denial::RoleNotAllowed));
    assert_eq!(rule.as_deref(), Some("operator-read"));
    // An address outside every rule, for a peer without a role: still 01, never a hint (02)
    // about which addresses exist.
    let (r, _) = decide(&p, "10.30.0.5", 1, &fc3(500, 1), None);
    assert_eq!(ExceptionCode::from(Denial::RoleNotAllowed).to_u8(), 0x01);
    assert!(matches!(
        r,
        Reason::Denied(Denial::RoleNotAllowed | Denial::NoRuleForFunction)
    ));
    // The Operator reading outside its range learns the range (it may read there).
    let (r, _) = decide(&p, "10.30.0.5", 1, &fc3(500, 1), Some("Operator"));
    assert_eq!(r, denied(Denial::AddressOutOfRange));
    // An Engineer write is allowed, by its rule.
    let (r, rule) = decide(&p, "10.30.0.5", 1, &fc6, Some("Engineer"));
    assert_eq!(r, Reason::Allowed);
    assert_eq!(rule.as_deref(), Some("engineer-write"));
}

#[test]
fn function_not_allowed_is_0x01() {
    let p = policy();
    let (r, _) = decide(&p, "10.30.0.5", 1, &fc16(0, &[1]), None);
    assert_eq!(r, denied(Denial::NoRuleForFunction));
    assert_eq!(ExceptionCode::from(Denial::NoRuleForFunction).to_u8(), 0x01);
}

#[test]
fn address_outside_is_0x02() {
    let p = policy();
    assert_eq!(
        decide(&p, "10.30.0.5", 1, &fc3(100, 100), None).0,
        Reason::Allowed
    );
    let (r, rule) = decide(&p, "10.30.0.5", 1, &fc3(199, 2), None);
    assert_eq!(r, denied(Denial::AddressOutOfRange));
    assert_eq!(rule.as_deref(), Some("historian-read"));
    assert_eq!(ExceptionCode::from(Denial::AddressOutOfRange).to_u8(), 0x02);
    // A table the rule gives no range allows no address (ews-setpoints names FC 5 and gives
    // one coil; FC 2 under `[read]` without discrete ranges is not granted at all, see
    // classes_grant_only_codes_bound_to_the_rules_tables).
    assert_eq!(
        decide(&p, "10.30.0.20", 1, &fc5(1, true), None).0,
        denied(Denial::AddressOutOfRange)
    );
    assert_eq!(
        decide(&p, "10.30.0.20", 1, &fc6(110, 200), None).0,
        denied(Denial::AddressOutOfRange)
    );
}

#[test]
fn written_values_out_of_bounds_are_0x03() {
    let out = denied(Denial::ValueOutOfBounds);
    expect_reasons(
        &policy(),
        &[
            ("10.30.0.20", 1, fc6(105, 200), Reason::Allowed),
            ("10.30.0.20", 1, fc6(105, 300), out),
            ("10.30.0.20", 1, fc16(100, &[180, 240]), Reason::Allowed),
            // Every value is checked, not only the first.
            ("10.30.0.20", 1, fc16(100, &[200, 241]), out),
            // A coil writes 0 or 1, outside {180..240}.
            ("10.30.0.20", 1, fc5(0, true), out),
        ],
    );
    assert_eq!(ExceptionCode::from(Denial::ValueOutOfBounds).to_u8(), 0x03);
}

#[test]
fn negative_min_reads_registers_as_int16() {
    let text = MODEL.replace(
        "values: {min: 180, max: 240}",
        "values: {min: -50, max: 50}",
    );
    let p = Policy::compile(&load_str(&text, "s.yaml").unwrap()).unwrap();
    for (raw, ok) in [
        (0xFFCE, true),
        (0xFFCD, false),
        (50, true),
        (51, false),
        (0x8000, false),
    ] {
        let r = decide(&p, "10.30.0.20", 1, &fc6(100, raw), None).0;
        assert_eq!(r == Reason::Allowed, ok, "raw {raw:#06x}: {r}");
    }
    let e = load_str(
        &MODEL.replace(
            "values: {min: 180, max: 240}",
            "values: {min: -1, max: 40000}",
        ),
        "s.yaml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("must be at most 32767"), "{e}");
}

#[test]
fn mask_write_under_value_bounds() {
    expect_reasons(
        &policy(),
        &[
            // AND mask 0: the result is the OR mask, which can be checked.
            ("10.30.0.20", 1, fc22(100, 0, 200), Reason::Allowed),
            (
                "10.30.0.20",
                1,
                fc22(100, 0, 100),
                denied(Denial::ValueOutOfBounds),
            ),
            // Otherwise the result depends on the device's current value: denied, 0x03.
            (
                "10.30.0.20",
                1,
                fc22(100, 0xFF00, 0x00C8),
                denied(Denial::ValueUnverifiable),
            ),
        ],
    );
    assert_eq!(ExceptionCode::from(Denial::ValueUnverifiable).to_u8(), 0x03);
}

#[test]
fn fc23_checks_both_ranges() {
    let out = denied(Denial::AddressOutOfRange);
    expect_reasons(
        &policy(),
        &[
            (
                "10.50.0.1",
                1,
                fc23(0, 10, 100, &[1, 2, 3]),
                Reason::Allowed,
            ),
            // Read part out of range.
            ("10.50.0.1", 1, fc23(0, 11, 100, &[1]), out),
            // Write part out of range.
            ("10.50.0.1", 1, fc23(0, 1, 108, &[1, 2, 3]), out),
            // The two allowed ranges are not merged into one: 10..=99 is outside.
            ("10.50.0.1", 1, fc23(50, 1, 100, &[1]), out),
        ],
    );
}

#[test]
fn fc8_sub_function_selection() {
    let p = policy();
    assert_eq!(decide(&p, "10.30.0.5", 3, &fc8(0), None).0, Reason::Allowed);
    // Sub-function 4, Force Listen Only Mode, is not selected.
    let (r, rule) = decide(&p, "10.30.0.5", 3, &fc8(4), None);
    assert_eq!(r, denied(Denial::NoRuleForFunction));
    assert_eq!(rule.as_deref(), Some("diag-echo"));
    // FC 43 / MEI 14 via read_device_identification, touches no table.
    let fc43 = [0x2B, 0x0E, 0x01, 0x00];
    assert_eq!(decide(&p, "10.30.0.5", 3, &fc43, None).0, Reason::Allowed);
    // FC 17 is a diagnostics-class code that was not selected.
    assert_eq!(
        decide(&p, "10.30.0.5", 3, &[0x11], None).0,
        denied(Denial::NoRuleForFunction)
    );
}

#[test]
fn ipv6_sources() {
    let nobody = denied(Denial::NoRuleForSource);
    expect_reasons(
        &policy(),
        &[
            // Zone network in IPv6.
            ("fd00:30::9", 1, fc3(0, 1), Reason::Allowed),
            // IPv4-mapped IPv6 is the IPv4 address.
            ("::ffff:10.30.0.5", 1, fc3(0, 1), Reason::Allowed),
            // Asset with an IPv6 address.
            ("fd00:99::20", 1, fc6(100, 200), Reason::Allowed),
            ("fd00:99::21", 1, fc6(100, 200), nobody),
            ("fd00:31::1", 1, fc3(0, 1), nobody),
        ],
    );
}

#[test]
fn rate_limit_is_0x06_and_refills_on_the_injected_clock() {
    let p = policy();
    let limiter = RateLimiter::new(&p);
    let t0 = Instant::now();
    let w = fc6(100, 200);
    let at = |t: Instant, src: &str| decide_with(&p, &limiter, t, src, 1, &w, None);
    assert_eq!(at(t0, "10.30.0.20").0, Reason::Allowed);
    assert_eq!(at(t0, "10.30.0.20").0, Reason::Allowed);
    let (r, rule) = at(t0, "10.30.0.20");
    assert_eq!(r, denied(Denial::RateLimited));
    assert_eq!(rule.as_deref(), Some("ews-setpoints"));
    assert_eq!(ExceptionCode::from(Denial::RateLimited).to_u8(), 0x06);
    // Per source: the IPv6 workstation has its own bucket.
    assert_eq!(at(t0, "fd00:99::20").0, Reason::Allowed);
    // Half a second later one token is back (2/s).
    let t1 = t0 + Duration::from_millis(499);
    assert_eq!(at(t1, "10.30.0.20").0, denied(Denial::RateLimited));
    let t2 = t0 + Duration::from_millis(500);
    assert_eq!(at(t2, "10.30.0.20").0, Reason::Allowed);
    assert_eq!(at(t2, "10.30.0.20").0, denied(Denial::RateLimited));
    // Denied requests consume no tokens: a bad value does not drain the bucket.
    let t3 = t0 + Duration::from_secs(10);
    for _ in 0..5 {
        let bad = decide_with(&p, &limiter, t3, "10.30.0.20", 1, &fc6(100, 999), None).0;
        assert_eq!(bad, denied(Denial::ValueOutOfBounds));
    }
    assert_eq!(at(t3, "10.30.0.20").0, Reason::Allowed);
}

#[test]
fn every_denial_has_a_stable_name_and_code() {
    let table = [
        (Denial::NoRuleForSource, "no_rule_for_source", 0x01),
        (Denial::NoRuleForUnit, "no_rule_for_unit", 0x01),
        (Denial::RoleNotAllowed, "role_not_allowed", 0x01),
        (Denial::NoRuleForFunction, "no_rule_for_function", 0x01),
        (Denial::AddressOutOfRange, "address_out_of_range", 0x02),
        (Denial::ValueOutOfBounds, "value_out_of_bounds", 0x03),
        (Denial::ValueUnverifiable, "value_unverifiable", 0x03),
        (Denial::RateLimited, "rate_limited", 0x06),
    ];
    assert_eq!(table.len(), Denial::ALL.len());
    for (d, name, code) in table {
        assert_eq!(d.as_str(), name);
        assert_eq!(Reason::Denied(d).as_str(), name);
        assert_eq!(ExceptionCode::from(d).to_u8(), code);
    }
}

#[test]
fn allocation_counter_is_installed() {
    let info = allocation_counter::measure(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert!(
        info.count_total >= 1,
        "the counting allocator is not active"
    );
}

#[test]
fn decide_allocates_nothing() {
    let p = policy();
    let limiter = RateLimiter::new(&p);
    let t0 = Instant::now();
    let cases: Vec<(IpAddr, Vec<u8>)> = vec![
        (ip("10.30.0.5"), fc3(0, 10)),
        (ip("192.0.2.1"), fc3(0, 10)),
        (ip("10.30.0.5"), fc3(199, 2)),
        (ip("10.30.0.20"), fc16(100, &[200, 300])),
        (ip("10.30.0.20"), fc6(100, 200)),
        (ip("10.50.0.1"), fc23(0, 10, 100, &[1, 2])),
        (ip("fd00:30::9"), fc8(4)),
    ];
    let requests: Vec<Request<'_>> = cases
        .iter()
        .map(|(_, pdu)| Request::parse(pdu).unwrap())
        .collect();
    let conduit = &p.conduits()[0];
    let info = allocation_counter::measure(|| {
        for _ in 0..4 {
            for ((src, _), request) in cases.iter().zip(&requests) {
                let tx = Transaction {
                    src: *src,
                    unit: UnitId::new(1),
                    request,
                    role: None,
                };
                let v = conduit.decide(&tx, &limiter, t0);
                std::hint::black_box((v.reason.as_str(), v.exception()));
            }
        }
    });
    assert_eq!(info.count_total, 0, "decide allocated: {info:?}");
}

#[test]
fn compile_rejects_sources_without_addresses_and_listen_clashes() {
    let text = r#"
zones:
  - zone_id: Z-PAPER
    assets: ["a controller somewhere"]
  - zone_id: Z-NET
    networks: [10.0.0.0/8]
conduits:
  - conduit_id: C1
    gateway: {listen: "127.0.0.1:5020", upstream: "tcp://127.0.0.1:502"}
    rules:
      - id: r
        from: [Z-PAPER, Z-NET]
        functions: [read]
  - conduit_id: C2
    gateway: {listen: "127.0.0.1:5020", upstream: "tcp://127.0.0.1:503"}
"#;
    let model = load_str(text, "m.yaml").unwrap();
    let errs = Policy::compile(&model).unwrap_err();
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(msgs[0].starts_with(
        "m.yaml:12:16: conduits[0].rules[0].from[0]: `Z-PAPER` resolves to no address"
    ));
    assert!(msgs[1].contains("conduits[1].gateway.listen") && msgs[1].contains("C1"));
}

#[test]
fn policy_exposes_gateways_and_hash() {
    let model = load_str(MODEL, "decide.yaml").unwrap();
    let p = Policy::compile(&model).unwrap();
    assert_eq!(p.policy_hash(), model.policy_hash());
    assert_eq!(p.policy_hash().len(), 64);
    let c = p.conduit("C1").unwrap();
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.listen.port(), 5020);
    assert_eq!(g.request_timeout, Duration::from_secs(2));
    assert_eq!(c.rules().len(), 6);
    assert!(p.has_rate_limits());
    // Same text, same hash; one byte more, another hash.
    let again = load_str(MODEL, "other-name.yaml").unwrap();
    assert_eq!(again.policy_hash(), model.policy_hash());
    let changed = load_str(&format!("{MODEL}\n"), "decide.yaml").unwrap();
    assert_ne!(changed.policy_hash(), model.policy_hash());
}

#[test]
fn rate_limiter_is_exact_under_concurrency() {
    let limiter = RateLimiter::with_capacity(1024);
    let rate = Rate {
        count: 50,
        per: Duration::from_secs(60),
    };
    let now = Instant::now();
    let src = ip("10.30.0.20");
    let allowed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    if limiter.try_acquire(42, src, rate, now) {
                        allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.into_inner(), 50);
}

#[test]
fn limiter_keeps_buckets_across_a_reload_of_the_same_rule() {
    let p1 = policy();
    let limiter = RateLimiter::new(&p1);
    let t0 = Instant::now();
    let w = fc6(100, 200);
    for _ in 0..2 {
        assert_eq!(
            decide_with(&p1, &limiter, t0, "10.30.0.20", 1, &w, None).0,
            Reason::Allowed
        );
    }
    // A reload of an equivalent model (here: with a comment added) must not refill the bucket.
    let model = load_str(&format!("# reloaded\n{MODEL}"), "decide.yaml").unwrap();
    let p2 = Policy::compile(&model).unwrap();
    assert_eq!(
        decide_with(&p2, &limiter, t0, "10.30.0.20", 1, &w, None).0,
        denied(Denial::RateLimited)
    );
}
