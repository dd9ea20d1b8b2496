//! Property tests of the set logic against naive models: address-range containment and CIDR
//! membership.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use zonegate_policy::{AddressSet, Cidr, U16Range};

fn range() -> impl Strategy<Value = U16Range> {
    (0u16..400, 0u16..60).prop_map(|(s, len)| U16Range {
        start: s,
        end: s.saturating_add(len),
    })
}

proptest! {
    #[test]
    fn contains_span_matches_naive(ranges in proptest::collection::vec(range(), 0..6),
                                   first in 0u16..480, len in 0u16..80) {
        let set = AddressSet::new(ranges.clone());
        let last = first.saturating_add(len);
        let naive = (first..=last).all(|a| ranges.iter().any(|r| r.start <= a && a <= r.end));
        prop_assert_eq!(set.contains_span(first, last), naive);
        // The merged form holds exactly the same addresses.
        let count = (0u32..=500).filter(|a| ranges.iter().any(|r| u32::from(r.start) <= *a && *a <= u32::from(r.end))).count();
        prop_assert_eq!(set.len() as usize, count);
    }

    #[test]
    fn cidr_contains_matches_naive(net in any::<u32>(), prefix in 0u8..=32, probe in any::<u32>()) {
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
        let cidr = Cidr::new(IpAddr::V4(Ipv4Addr::from(net & mask)), prefix).unwrap();
        let naive = probe & mask == net & mask;
        prop_assert_eq!(cidr.contains(IpAddr::V4(Ipv4Addr::from(probe))), naive);
        // The same address as IPv4-mapped IPv6 gives the same answer.
        let mapped = IpAddr::V6(Ipv4Addr::from(probe).to_ipv6_mapped());
        prop_assert_eq!(cidr.contains(mapped), naive);
    }
}

const DESIGN: &str = include_str!("data/design-complete.yaml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Mangled model files never panic the loader, and every error has a position.
    #[test]
    fn mangled_models_fail_cleanly(cut in 0usize..DESIGN.len(), at in 0usize..DESIGN.len(),
                                   junk in "[ -~\n]{0,12}") {
        let mut text = DESIGN[..cut].to_owned();
        let at = at.min(text.len());
        if text.is_char_boundary(at) {
            text.insert_str(at, &junk);
        }
        zonegate_policy::fuzzing::fuzz_load(text.as_bytes());
    }
}

/// Regression (14.10): this test used to pass even if the examples stopped loading, because
/// the fuzz entry point returned nothing. Every seed of the fuzz corpus, the design example
/// and the repository's examples must get all the way to deciding requests (the flawed ones,
/// with their deliberate errors, at least to a loaded model).
#[test]
fn fuzz_entry_point_accepts_the_examples() {
    use zonegate_policy::fuzzing::{fuzz_load, Reached};
    assert_eq!(fuzz_load(DESIGN.as_bytes()), Reached::Decided);
    assert_eq!(
        fuzz_load(include_bytes!("data/descriptive.yaml")),
        Reached::Decided
    );
    assert_eq!(fuzz_load(b"\xff\xfe"), Reached::Rejected);
    assert_eq!(fuzz_load(b"zones: [\n"), Reached::Rejected);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seeds = 0;
    for dir in ["fuzz/corpus/model_load", "examples", "examples/flawed"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no model in {dir}");
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy();
            // The flawed examples carry deliberate compile errors (a zone without addresses,
            // overlapping networks): they must still load, the others decide.
            let want = if name.starts_with("flawed") || dir.ends_with("flawed") {
                Reached::Loaded
            } else {
                Reached::Decided
            };
            let got = fuzz_load(&bytes);
            assert!(
                got == want || got == Reached::Decided,
                "{}: reached {got:?}, want {want:?}",
                f.display()
            );
            seeds += 1;
        }
    }
    assert!(seeds >= 12, "only {seeds} seeds and examples found");
}

mod engine {
    //! `decide` against a naive restatement of docs/DESIGN.md's rules, over random rule sets and
    //! requests: first rule that allows wins; otherwise the most specific failure.

    use std::net::IpAddr;
    use std::time::Instant;

