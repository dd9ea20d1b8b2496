//! Checks of the model's structure: unique ids (ZG-C001), references that resolve (ZG-C002),
//! conduit endpoints (ZG-C003) and `allowed_conduits` agreeing with `connects` (ZG-C004).
//!
//! Separate because these are about the model being well-formed, before any security meaning.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Source;

use super::{reused, Out, Severity, Subject};

pub(super) fn duplicates(out: &mut Out<'_>) {
    let site = out.site;
    for (z, first) in reused(site.zones.iter().map(|z| (z.id.as_str(), z.line, z))) {
        out.push(
            "ZG-C001",
            Severity::Error,
            Subject::Zone,
            &z.id,
            z.line,
            format!("zone id {} is already used on line {first}", z.id),
        );
    }
    for (c, first) in reused(site.conduits.iter().map(|c| (c.id.as_str(), c.line, c))) {
        out.push(
            "ZG-C001",
            Severity::Error,
            Subject::Conduit,
            &c.id,
            c.line,
            format!("conduit id {} is already used on line {first}", c.id),
        );
    }
    for c in &site.conduits {
        for (r, first) in reused(c.rules.iter().map(|r| (r.id.as_str(), r.line, r))) {
            out.push(
                "ZG-C001",
                Severity::Error,
                Subject::Rule,
                format!("{}/{}", c.id, r.id),
                r.line,
                format!(
                    "rule id {} is already used in {} on line {first}",
                    r.id, c.id
                ),
            );
        }
    }
    let mut names: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for z in &site.zones {
        names.insert(&z.id, ("zone", &z.id));
    }
    let mut assets: BTreeMap<&str, (&str, u32)> = BTreeMap::new();
    for z in &site.zones {
        for a in &z.assets {
            let Some(id) = a.id.as_deref() else { continue };
            if let Some((zone, line)) = assets.get(id) {
                let sev_msg = if *zone == z.id {
                    format!("asset id {id} is already used in zone {zone} on line {line}")
                } else {
                    // Same id in two zones: that is an asset in several zones (ZG-C005).
                    continue;
                };
                out.push(
                    "ZG-C001",
                    Severity::Error,
                    Subject::Asset,
                    id,
                    a.line,
                    sev_msg,
                );
            } else {
                assets.insert(id, (&z.id, a.line));
            }
            if let Some((kind, other)) = names.get(id) {
                out.push(
                    "ZG-C001",
                    Severity::Error,
                    Subject::Asset,
                    id,
                    a.line,
                    format!("asset id {id} is also the id of {kind} {other}: rule sources become ambiguous"),
                );
            }
        }
    }
}

pub(super) fn references(out: &mut Out<'_>) {
    let site = out.site;
    for c in &site.conduits {
        for z in &c.connects {
            let line = &z.line;
            if site.zone(z).is_none() {
                out.push(
                    "ZG-C002",
                    Severity::Error,
                    Subject::Conduit,
                    &c.id,
                    *line,
                    format!("conduit {} connects zone {z}, which is not defined", c.id),
                );
            }
        }
        for r in &c.rules {
            for s in &r.from {
                let (name, line) = (&s.text, &s.line);
                if site.resolve(name) == Source::Unknown {
                    out.push(
                        "ZG-C002",
                        Severity::Error,
                        Subject::Rule,
                        format!("{}/{}", c.id, r.id),
                        *line,
                        format!(
                            "rule {} source {name:?} is neither a zone, an asset id nor an address block",
                            r.id
                        ),
                    );
                }
            }
        }
    }
    for z in &site.zones {
        for c in z.allowed_conduits.iter().flatten() {
            let line = &c.line;
            if site.conduit(c).is_none() {
                out.push(
                    "ZG-C002",
                    Severity::Error,
                    Subject::Zone,
                    &z.id,
                    *line,
                    format!("zone {} allows conduit {c}, which is not defined", z.id),
                );
            }
        }
    }
}

pub(super) fn endpoints(out: &mut Out<'_>) {
    let site = out.site;
    for c in &site.conduits {
        let mut seen = BTreeSet::new();
        for z in &c.connects {
            let line = &z.line;
            if !seen.insert(z.as_str()) {
                out.push(
                    "ZG-C003",
                    Severity::Error,
                    Subject::Conduit,
                    &c.id,
                    *line,
                    format!("conduit {} lists zone {z} twice", c.id),
                );
            }
        }
        if seen.len() < 2 {
            out.push(
                "ZG-C003",
                Severity::Error,
                Subject::Conduit,
                &c.id,
                c.line,
                format!(
                    "conduit {} connects {} distinct zone(s); a conduit joins at least 2 zones",
                    c.id,
                    seen.len()
                ),
            );
        }
    }
}

pub(super) fn allowed_conduits(out: &mut Out<'_>) {
    let site = out.site;
    for z in &site.zones {
        let Some(allowed) = &z.allowed_conduits else {
            continue;
        };
        for cid in allowed {
            let line = &cid.line;
            if let Some(c) = site.conduit(cid) {
                if !c.connects.iter().any(|id| id.value == z.id) {
                    out.push(
                        "ZG-C004",
                        Severity::Error,
                        Subject::Zone,
                        &z.id,
                        *line,
                        format!(
                            "zone {} allows conduit {cid}, but {cid} does not connect {}",
                            z.id, z.id
                        ),
                    );
                }
            }
        }
        for c in &site.conduits {
            if let Some(line) = c
                .connects
                .iter()
                .find(|id| id.value == z.id)
                .map(|s| &s.line)
            {
                if !allowed.iter().any(|a| a.value == c.id) {
                    out.push(
                        "ZG-C004",
                        Severity::Error,
                        Subject::Conduit,
                        &c.id,
                        *line,
                        format!(
                            "conduit {} connects zone {}, which does not list it in allowed_conduits",
                            c.id, z.id
                        ),
                    );
                }
            }
        }
    }
}
