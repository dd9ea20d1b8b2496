//! What a rule allows, read from the compiled policy rather than re-derived from the model.
//!
//! The report, the checks and the probe must list exactly what the gateway lets through: a
//! `read` class with only holding ranges does not allow FC 1 there, and whatever the policy
//! crate decides about classes and table-less codes (FC 20/21, FC 24's pointer) is what counts.
//! So for each rule we compile a one-rule copy of its conduit with
//! [`zonegate_policy::Policy::compile`] and ask [`zonegate_policy::ConduitPolicy::decide`], the
//! gateway's own decision, about one well-formed request per function code (and per FC 8
//! sub-function / FC 43 MEI type), built with the codec's parser. A code is allowed when some
//! such request addressed inside the rule's ranges is allowed.
//!
//! The sources come from the compiled rule too ([`zonegate_policy::CompiledRule::sources`]).
//! Rate limits are left out of the function question (a token bucket says when, not what).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use zonegate_modbus::{Request, Table};
use zonegate_policy as p;
use zonegate_policy::{Cidr, Policy, RateLimiter, Transaction, UnitId};

use crate::model::table_set;

/// What one compiled rule allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// The networks the compiled rule's `from` resolved to (empty: the rule's sources stand for
    /// no address and the policy does not compile it).
    pub sources: Vec<Cidr>,
    /// Function codes the compiled rule allows for some request inside its ranges.
    pub functions: BTreeSet<u8>,
    /// The same with the FC 8 sub-function or FC 43 MEI type that was allowed.
    pub probes: BTreeSet<(u8, Option<u16>)>,
}

impl Allowed {
    /// The FC 8 sub-functions (or FC 43 MEI types) allowed, for `code` 8 or 43.
    pub fn subs(&self, code: u8) -> Vec<u16> {
        self.probes
            .iter()
            .filter(|(c, _)| *c == code)
            .filter_map(|(_, s)| *s)
            .collect()
    }
}

/// The FC 8 sub-functions the codec knows (V1.1b3).
pub const DIAGNOSTIC_SUBS: [u16; 15] = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20];

/// Every public or user-defined function code a request PDU can carry and the codec parses.
fn probe_codes() -> impl Iterator<Item = u8> {
    (1u8..=127).filter(|c| {
        matches!(
            c,
            1..=8 | 11 | 12 | 15..=17 | 20..=24 | 43 | 65..=72 | 100..=110
        )
    })
}

/// A value a rule's `values` bound admits (for registers) and a coil state it admits.
fn sample_values(r: &p::Rule) -> (u16, bool) {
    match r.values {
        None => (0, false),
        Some(b) => {
            // Two's complement for a signed bound: the policy reads registers as INT16 then.
            let reg = match u16::try_from(b.min) {
                Ok(v) => v,
                Err(_) => u16::from_be_bytes(i16::try_from(b.min).unwrap_or(0).to_be_bytes()),
            };
            (reg, !b.contains(0) && b.contains(1))
        }
    }
}

fn first(r: &p::Rule, t: Table) -> u16 {
    table_set(r, t).merged().first().map_or(0, |x| x.start)
}

/// The first file and record a rule's `file:` ranges admit (file 1, record 0 without them):
/// FC 20/21 are probed there, so a rule that names only higher files shows what it allows.
fn first_file_record(r: &p::Rule) -> ([u8; 2], [u8; 2]) {
    let first = r.file.as_ref().and_then(|ranges| ranges.first());
    let (file, record) = first.map_or((1, 0), |f| (f.files.start, f.records.start));
    (file.to_be_bytes(), record.to_be_bytes())
}

