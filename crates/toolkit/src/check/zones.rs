//! Checks of zones and their assets: an asset in one zone only (ZG-C005), inside its zone's
//! networks (ZG-C007), networks that do not overlap (ZG-C006), and the SIS zone rules (ZG-C008,
//! ZG-C019).

use std::collections::BTreeMap;

use crate::model::{asset_label, ZoneExt};
use zonegate_policy::AssetKind;

use super::{Out, Severity, Subject};

pub(super) fn assets(out: &mut Out<'_>) {
    let site = out.site;
    let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
    let mut by_addr: BTreeMap<std::net::IpAddr, (&str, String)> = BTreeMap::new();
    for z in &site.zones {
        for a in &z.assets {
            let label = asset_label(a);
            if let Some(id) = a.id.as_deref() {
                match by_id.get(id) {
                    Some(other) if *other != z.id => out.push(
                        "ZG-C005",
                        Severity::Error,
                        Subject::Asset,
                        id,
                        a.line,
                        format!("asset {id} is in zone {other} and in zone {}", z.id),
                    ),
                    Some(_) => {}
                    None => {
                        by_id.insert(id, &z.id);
                    }
                }
            }
            if let Some(addr) = a.address {
                match by_addr.get(&addr) {
                    Some((other_zone, other_asset)) if *other_zone != z.id => out.push(
                        "ZG-C005",
                        Severity::Error,
                        Subject::Asset,
                        &label,
                        a.line,
                        format!(
                            "address {addr} of {label} is also asset {other_asset} of zone {other_zone}: one device in two zones",
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        by_addr.insert(addr, (&z.id, label.clone()));
                    }
                }
                let own = z.networks.iter().any(|n| n.contains(addr));
                let others: Vec<&str> = site
                    .zones
                    .iter()
                    .filter(|o| o.id != z.id && o.networks.iter().any(|n| n.contains(addr)))
                    .map(|o| o.id.as_str())
                    .collect();
                if !own && !others.is_empty() {
                    out.push(
                        "ZG-C007",
                        Severity::Error,
                        Subject::Asset,
                        &label,
                        a.line,
                        format!(
                            "asset {} of zone {} has address {addr}, which lies in the networks of zone {}",
                            label,
                            z.id,
                            others.join(", ")
                        ),
                    );
                } else if !own && !z.networks.is_empty() {
                    out.push(
                        "ZG-C007",
                        Severity::Warning,
                        Subject::Asset,
                        &label,
                        a.line,
                        format!(
                            "asset {} has address {addr}, outside the networks of its zone {}",
                            label, z.id
                        ),
                    );
                }
            }
        }
    }
}

pub(super) fn networks(out: &mut Out<'_>) {
    let site = out.site;
    for (i, z) in site.zones.iter().enumerate() {
        for n in &z.networks {
            let line = &n.line;
            for other in &site.zones[..i] {
                for m in &other.networks {
                    if n.overlaps(m) {
                        out.push(
                            "ZG-C006",
                            Severity::Error,
                            Subject::Zone,
                            &z.id,
                            *line,
                            format!(
                                "network {n} of zone {} overlaps network {m} of zone {}: an address would be in two zones",
                                z.id, other.id
                            ),
                        );
                    }
                }
            }
        }
    }
}

pub(super) fn sis(out: &mut Out<'_>) {
    let site = out.site;
    for z in site.zones.iter().filter(|z| z.is_sis()) {
        for c in &site.conduits {
            if !c.connects.iter().any(|id| id.value == z.id) {
                continue;
            }
            for other_id in &c.connects {
                let oline = &other_id.line;
                if other_id.value == z.id {
                    continue;
                }
                let Some(o) = site.zone(other_id) else {
                    continue;
                };
                if o.is_sis() {
                    continue;
                }
                let bpcs = o
                    .purdue_level
                    .is_some_and(|p| p.low() >= 1.0 && p.high() <= 2.0);
                if !bpcs {
                    let lvl = o
                        .purdue_level
                        .map_or("an unknown level".to_owned(), |p| format!("level {}", p));
                    out.push(
                        "ZG-C008",
                        Severity::Error,
                        Subject::Conduit,
                        &c.id,
                        *oline,
                        format!(
                            "SIS zone {} has conduit {} to zone {other_id} at Purdue {lvl}; a SIS connects only to basic process control (level 1-2)",
                            z.id, c.id
                        ),
                    );
                }
            }
        }
        let others: Vec<String> = z
            .assets
            .iter()
            .filter(|a| a.kind.is_some_and(|k| k != AssetKind::Sis))
            .map(asset_label)
            .collect();
        if !others.is_empty() {
            out.push(
                "ZG-C019",
                Severity::Warning,
                Subject::Zone,
                &z.id,
                z.line,
                format!(
                    "SIS zone {} also holds non-safety assets ({}); keep safety and basic process control in separate zones",
                    z.id,
                    others.join(", ")
                ),
            );
        }
    }
}