    use proptest::prelude::*;
    use zonegate_modbus::{Request, UnitId};
    use zonegate_policy::{load_str, Denial, Policy, RateLimiter, Reason, Transaction};

    #[derive(Debug, Clone)]
    struct R {
        from: Vec<usize>,
        units: Option<Vec<u8>>,
        functions: Vec<usize>,
        holding: Vec<(u16, u16)>,
        values: Option<(u16, u16)>,
    }

    const FROM: [&str; 3] = ["Z-A", "Z-B", "10.1.5.0/24"];
    const FUNCTIONS: [&str; 7] = ["read", "3", "6", "16", "23", "\"8:0\"", "write"];
    const SOURCES: [&str; 5] = ["10.1.5.9", "10.1.9.9", "10.2.0.1", "fd00:2::1", "10.3.0.1"];

    fn from_matches(from: usize, src: &str) -> bool {
        let ip: IpAddr = src.parse().unwrap();
        let net = |s: &str| s.parse::<zonegate_policy::Cidr>().unwrap().contains(ip);
        match from {
            0 => net("10.1.0.0/16"),
            1 => net("10.2.0.0/16") || net("fd00:2::/64"),
            _ => net("10.1.5.0/24"),
        }
    }

    /// A class grants only the codes bound to a table the rule has ranges for (here only
    /// holding ranges are generated): `read` = 3, 24 and `write` = 6, 16, 22, 23 then.
    fn function_matches(f: usize, has_holding: bool, code: u8, sub: Option<u16>) -> bool {
        match f {
            0 => has_holding && [3, 24].contains(&code),
            1 => code == 3,
            2 => code == 6,
            3 => code == 16,
            4 => code == 23,
            5 => code == 8 && sub == Some(0),
            _ => has_holding && [6, 16, 22, 23].contains(&code),
        }
    }

    fn rule() -> impl Strategy<Value = R> {
        (
            proptest::sample::subsequence(vec![0usize, 1, 2], 1..=3),
            proptest::option::of(proptest::sample::subsequence(vec![1u8, 2], 1..=2)),
            proptest::sample::subsequence((0..FUNCTIONS.len()).collect::<Vec<_>>(), 1..=3),
            proptest::collection::vec((0u16..200, 0u16..40), 0..3),
            proptest::option::of((0u16..300, 0u16..300)),
        )
            .prop_map(|(from, units, functions, holding, values)| R {
                from,
                units,
                functions,
                holding: holding.into_iter().map(|(s, l)| (s, s + l)).collect(),
                values: values.map(|(a, b)| (a.min(b), a.max(b))),
            })
    }

    fn yaml(rules: &[R]) -> String {
        let mut y = String::from(
            "zones:\n  - zone_id: Z-A\n    networks: [10.1.0.0/16]\n  - zone_id: Z-B\n    networks: [10.2.0.0/16, \"fd00:2::/64\"]\nconduits:\n  - conduit_id: C\n    rules:\n",
        );
        for (i, r) in rules.iter().enumerate() {
            let from: Vec<&str> = r.from.iter().map(|f| FROM[*f]).collect();
            let fns: Vec<&str> = r.functions.iter().map(|f| FUNCTIONS[*f]).collect();
            y.push_str(&format!(
                "      - id: r{i}\n        from: [{}]\n        functions: [{}]\n",
                from.join(", "),
                fns.join(", ")
            ));
            if let Some(u) = &r.units {
                let u: Vec<String> = u.iter().map(ToString::to_string).collect();
                y.push_str(&format!("        unit_ids: [{}]\n", u.join(", ")));
            }
            let h: Vec<String> = r
                .holding
                .iter()
                .map(|(a, b)| format!("\"{a}-{b}\""))
                .collect();
            y.push_str(&format!("        holding: [{}]\n", h.join(", ")));
            if let Some((min, max)) = r.values {
                y.push_str(&format!("        values: {{min: {min}, max: {max}}}\n"));
            }
        }
        y
    }

    /// The request: (pdu, code, sub, touched holding spans, written values).
    type Req = (Vec<u8>, u8, Option<u16>, Vec<(u16, u16)>, Vec<u16>);