/// One probe request PDU per (code, sub-function) for rule `r`: addressed at the first address
/// of the rule's range for the table the code touches (0 when there is none), writing a value
/// the rule's bounds admit.
fn probe_pdus(r: &p::Rule) -> Vec<(u8, Option<u16>, Vec<u8>)> {
    let (v, coil_on) = sample_values(r);
    let [vh, vl] = v.to_be_bytes();
    let mut out = Vec::new();
    for code in probe_codes() {
        let at = |t: Table| first(r, t).to_be_bytes();
        let pdu: Vec<u8> = match code {
            1 => [&[1u8][..], &at(Table::Coils), &[0, 1]].concat(),
            2 => [&[2u8][..], &at(Table::DiscreteInputs), &[0, 1]].concat(),
            3 => [&[3u8][..], &at(Table::HoldingRegisters), &[0, 1]].concat(),
            4 => [&[4u8][..], &at(Table::InputRegisters), &[0, 1]].concat(),
            5 => {
                let on: [u8; 2] = if coil_on { [0xFF, 0] } else { [0, 0] };
                [&[5u8][..], &at(Table::Coils), &on].concat()
            }
            6 => [&[6u8][..], &at(Table::HoldingRegisters), &[vh, vl]].concat(),
            8 => {
                for sub in DIAGNOSTIC_SUBS {
                    let [sh, sl] = sub.to_be_bytes();
                    out.push((8, Some(sub), vec![8, sh, sl, 0, 0]));
                }
                continue;
            }
            15 => [
                &[15u8][..],
                &at(Table::Coils),
                &[0, 1, 1, u8::from(coil_on)],
            ]
            .concat(),
            16 => [
                &[16u8][..],
                &at(Table::HoldingRegisters),
                &[0, 1, 2, vh, vl],
            ]
            .concat(),
            20 => {
                let ([fh, fl], [rh, rl]) = first_file_record(r);
                vec![20, 7, 6, fh, fl, rh, rl, 0, 1]
            }
            21 => {
                let ([fh, fl], [rh, rl]) = first_file_record(r);
                vec![21, 9, 6, fh, fl, rh, rl, 0, 1, vh, vl]
            }
            22 => [&[22u8][..], &at(Table::HoldingRegisters), &[0, 0, vh, vl]].concat(),
            23 => {
                let a = at(Table::HoldingRegisters);
                [&[23u8][..], &a, &[0, 1], &a, &[0, 1, 2, vh, vl]].concat()
            }
            24 => [&[24u8][..], &at(Table::HoldingRegisters)].concat(),
            43 => {
                out.push((43, Some(14), vec![43, 14, 1, 0]));
                out.push((43, Some(13), vec![43, 13, 0, 0]));
                continue;
            }
            c => vec![c],
        };
        out.push((code, None, pdu));
    }
    out
}

/// The tables a function code's requests touch, from the codec's own request parser.
pub fn code_tables(code: u8) -> Vec<Table> {
    let pdu: Vec<u8> = match code {
        1..=4 => vec![code, 0, 0, 0, 1],
        5 | 6 => vec![code, 0, 0, 0, 0],
        15 => vec![15, 0, 0, 0, 1, 1, 0],
        16 => vec![16, 0, 0, 0, 1, 2, 0, 0],
        22 => vec![22, 0, 0, 0, 0, 0, 0],
        23 => vec![23, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 0],
        24 => vec![24, 0, 0],
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    if let Ok(req) = Request::parse(&pdu) {
        for (t, _) in req.ranges() {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// What rule `ri` of conduit `ci` allows, asked of the compiled policy.
pub fn analyse(model: &p::Model, ci: usize, ri: usize) -> Allowed {
    let Some(conduit) = model.conduits.get(ci) else {
        return Allowed::default();
    };
    let Some(rule) = conduit.rules.get(ri) else {
        return Allowed::default();
    };
    // One conduit with one rule: nothing else can allow the probe first, and no clash with
    // other conduits (duplicate ids, listen addresses) can stop the compile.
    let mut alone = model.clone();
    let mut c = conduit.clone();
    c.rules = vec![rule.clone()];
    alone.conduits = vec![c];
    let sources = Policy::compile(&alone)
        .ok()
        .and_then(|p| {
            p.conduits()
                .first()
                .and_then(|c| c.rules().first())
                .map(|r| r.sources().to_vec())
        })
        .unwrap_or_default();

    // The function question, from one address every source set contains, without the rate.
    let any = Cidr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).ok();
    let mut probe_rule = rule.clone();
    if let Some(any) = any {
        probe_rule.from = vec![p::Source {
            text: any.to_string(),
            target: p::SourceTarget::Network(any),
            line: rule.line,
            column: rule.column,
        }];
    }
    probe_rule.rate = None;
    if let Some(c) = alone.conduits.first_mut() {
        c.rules = vec![probe_rule.clone()];
    }
    let mut allowed = Allowed {
        sources,
        ..Allowed::default()
    };
    let Ok(policy) = Policy::compile(&alone) else {
        return allowed;
    };
    let Some(cp) = policy.conduits().first() else {
        return allowed;
    };
    let unit = match &rule.unit_ids {
        None => 1,
        Some(list) => match list.first() {
            Some(u) => *u,
            None => return allowed,
        },
    };
    let role = rule
        .roles
        .as_ref()
        .and_then(|r| r.first())
        .map(String::as_str);
    let limiter = RateLimiter::new(&policy);
    let now = Instant::now();
    for (code, sub, pdu) in probe_pdus(&probe_rule) {
        let Ok(request) = Request::parse(&pdu) else {
            continue;
        };
        let tx = Transaction {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            unit: UnitId::new(unit),
            request: &request,
            role,
        };
        if cp.decide(&tx, &limiter, now).is_allow() {
            allowed.functions.insert(code);
            allowed.probes.insert((code, sub));
        }
    }
    allowed
}
