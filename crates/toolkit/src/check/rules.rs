//! Checks of a gateway's allow rules: sources (ZG-C012, ZG-C017), writes from upper levels and
//! into a SIS (ZG-C011, ZG-C018), sensitive functions (ZG-C014), shadowed and never-matching
//! rules (ZG-C015, ZG-C016), unbounded writes (ZG-C027), unit ids (ZG-C030) and function
//! classes (ZG-C032, ZG-C033, ZG-C034).
//!
//! Separate because these read the compiled rules ([`RuleView`]), the largest set of checks.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::allowed::code_tables;
use crate::model::{
    fc_name, is_write, table_name, table_set, RuleView, Source, ZoneExt, SENSITIVE_FCS, TABLES,
};
use zonegate_modbus::Table;
use zonegate_policy::{AddressSet, Cidr, Conduit, FunctionSelector};

use super::{Out, Severity, Subject};

fn ranges_cover(outer: &AddressSet, inner: &AddressSet) -> bool {
    // Both are merged, sorted lists: every inner range lies in one outer range.
    inner
        .merged()
        .iter()
        .all(|r| outer.contains_span(r.start, r.end))
}

/// True when every request `later` allows is allowed by `earlier` (which has no extra
/// constraint), so `later` can never be the rule that decides. Sources, functions and rate
/// come from the compiled rules; units, roles, ranges and values are the sets the compiled
/// rules test.
fn shadows(a: &RuleView<'_>, b: &RuleView<'_>) -> bool {
    let roles = |r: &RuleView<'_>| r.roles.clone().unwrap_or_default();
    let (ra, rb) = (roles(a), roles(b));
    if a.rate.is_some() || !ra.is_empty() && !rb.iter().all(|r| ra.contains(r)) {
        return false;
    }
    let (sa, sb) = (a.sources(), b.sources());
    if sb.is_empty() || !sb.iter().all(|x| sa.iter().any(|y| y.covers(x))) {
        return false;
    }
    match (&a.unit_ids, &b.unit_ids) {
        (None, _) => {}
        (Some(_), None) => return false,
        (Some(ua), Some(ub)) => {
            if !ub.iter().all(|u| ua.contains(u)) {
                return false;
            }
        }
    }
    if !b.allowed.probes.is_subset(&a.allowed.probes) {
        return false;
    }
    for t in TABLES {
        if !ranges_cover(table_set(a, t), table_set(b, t)) {
            return false;
        }
    }
    match (a.values, b.values) {
        (None, _) => true,
        (Some(_), None) => !b.allows_write(),
        (Some(x), Some(y)) => x.min <= y.min && y.max <= x.max,
    }
}

