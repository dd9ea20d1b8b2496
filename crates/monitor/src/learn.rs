//! Learn: a reviewable zone/conduit model synthesised from a [`Baseline`].
//!
//! Zones: each observed server gets its own zone (so each conduit reaches exactly one device),
//! masters share one zone; an address inside a zone of the base model keeps that zone and its
//! asset id instead. One conduit per server, one rule per (master, unit) with the observed
//! functions, the merged address ranges per table, a `values` bound over the observed writes
//! and the evidence as `justification`. A write function enters only when that master sent it
//! at least `min_writes` times; otherwise it and the addresses only it touched stay out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use zonegate_policy::Model;

use crate::baseline::{Baseline, Channel, RangeSet};
use crate::time::rfc3339;

/// Options of [`synthesize`].
#[derive(Debug, Clone)]
pub struct Options {
    /// A write function enters only when seen this many times from that master.
    pub min_writes: u64,
    /// What the evidence came from (file names), for the header comment.
    pub sources: Vec<String>,
}

/// Where an address lives in the output model.
struct Place {
    zone: String,
    /// Its asset id, when the base model names it.
    asset: Option<String>,
}

fn slug(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

fn place(base: Option<&Model>, ip: IpAddr, fallback: &str) -> Place {
    if let Some(model) = base {
        for z in &model.zones {
            if let Some(a) = z.assets.iter().find(|a| a.address == Some(ip)) {
                return Place {
                    zone: z.id.clone(),
                    asset: a.id.clone(),
                };
            }
        }
        if let Some(z) = model
            .zones
            .iter()
            .find(|z| z.networks.iter().any(|n| n.value.contains(ip)))
        {
            return Place {
                zone: z.id.clone(),
                asset: None,
            };
        }
    }
    Place {
        zone: fallback.to_string(),
        asset: None,
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn ranges(set: &RangeSet) -> String {
    let parts: Vec<String> = set
        .0
        .iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("\"{a}-{b}\"")
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn function_entry(fc: u8, subs: &BTreeSet<u16>) -> String {
    if subs.is_empty() {
        fc.to_string()
    } else {
        let list: Vec<String> = subs.iter().map(u16::to_string).collect();
        format!("{{function: {fc}, sub_functions: [{}]}}", list.join(", "))
    }
}

/// One rule's body from the channels of one master to one server, per unit.
fn rule(out: &mut String, id: &str, from: &str, c: &Channel, opts: &Options) {
    let is_write = |k: &str| c.write_counts.contains_key(k);
    let mut functions: BTreeMap<u8, BTreeSet<u16>> = BTreeMap::new();
    let mut left_out = Vec::new();
    for (key, &count) in &c.functions {
        if is_write(key) && c.write_counts.get(key).copied().unwrap_or(0) < opts.min_writes {
            left_out.push(format!("{key} x{count}"));
            continue;
        }
        let (fc, sub) = match key.split_once(':') {
            Some((f, s)) => (f.parse::<u8>().ok(), s.parse::<u16>().ok()),
            None => (key.parse::<u8>().ok(), None),
        };
        let Some(fc) = fc else { continue };
        let e = functions.entry(fc).or_default();
        if let Some(sub) = sub {
            e.insert(sub);
        }
    }
    if functions.is_empty() {
        let _ = writeln!(
            out,
            "      # {id}: only writes seen fewer than {} times ({}); not learned",
            opts.min_writes,
            left_out.join(", ")
        );
        return;
    }
    let writes_kept = c
        .write_counts
        .keys()
        .any(|k| !left_out.iter().any(|l| l.starts_with(&format!("{k} "))));
    let _ = writeln!(out, "      - id: {id}");
    let _ = writeln!(out, "        from: [{}]", yaml_str(from));
    let _ = writeln!(out, "        unit_ids: [{}]", c.unit);
    let list: Vec<String> = functions
        .iter()
        .map(|(fc, subs)| function_entry(*fc, subs))
        .collect();
    let _ = writeln!(out, "        functions: [{}]", list.join(", "));
    for table in ["coils", "discrete", "input", "holding"] {
        let mut set = c.reads.get(table).cloned().unwrap_or_default();
        if writes_kept {
            for [a, b] in c.writes.get(table).map(|w| w.0.clone()).unwrap_or_default() {
                set.insert(a, b);
            }
        }
        if !set.0.is_empty() {
            let _ = writeln!(out, "        {table}: {}", ranges(&set));
        }
    }
    if writes_kept && !c.values.is_empty() {
        let lo = c.values.values().map(|v| v[0]).min().unwrap_or(0);
        let hi = c.values.values().map(|v| v[1]).max().unwrap_or(0);
        let _ = writeln!(out, "        values: {{min: {lo}, max: {hi}}}");
    }
    let counts: Vec<String> = c
        .functions
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect();
    let mut why = format!(
        "learned: {} requests, first {}, last {}; functions {}",
        c.requests,
        rfc3339(c.first_seen_us),
        rfc3339(c.last_seen_us),
        counts.join(", ")
    );
    if !left_out.is_empty() {
        let _ = write!(
            why,
            "; left out (fewer than {} writes): {}",
            opts.min_writes,
            left_out.join(", ")
        );
    }
    let _ = writeln!(out, "        justification: {}", yaml_str(&why));
}

/// The model text learned from `baseline` (with zone names from `base` where given).
pub fn synthesize(baseline: &Baseline, base: Option<&Model>, opts: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by `zonegate learn` from {} requests ({}).",
        baseline.requests,
        opts.sources.join(", ")
    );
    let _ = writeln!(
        out,
        "# Review every rule before enforcing: a rule admits only what the capture showed."
    );
    let mut channels: Vec<_> = baseline.keyed().collect();
    channels.sort_by_key(|(k, _)| *k);
    let masters: BTreeSet<IpAddr> = channels.iter().map(|(k, _)| k.master).collect();
    let slaves: BTreeMap<IpAddr, BTreeSet<u8>> =
        channels.iter().fold(BTreeMap::new(), |mut m, (k, _)| {
            m.entry(k.slave)
                .or_insert_with(BTreeSet::new)
                .insert(k.unit);
            m
        });
    // Zones: those of the base model that hold observed addresses, then the learned ones.
    let mut zones: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut add_asset = |zone: &str, asset: String, network: Option<String>| {
        let z = zones.entry(zone.to_string()).or_default();
        if let Some(n) = network {
            if !z.0.contains(&n) {
                z.0.push(n);
            }
        }
        if !z.1.contains(&asset) {
            z.1.push(asset);
        }
    };
    for &m in &masters {
        let p = place(base, m, "LEARNED-MASTERS");
        let id = p.asset.clone().unwrap_or_else(|| format!("M-{}", slug(m)));
        add_asset(
            &p.zone,
            format!("{{id: {id}, address: {}}}", yaml_str(&m.to_string())),
            None,
        );
    }
    for (&s, units) in &slaves {
        let p = place(base, s, &format!("LEARNED-{}", slug(s)));
        let id = p.asset.clone().unwrap_or_else(|| format!("S-{}", slug(s)));
        let units: Vec<String> = units.iter().map(u8::to_string).collect();
        let net = (p.zone.starts_with("LEARNED-")).then(|| {
            if s.is_ipv4() {
                format!("{s}/32")
            } else {
                format!("{s}/128")
            }
        });
        add_asset(
            &p.zone,
            format!(
                "{{id: {id}, address: {}, unit_ids: [{}]}}",
                yaml_str(&s.to_string()),
                units.join(", ")
            ),
            net,
        );
    }
    if let Some(model) = base {
        for (id, (nets, _)) in zones.iter_mut() {
            if let Some(z) = model.zones.iter().find(|z| &z.id == id) {
                for n in &z.networks {
                    let n = n.value.to_string();
                    if !nets.contains(&n) {
                        nets.push(n);
                    }
                }
            }
        }
    }
    let _ = writeln!(out, "\nzones:");
    for (id, (nets, assets)) in &zones {
        let _ = writeln!(out, "  - zone_id: {id}");
        if !nets.is_empty() {
            let nets: Vec<String> = nets.iter().map(|n| yaml_str(n)).collect();
            let _ = writeln!(out, "    networks: [{}]", nets.join(", "));
        }
        let _ = writeln!(out, "    assets:");
        for a in assets {
            let _ = writeln!(out, "      - {a}");
        }
    }
    let _ = writeln!(out, "\nconduits:");
    for &s in slaves.keys() {
        let sp = place(base, s, &format!("LEARNED-{}", slug(s)));
        let mut connects: BTreeSet<String> = BTreeSet::new();
        for (k, _) in channels.iter().filter(|(k, _)| k.slave == s) {
            connects.insert(place(base, k.master, "LEARNED-MASTERS").zone);
        }
        connects.insert(sp.zone.clone());
        let connects: Vec<String> = connects.into_iter().collect();
        let _ = writeln!(out, "  - conduit_id: C-{}", slug(s));
        let _ = writeln!(out, "    connects: [{}]", connects.join(", "));
        let _ = writeln!(out, "    rules:");
        for (k, c) in channels.iter().filter(|(k, _)| k.slave == s) {
            let id = format!("{}-unit-{}", slug(k.master), k.unit);
            rule(&mut out, &id, &k.master.to_string(), c, opts);
        }
    }
    out
}
