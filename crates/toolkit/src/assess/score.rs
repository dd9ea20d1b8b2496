//! The levels drawn from the verdicts: per conduit, the achieved (SL-A) and declared level per
//! FR, the requirements that hold each FR below its target, and the threats the gaps leave open;
//! per zone, the lowest level over its conduits, its shortfalls against SL-T, and which
//! requirements are met, only declared, or a gap on its conduits.
//!
//! Separate from [`super::evaluate`] (one requirement at a time) because this is the arithmetic
//! of the module doc's SL-A rule, applied to all verdicts at once.

use super::{ConduitAssessment, Item, Status, Threat, ZoneAssessment};
use crate::model::{ConduitExt, Site, SlVector, ZoneExt};
use crate::requirements::Requirement;
use crate::threats::{threats_for, Transport};
use zonegate_policy::{Conduit, Fr};

use Status::{Declared, Gap, Met, Provided};

/// The assessment of conduit `c` from its verdicts (`items`, in `table` order) and its target.
pub(super) fn conduit(
    c: &Conduit,
    target: Option<SlVector>,
    items: Vec<Item>,
    table: &[Requirement],
) -> ConduitAssessment {
    // The highest level whose requirements (at or below it) all pass `ok`.
    let level_of = |fr: usize, ok: &dyn Fn(Status) -> bool| -> u8 {
        let mut level = 0;
        for l in 1..=4u8 {
            let all = items
                .iter()
                .zip(table)
                .filter(|(_, r)| r.fr == fr && r.sl <= l)
                .all(|(i, _)| ok(i.status));
            if all {
                level = l;
            } else {
                break;
            }
        }
        level
    };
    let mut achieved = [0u8; 7];
    let mut declared = [0u8; 7];
    let mut limited_by: Vec<(&'static str, Vec<String>)> = Vec::new();
    for fr in 0..7 {
        achieved[fr] = level_of(fr, &|st| !matches!(st, Gap | Declared));
        declared[fr] = level_of(fr, &|st| st != Gap);
        if let Some(t) = target {
            if achieved[fr] < t.0[fr] {
                limited_by.push((
                    Fr::ALL[fr].as_str(),
                    items
                        .iter()
                        .zip(table)
                        .filter(|(i, r)| {
                            r.fr == fr && r.sl <= t.0[fr] && matches!(i.status, Gap | Declared)
                        })
                        .map(|(i, _)| {
                            if i.status == Declared {
                                format!("{} (declared only)", i.id)
                            } else {
                                i.id.clone()
                            }
                        })
                        .collect(),
                ));
            }
        }
    }
    let transport = Transport::of(c);
    let mut threats: Vec<Threat> = Vec::new();
    for (i, r) in items.iter().zip(table) {
        let tgt = target.map_or(4, |t| t.0[r.fr]);
        if i.status != Gap || r.sl > tgt {
            continue;
        }
        for (threat, counter) in threats_for(&i.id, transport) {
            match threats.iter_mut().find(|t| t.threat == threat) {
                Some(t) => t.requirements.push(i.id.clone()),
                None => threats.push(Threat {
                    threat: threat.to_owned(),
                    countermeasure: counter.to_owned(),
                    requirements: vec![i.id.clone()],
                }),
            }
        }
    }
    ConduitAssessment {
        id: c.id.clone(),
        connects: c.connects.iter().map(|z| z.value.clone()).collect(),
        target,
        achieved: SlVector(achieved),
        declared: SlVector(declared),
        limited_by,
        items,
        threats,
        plaintext_interfaces: c.plaintext_modbus().into_iter().map(|(s, _)| s).collect(),
    }
}

/// The assessment of every zone of `site`, from the assessments of the conduits that connect it.
pub(super) fn zones(
    site: &Site,
    conduits: &[ConduitAssessment],
    table: &[Requirement],
) -> Vec<ZoneAssessment> {
    site.zones
        .iter()
        .map(|z| {
            let mine: Vec<&ConduitAssessment> = conduits
                .iter()
                .filter(|c| c.connects.contains(&z.id))
                .collect();
            let achieved = mine.iter().map(|c| c.achieved).reduce(|a, b| a.meet(&b));
            let declared = mine.iter().map(|c| c.declared).reduce(|a, b| a.meet(&b));
            let shortfalls = match (z.sl_t(), achieved) {
                (Some(t), Some(a)) => Fr::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| a.0[*i] < t.0[*i])
                    .map(|(i, fr)| format!("{fr} {} < {}", a.0[i], t.0[i]))
                    .collect(),
                _ => Vec::new(),
            };
            let ok = |st: Status| matches!(st, Met | Provided);
            let (meets, declared_only): (Vec<String>, Vec<String>) = if mine.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                let all = |f: &dyn Fn(Status) -> bool| -> Vec<String> {
                    table
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mine.iter().all(|c| f(c.items[*i].status)))
                        .map(|(_, r)| r.id.clone())
                        .collect()
                };
                let met = all(&ok);
                let prose: Vec<String> = all(&|st| ok(st) || st == Declared)
                    .into_iter()
                    .filter(|id| !met.contains(id))
                    .collect();
                (met, prose)
            };
            let gaps: Vec<String> = table
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    r.sl <= z.sl_t().map_or(4, |t| t.0[r.fr])
                        && mine.iter().any(|c| c.items[*i].status == Gap)
                })
                .map(|(_, r)| r.id.clone())
                .collect();
            ZoneAssessment {
                id: z.id.clone(),
                target: z.sl_t(),
                achieved,
                declared,
                conduits: mine.iter().map(|c| c.id.clone()).collect(),
                shortfalls,
                meets,
                declared_only,
                gaps,
            }
        })
        .collect()
}