pub(super) fn rules(out: &mut Out<'_>) {
    let site = out.site;
    for c in &site.conduits {
        let zones = site.conduit_zones(c);
        let target = site.target_zone(c);
        let target_units: BTreeSet<u8> = target
            .map(|t| {
                site.zones[t]
                    .assets
                    .iter()
                    .flat_map(|a| a.unit_ids.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        let views = site.rules(c);
        for (ri, r) in views.iter().enumerate() {
            let el = format!("{}/{}", c.id, r.id);
            rule_sources(out, c, r, &el, &zones);
            // Any source.
            for s in &r.from {
                let (name, line) = (&s.text, &s.line);
                if let Source::Cidr(cidr) = site.resolve(name) {
                    if cidr.is_any() {
                        out.push(
                            "ZG-C017",
                            Severity::Error,
                            Subject::Rule,
                            &el,
                            *line,
                            format!(
                                "rule {} allows any source ({name}): name the zones, assets or networks that need it",
                                r.id
                            ),
                        );
                    }
                }
            }
            // Sensitive function codes.
            // What the rule names: a sensitive code needs a reason even where the policy would
            // not let it through (it documents intent).
            let sensitive: Vec<String> = r
                .named_codes()
                .iter()
                .filter(|f| SENSITIVE_FCS.contains(f))
                .map(|f| format!("FC {f} {}", fc_name(*f)))
                .collect();
            if !sensitive.is_empty() && !r.is_justified() {
                out.push(
                    "ZG-C014",
                    Severity::Error,
                    Subject::Rule,
                    &el,
                    r.line,
                    format!(
                        "rule {} allows {} without a justification",
                        r.id,
                        sensitive.join(", ")
                    ),
                );
            }
            // Writes from upper levels.
            if r.allows_write() {
                for zi in site.source_zones(r) {
                    let z = &site.zones[zi];
                    let Some(p) = z.purdue_level else { continue };
                    if p.low() >= 3.5 {
                        out.push(
                            "ZG-C011",
                            Severity::Error,
                            Subject::Rule,
                            &el,
                            r.line,
                            format!(
                                "rule {} allows writes from zone {} at Purdue level {}: nothing above level 3 writes to control devices",
                                r.id,
                                z.id,
                                p
                            ),
                        );
                    } else if p.low() >= 3.0 {
                        out.push(
                            "ZG-C011",
                            Severity::Warning,
                            Subject::Rule,
                            &el,
                            r.line,
                            format!(
                                "rule {} allows writes from zone {} at Purdue level {}; level 3 is normally read-only (FC 1-4)",
                                r.id,
                                z.id,
                                p
                            ),
                        );
                    }
                }
                if let Some(t) = target {
                    let tz = &site.zones[t];
                    if tz.is_sis() {
                        let (sev, msg) = if r.is_justified() {
                            (Severity::Warning, format!("rule {} allows writes into SIS zone {}: keep the justification under management of change", r.id, tz.id))
                        } else {
                            (Severity::Error, format!("rule {} allows writes into SIS zone {} without a justification", r.id, tz.id))
                        };
                        out.push("ZG-C018", sev, Subject::Rule, &el, r.line, msg);
                    }
                }
                let reg_write = r.functions().iter().any(|f| matches!(f, 6 | 16 | 22 | 23));
                let mut missing = Vec::new();
                if r.rate.is_none() {
                    missing.push("rate limit");
                }
                if reg_write && r.values.is_none() {
                    missing.push("value bounds");
                }
                if !missing.is_empty() {
                    out.push(
                        "ZG-C027",
                        Severity::Info,
                        Subject::Rule,
                        &el,
                        r.line,
                        format!("write rule {} has no {}", r.id, missing.join(" and no ")),
                    );
                }
            }
            // Never matches.
            let mut never = Vec::new();
            if r.sources().is_empty() {
                never.push("its sources stand for no address".to_owned());
            }
            let named = r.named_codes();
            if named.is_empty() {
                never.push("it allows no function".to_owned());
            } else {
                let usable = named.iter().any(|f| {
                    let t = code_tables(*f);
                    t.is_empty() || t.iter().all(|t| !table_set(r, *t).is_empty())
                });
                if !usable {
                    never.push(
                        "none of its functions has an address range for the table it touches"
                            .to_owned(),
                    );
                }
            }
            if let Some(b) = r.values {
                let (min, max) = (b.min, b.max);
                if min > max
                    && named.iter().any(|f| is_write(*f))
                    && named.iter().all(|f| is_write(*f))
                {
                    never.push(format!("values min {min} > max {max}"));
                }
            }
            if let Some(units) = &r.unit_ids {
                if units.is_empty() {
                    never.push("unit_ids is empty".to_owned());
                } else if !target_units.is_empty() {
                    let missing: Vec<String> = units
                        .iter()
                        .filter(|u| !target_units.contains(u))
                        .map(|u| u.to_string())
                        .collect();
                    if missing.len() == units.len() {
                        never.push(format!(
                            "no asset of the target zone has unit id {}",
                            missing.join(", ")
                        ));
                    } else if !missing.is_empty() {
                        out.push(
                            "ZG-C030",
                            Severity::Warning,
                            Subject::Rule,
                            &el,
                            r.line,
                            format!(
                                "rule {} names unit id {} that no asset of the target zone has",
                                r.id,
                                missing.join(", ")
                            ),
                        );
                    }
                }
            }
            if !never.is_empty() {
                out.push(
                    "ZG-C016",
                    Severity::Warning,
                    Subject::Rule,
                    &el,
                    r.line,
                    format!("rule {} can never match: {}", r.id, never.join("; ")),
                );
            }
            function_classes(out, r, &el);
            // Shadowed by an earlier rule.
            for e in &views[..ri] {
                if shadows(e, r) {
                    out.push(
                        "ZG-C015",
                        Severity::Warning,
                        Subject::Rule,
                        &el,
                        r.line,
                        format!(
                            "rule {} is shadowed by the earlier rule {} (line {}), which allows everything it allows with no extra constraint",
                            r.id, e.id, e.line
                        ),
                    );
                    break;
                }
            }
        }
    }
}

/// ZG-C032, ZG-C033, ZG-C034: what the compiled rule allows next to what its classes name.
fn function_classes(out: &mut Out<'_>, r: &RuleView<'_>, el: &str) {
    let allowed = r.functions();
    let named_explicitly = |code: u8| {
        r.functions
            .iter()
            .any(|f| matches!(f.value, FunctionSelector::Function { code: c, .. } if c == code))
    };
    for f in &r.functions {
        let FunctionSelector::Class(class) = f.value else {
            continue;
        };
        let table_codes: Vec<u8> = class
            .codes()
            .iter()
            .copied()
            .filter(|c| !code_tables(*c).is_empty())
            .collect();
        // A class that still allows something (`[write]` with only `file:` allows FC 21) acts
        // on what the rule gives it.
        let allows_any = class.codes().iter().any(|c| allowed.contains(c));
        if !table_codes.is_empty() && !allows_any {
            let mut tables: Vec<&str> = table_codes
                .iter()
                .flat_map(|c| code_tables(*c))
                .map(table_name)
                .collect();
            tables.dedup();
            out.push(
                "ZG-C032",
                Severity::Warning,
                Subject::Rule,
                el,
                f.line,
                format!(
                    "rule {}: class {} acts on {}, but the rule gives no range for the tables its functions touch, so it allows none of them",
                    r.id,
                    class.as_str(),
                    tables.join(", ")
                ),
            );
        }
        for code in [20u8, 21] {
            // With `file:` ranges the class is bound to those files and records.
            if class.codes().contains(&code)
                && allowed.contains(&code)
                && !named_explicitly(code)
                && r.file.is_none()
            {
                out.push(
                    "ZG-C033",
                    Severity::Warning,
                    Subject::Rule,
                    el,
                    f.line,
                    format!(
                        "rule {}: class {} allows FC {code} {}, which touches no register table: the rule's ranges do not limit it to any file or record; name it explicitly if it is meant",
                        r.id,
                        class.as_str(),
                        fc_name(code)
                    ),
                );
            }
        }
    }
    if allowed.contains(&24) {
        let at = table_set(r, Table::HoldingRegisters).to_string();
        out.push(
            "ZG-C034",
            Severity::Warning,
            Subject::Rule,
            el,
            r.line,
            format!(
                "rule {} allows FC 24 {}: the gateway checks only the FIFO pointer address (holding {at}), not the up to 31 queued registers the device returns",
                r.id,
                fc_name(24)
            ),
        );
    }
}

fn rule_sources(out: &mut Out<'_>, c: &Conduit, r: &RuleView<'_>, el: &str, zones: &[usize]) {
    let site = out.site;
    for s in &r.from {
        let (name, line) = (&s.text, &s.line);
        let bad = match site.resolve(name) {
            Source::Zone(z) | Source::Asset(z, _) => {
                if zones.contains(&z) {
                    None
                } else {
                    Some(format!("belongs to zone {}", site.zones[z].id))
                }
            }
            Source::Cidr(cidr) => {
                if cidr.is_any() {
                    None // ZG-C017 says it.
                } else {
                    let nets: Vec<Cidr> = zones.iter().flat_map(|z| site.zone_blocks(*z)).collect();
                    let with_nets = zones.iter().any(|z| !site.zones[*z].networks.is_empty());
                    if !with_nets || nets.iter().any(|n| n.covers(&cidr)) {
                        None
                    } else {
                        Some("is outside the networks of the zones the conduit connects".to_owned())
                    }
                }
            }
            Source::Unknown => None, // ZG-C002 says it.
        };
        if let Some(why) = bad {
            let mut msg = String::new();
            let _ = write!(
                msg,
                "rule {} source {name} {why}; conduit {} connects {}",
                r.id,
                c.id,
                c.connects
                    .iter()
                    .map(|z| z.value.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            out.push("ZG-C012", Severity::Error, Subject::Rule, el, *line, msg);
        }
    }
}
