//! Checks of the levels a design declares: Purdue reachability and the DMZ (ZG-C009), security
//! levels of zones and conduits (ZG-C010, ZG-C013, ZG-C020, ZG-C029), Purdue levels (ZG-C021),
//! declared flows (ZG-C028), and writes from upper levels declared in prose (ZG-C011 for
//! conduits without a gateway).
//!
//! Separate because these read the zone/conduit graph and its levels, not the gateway rules.

use std::collections::{BTreeSet, VecDeque};

use crate::model::{is_write, protocol_port, ConduitExt, ZoneExt};
use zonegate_policy::{Conduit, Fr};

use super::{Out, Severity, Subject};

pub(super) fn purdue(out: &mut Out<'_>) {
    let site = out.site;
    let n = site.zones.len();
    // Adjacency: zone -> (neighbour, conduit index).
    let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (ci, c) in site.conduits.iter().enumerate() {
        let zs = site.conduit_zones(c);
        for &a in &zs {
            for &b in &zs {
                if a != b {
                    adj[a].push((b, ci));
                }
            }
        }
    }
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (start, z) in site.zones.iter().enumerate() {
        let Some(p) = z.purdue_level else { continue };
        if p.low() < 4.0 {
            continue;
        }
        // BFS that never enters a DMZ zone.
        let mut prev: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut seen = vec![false; n];
        seen[start] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(cur) = queue.pop_front() {
            for &(next, ci) in &adj[cur] {
                if seen[next] {
                    continue;
                }
                let nz = &site.zones[next];
                if nz.purdue_level.is_some_and(|p| p.is_dmz()) {
                    continue;
                }
                seen[next] = true;
                prev[next] = Some((cur, ci));
                queue.push_back(next);
                if nz.purdue_level.is_some_and(|p| p.low() <= 2.0) && reported.insert((start, next))
                {
                    // Rebuild the path.
                    let mut path = vec![nz.id.clone()];
                    let mut at = next;
                    let mut first_conduit = ci;
                    while let Some((from, via)) = prev[at] {
                        path.push(format!("--{}-->", site.conduits[via].id));
                        path.push(site.zones[from].id.clone());
                        first_conduit = via;
                        at = from;
                    }
                    path.reverse();
                    let c = &site.conduits[first_conduit];
                    out.push(
                        "ZG-C009",
                        Severity::Error,
                        Subject::Conduit,
                        &c.id,
                        c.line,
                        format!(
                            "level {} zone {} reaches level {} zone {} without passing a DMZ (3.5): {}",
                            p,
                            z.id,
                            nz.purdue_level.map_or(String::new(), |p| p.to_string()),
                            nz.id,
                            path.join(" ")
                        ),
                    );
                }
            }
        }
    }
}