    fn request() -> impl Strategy<Value = Req> {
        let be = |v: u16| v.to_be_bytes();
        prop_oneof![
            (0u16..230, 1u16..30).prop_map(move |(s, n)| {
                (
                    [&[3u8][..], &be(s), &be(n)].concat(),
                    3,
                    None,
                    vec![(s, s + n - 1)],
                    vec![],
                )
            }),
            (0u16..230, 0u16..320).prop_map(move |(a, v)| {
                (
                    [&[6u8][..], &be(a), &be(v)].concat(),
                    6,
                    None,
                    vec![(a, a)],
                    vec![v],
                )
            }),
            (0u16..230, proptest::collection::vec(0u16..320, 1..4)).prop_map(move |(s, vals)| {
                let n = vals.len() as u16;
                let mut p = vec![16u8];
                p.extend(be(s));
                p.extend(be(n));
                p.push((n * 2) as u8);
                for v in &vals {
                    p.extend(be(*v));
                }
                (p, 16, None, vec![(s, s + n - 1)], vals)
            }),
            (
                0u16..230,
                1u16..5,
                0u16..230,
                proptest::collection::vec(0u16..320, 1..3)
            )
                .prop_map(move |(rs, rn, ws, vals)| {
                    let n = vals.len() as u16;
                    let mut p = vec![23u8];
                    p.extend(be(rs));
                    p.extend(be(rn));
                    p.extend(be(ws));
                    p.extend(be(n));
                    p.push((n * 2) as u8);
                    for v in &vals {
                        p.extend(be(*v));
                    }
                    (p, 23, None, vec![(rs, rs + rn - 1), (ws, ws + n - 1)], vals)
                }),
            prop_oneof![Just(0u16), Just(4u16)].prop_map(move |sub| {
                (
                    [&[8u8][..], &be(sub), &be(0)].concat(),
                    8,
                    Some(sub),
                    vec![],
                    vec![],
                )
            }),
        ]
    }

    fn naive(rules: &[R], src: &str, unit: u8, req: &Req) -> Reason {
        let (_, code, sub, spans, written) = req;
        let mut best: Option<(u8, Denial)> = None;
        let mut note = |depth: u8, d: Denial| {
            if best.is_none_or(|(b, _)| depth > b) {
                best = Some((depth, d));
            }
        };
        for r in rules {
            if !r.from.iter().any(|f| from_matches(*f, src)) {
                continue;
            }
            if r.units.as_ref().is_some_and(|u| !u.contains(&unit)) {
                note(1, Denial::NoRuleForUnit);
                continue;
            }
            if !r
                .functions
                .iter()
                .any(|f| function_matches(*f, !r.holding.is_empty(), *code, *sub))
            {
                note(3, Denial::NoRuleForFunction);
                continue;
            }
            let inside = spans
                .iter()
                .all(|(a, b)| (*a..=*b).all(|x| r.holding.iter().any(|(s, e)| *s <= x && x <= *e)));
            if !inside {
                note(4, Denial::AddressOutOfRange);
                continue;
            }
            if let Some((min, max)) = r.values {
                if !written.iter().all(|v| min <= *v && *v <= max) {
                    note(5, Denial::ValueOutOfBounds);
                    continue;
                }
            }
            return Reason::Allowed;
        }
        Reason::Denied(best.map_or(Denial::NoRuleForSource, |(_, d)| d))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn decide_matches_naive(rules in proptest::collection::vec(rule(), 1..5),
                                src in 0usize..SOURCES.len(), unit in 1u8..4, req in request()) {
            let model = load_str(&yaml(&rules), "p.yaml").unwrap();
            let policy = Policy::compile(&model).unwrap();
            let limiter = RateLimiter::new(&policy);
            let request = Request::parse(&req.0).unwrap();
            let tx = Transaction {
                src: SOURCES[src].parse().unwrap(),
                unit: UnitId::new(unit),
                request: &request,
                role: None,
            };
            let got = policy.conduits()[0].decide(&tx, &limiter, Instant::now()).reason;
            prop_assert_eq!(got, naive(&rules, SOURCES[src], unit, &req));
        }
    }
}