pub(super) fn levels(out: &mut Out<'_>) {
    let site = out.site;
    for z in &site.zones {
        if z.sl_t().is_none() {
            out.push(
                "ZG-C020",
                Severity::Warning,
                Subject::Zone,
                &z.id,
                z.line,
                format!(
                    "zone {} has no security_level_target (IEC 62443-3-2 ZCR 5.6)",
                    z.id
                ),
            );
        }
        if z.purdue_level.is_none() {
            out.push(
                "ZG-C021",
                Severity::Info,
                Subject::Zone,
                &z.id,
                z.line,
                format!(
                    "zone {} has no purdue_level; Purdue and SIS checks skip it",
                    z.id
                ),
            );
        }
    }
    for c in &site.conduits {
        match c.sl() {
            None => out.push(
                "ZG-C029",
                Severity::Warning,
                Subject::Conduit,
                &c.id,
                c.line,
                format!("conduit {} has no security_level", c.id),
            ),
            Some(sl) => {
                for zi in site.conduit_zones(c) {
                    let z = &site.zones[zi];
                    let Some(t) = z.sl_t() else { continue };
                    let low: Vec<String> = Fr::ALL
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| sl.0[*i] < t.0[*i])
                        .map(|(i, fr)| format!("{fr} {} < {}", sl.0[i], t.0[i]))
                        .collect();
                    if !low.is_empty() {
                        out.push(
                            "ZG-C010",
                            Severity::Warning,
                            Subject::Conduit,
                            &c.id,
                            c.line,
                            format!(
                                "conduit {} security level {} is below the SL-T {} of zone {} ({})",
                                c.id,
                                sl.display(),
                                t.display(),
                                z.id,
                                low.join(", ")
                            ),
                        );
                    }
                }
            }
        }
        if c.protocols_allowed.is_empty() && c.gateway.is_none() {
            out.push(
                "ZG-C028",
                Severity::Warning,
                Subject::Conduit,
                &c.id,
                c.line,
                format!(
                    "conduit {} declares no protocols_allowed and no gateway: its flows are undocumented",
                    c.id
                ),
            );
        }
        prose_writes(out, c);
        // Plaintext Modbus at SL-T >= 3.
        let hi: Vec<String> = site
            .conduit_zones(c)
            .into_iter()
            .filter(|z| site.zones[*z].sl_t().is_some_and(|t| t.max() >= 3))
            .map(|z| site.zones[z].id.clone())
            .collect();
        if !hi.is_empty() {
            for (what, line) in c.plaintext_modbus() {
                out.push(
                    "ZG-C013",
                    Severity::Error,
                    Subject::Conduit,
                    &c.id,
                    line,
                    format!(
                        "conduit {} carries cleartext Modbus ({what}) but zone {} has SL-T >= 3: use Modbus/TCP Security (TLS, port 802) with client certificates (SR 3.1 RE1, SR 4.1, SR 1.2)",
                        c.id,
                        hi.join(", ")
                    ),
                );
            }
        }
    }
}

/// Write-class function codes named in prose: "FC 6/16", "FC 5, 15", "write".
fn prose_mentions_write(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    if t.contains("read only") || t.contains("read-only") || t.contains("no write") {
        return false;
    }
    if t.contains("write") {
        return true;
    }
    let mut rest = t.as_str();
    while let Some(i) = rest.find("fc") {
        rest = &rest[i + 2..];
        let list: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, ' ' | '/' | ',' | '-'))
            .collect();
        if list
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u8>().ok())
            .any(is_write)
        {
            return true;
        }
    }
    false
}

/// ZG-C011 for conduits without a gateway: a Modbus `protocols_allowed` entry whose direction
/// prose ("Z3 -> Z1 (FC 6/16)") lets a zone at level >= 3 write.
fn prose_writes(out: &mut Out<'_>, c: &Conduit) {
    let site = out.site;
    if c.gateway.is_some() {
        return; // The rules say exactly what is allowed; checked there.
    }
    for p in &c.protocols_allowed {
        let modbus =
            p.protocol.to_ascii_lowercase().contains("modbus") || protocol_port(p) == Some(502);
        let Some(dir) = p.direction.as_deref() else {
            continue;
        };
        if !modbus || !prose_mentions_write(dir) {
            continue;
        }
        let Some((left, _)) = dir.split_once("->") else {
            continue;
        };
        for zid in &c.connects {
            let zid = zid.value.as_str();
            if !left.contains(zid) {
                continue;
            }
            let Some(z) = site.zone(zid) else { continue };
            let Some(lvl) = z.purdue_level else { continue };
            let sev = if lvl.low() >= 3.5 {
                Severity::Error
            } else if lvl.low() >= 3.0 {
                Severity::Warning
            } else {
                continue;
            };
            out.push(
                "ZG-C011",
                sev,
                Subject::Conduit,
                &c.id,
                p.line,
                format!(
                    "conduit {} declares Modbus writes from zone {zid} at Purdue level {} ({dir:?})",
                    c.id,
                    lvl
                ),
            );
        }
    }
}
