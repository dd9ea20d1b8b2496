//! `zonegate check`: machine checks of a zone/conduit design.
//!
//! Every finding has a stable id (`ZG-C001` ...), a severity, the element it concerns and the YAML
//! line. [`CHECKS`] lists every id with what it checks; the ids never change meaning (retire, do not
//! reuse). The checks follow IEC 62443-3-2 (ZCR 3, 5.6, 6.4), the Purdue/DMZ convention and the
//! Modbus flow conventions of `shared/reference/modbus-and-iec62443.md` sections 3.2 and 4.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;

use crate::allowed::code_tables;
use crate::model::{
    asset_label, fc_name, is_write, protocol_port, table_name, table_set, upstream_ip, ConduitExt,
    GatewayExt, RuleView, Site, Source, ZoneExt, SENSITIVE_FCS, TABLES,
};
use zonegate_modbus::Table;
use zonegate_policy::{AddressSet, AssetKind, Cidr, Conduit, Fr, FunctionSelector};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The design is wrong or unsafe: `check` exits 1.
    Error,
    /// Probably wrong, or a weakness an assessor will flag.
    Warning,
    /// Worth knowing.
    Info,
}

impl Severity {
    /// "error" | "warning" | "info".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }

    /// The SARIF level.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "note",
        }
    }
}

/// Kind of element a finding concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// The model as a whole.
    Model,
    /// A zone.
    Zone,
    /// A conduit.
    Conduit,
    /// An asset.
    Asset,
    /// A gateway rule (`conduit/rule`).
    Rule,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable check id, e.g. `ZG-C009`.
    pub id: &'static str,
    /// Short name of the check.
    pub check: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What kind of element.
    pub subject: Subject,
    /// The element's id (`C1-OPS/historian-read` for a rule).
    pub element: String,
    /// What is wrong and why it matters.
    pub message: String,
    /// The model file.
    pub file: String,
    /// 1-based YAML line.
    pub line: u32,
}

/// Static description of one check.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CheckInfo {
    /// Stable id.
    pub id: &'static str,
    /// Short kebab-case name.
    pub name: &'static str,
    /// Default severity (some checks also emit a lower one, see `description`).
    pub severity: Severity,
    /// What it checks and the basis.
    pub description: &'static str,
}

macro_rules! checks {
    ($($id:literal $name:literal $sev:ident $desc:literal;)*) => {
        /// Every check, in id order.
        pub const CHECKS: &[CheckInfo] = &[
            $(CheckInfo { id: $id, name: $name, severity: Severity::$sev, description: $desc },)*
        ];
    };
}

checks! {
    "ZG-C001" "duplicate-id" Error "Zone, conduit, structured asset and rule ids are unique (a rule id within its conduit).";
    "ZG-C002" "unknown-reference" Error "Every zone a conduit connects, every conduit a zone allows and every rule source (zone, asset or CIDR) exists.";
    "ZG-C003" "conduit-endpoints" Error "A conduit connects at least 2 distinct zones and lists no zone twice (IEC 62443-3-2 ZCR 3.1).";
    "ZG-C004" "allowed-conduits-mismatch" Error "A zone's allowed_conduits and the conduits' connects agree both ways.";
    "ZG-C005" "asset-in-several-zones" Error "Every asset is in exactly one zone (same asset id or address in two zones).";
    "ZG-C006" "network-overlap" Error "An address lies in at most one zone's networks.";
    "ZG-C007" "asset-outside-zone-network" Error "An asset's address lies in its own zone's networks (error when it lies in another zone's network, warning when in none).";
    "ZG-C008" "sis-conduit-beyond-bpcs" Error "A zone holding a safety instrumented system (asset kind sis or a safety criticality) has conduits only to basic process control zones (Purdue 1-2), per IEC 61511 independence and ZCR 3.3.";
    "ZG-C009" "purdue-dmz-bypass" Error "No conduit path from a Purdue level >= 4 zone down to a level <= 2 zone avoids a level 3.5 DMZ zone (reachability over the conduit graph).";
    "ZG-C010" "conduit-sl-below-zone" Warning "A conduit's security level is not below the highest SL-T of the zones it connects, per FR.";
    "ZG-C011" "write-from-upper-level" Warning "Write-class Modbus (allowed by a rule, or declared in a Modbus protocols_allowed direction) from a zone at Purdue level >= 3 (warning) or >= 3.5, the DMZ and above (error).";
    "ZG-C012" "rule-source-outside-conduit" Error "Every rule source belongs to one of the zones its conduit connects.";
    "ZG-C013" "plaintext-modbus-high-sl" Error "No cleartext Modbus (TCP or RTU, no TLS) on a conduit whose zones have SL-T >= 3 (SR 3.1 RE1, SR 4.1, SR 1.2).";
    "ZG-C014" "sensitive-fc-unjustified" Error "A rule allowing FC 8, 17, 20, 21, 43 or 90 (diagnostics, identification, file and programming access) carries a justification.";
    "ZG-C015" "shadowed-rule" Warning "A rule is not shadowed by an earlier rule that allows a superset of its sources, units, functions and ranges with no extra constraint.";
    "ZG-C016" "rule-never-matches" Warning "A rule can match some request: non-empty sources, units that exist on the target zone's assets, a range for the tables its functions touch, min <= max.";
    "ZG-C017" "any-source-rule" Error "No rule allows any source (0.0.0.0/0, ::/0).";
    "ZG-C018" "write-into-sis" Error "Writes into a SIS zone are justified (error without justification, warning with one).";
    "ZG-C019" "sis-zone-mixed" Warning "A SIS zone holds only safety assets (IEC 62443-3-2 ZCR 3.3).";
    "ZG-C020" "missing-sl-target" Warning "Every zone has a security_level_target (IEC 62443-3-2 ZCR 5.6).";
    "ZG-C021" "missing-purdue-level" Info "Every zone has a purdue_level (reachability checks skip zones without one).";
    "ZG-C022" "duplicate-gateway-listen" Error "No two gateways listen on the same address and port.";
    "ZG-C023" "gateway-monitor-mode" Warning "A gateway in monitor mode forwards everything: the conduit is not enforced (SR 5.2 RE1).";
    "ZG-C024" "gateway-upstream-outside-zones" Warning "A gateway's upstream address lies in one of its conduit's zones.";
    "ZG-C025" "gateway-without-rules" Info "A gateway with no rules denies every request.";
    "ZG-C026" "no-audit-section" Warning "A model with gateways configures the audit trail (SR 2.8, SR 3.9).";
    "ZG-C027" "unbounded-write" Info "A write rule has a rate limit (SR 7.1 RE1) and, for registers, value bounds.";
    "ZG-C028" "undeclared-flows" Warning "A conduit declares its flows: protocols_allowed or a gateway (IEC 62443-3-2 ZCR 6.4).";
    "ZG-C029" "missing-conduit-sl" Warning "Every conduit has a security_level.";
    "ZG-C030" "unit-not-on-asset" Warning "Every unit id a rule names is on an asset of the conduit's target zone (when that zone lists unit ids).";
    "ZG-C031" "gateway-not-runnable" Error "Every gateway can be run by this build of zonegate (today: tcp://, tls://, rtu:// and rtu+tcp:// upstreams). zonegate run refuses a model with one that cannot, so none of its conduits is enforced.";
    "ZG-C032" "class-without-table" Warning "A function class in a rule has a table to act on: some of its table functions has an address range in the rule (otherwise the class allows none of them).";
    "ZG-C033" "file-record-by-class" Warning "FC 20/21 (file records) are allowed only by name: they touch no register table, so a class next to table ranges does not limit them to those ranges.";
    "ZG-C034" "fifo-pointer-only" Warning "A rule allowing FC 24 (read FIFO queue) knows the gateway checks only the pointer address, not the up to 31 queued registers the device returns.";
    "ZG-C035" "gateway-listens-everywhere" Warning "A gateway listens on the address of the interface its clients use, not on every interface (0.0.0.0 or ::).";
    "ZG-C036" "replication-reverse-flow" Error "Nothing flows back across a one-way replication: no rule with a source in its receiving zone, no protocols_allowed direction towards its sending zone, no replication the other way, on the same pair of zones.";
    "ZG-C037" "replication-endpoints" Error "A replication connects two distinct zones that exist ([from, to]).";
    "ZG-C038" "replication-max-age" Warning "A replication's max_age is longer than every block's period (else the replica answers 0x0B between reads).";
    "ZG-C039" "replication-address-mismatch" Warning "A replication's transmit.to is the receive side's bind address and port.";
    "ZG-C040" "replication-hmac" Info "A replication authenticated with HMAC-SHA256 gives the receive side a key that can forge data; Ed25519 keeps the secret on the transmit side.";
    "ZG-C041" "replication-source-unsupported" Warning "This build's transmit agent can read a replication's source (tcp://, tls://, rtu:// and rtu+tcp://: every upstream kind today; a kind it cannot read is refused by `zonegate run --side transmit`).";
}

/// The description of a check id.
pub fn info(id: &str) -> Option<&'static CheckInfo> {
    CHECKS.iter().find(|c| c.id == id)
}

struct Out<'a> {
    site: &'a Site,
    findings: Vec<Finding>,
}

impl Out<'_> {
    fn push(
        &mut self,
        id: &'static str,
        severity: Severity,
        subject: Subject,
        element: impl Into<String>,
        line: u32,
        message: impl Into<String>,
    ) {
        let check = info(id).map_or("", |c| c.name);
        self.findings.push(Finding {
            id,
            check,
            severity,
            subject,
            element: element.into(),
            message: message.into(),
            file: self.site.file.clone(),
            line,
        });
    }
}

/// Runs every check. Findings are sorted by line, then id.
pub fn check(site: &Site) -> Vec<Finding> {
    let mut out = Out {
        site,
        findings: Vec::new(),
    };
    duplicates(&mut out);
    references(&mut out);
    endpoints(&mut out);
    allowed_conduits(&mut out);
    assets(&mut out);
    networks(&mut out);
    sis(&mut out);
    purdue(&mut out);
    levels(&mut out);
    rules(&mut out);
    gateways(&mut out);
    out.findings.extend(crate::replication::findings(site));
    out.findings
        .sort_by(|a, b| (a.line, a.id, &a.element).cmp(&(b.line, b.id, &b.element)));
    out.findings
}

/// Runs every check on a model loaded by `zonegate-policy` (what `zonegate run` and `compile`
/// call before they start: refuse on [`has_errors`], print the warnings).
pub fn run(model: &zonegate_policy::Model) -> Vec<Finding> {
    check(&Site::new(model.clone()))
}

/// True when some finding is an error: `check`, `report`, `run` and `compile` refuse then.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// Counts per severity: (errors, warnings, infos).
pub fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    (n(Severity::Error), n(Severity::Warning), n(Severity::Info))
}

/// The items whose id an earlier item already used, each with the line of the latest earlier use.
fn reused<'a, T>(items: impl IntoIterator<Item = (&'a str, u32, T)>) -> Vec<(T, u32)> {
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    items
        .into_iter()
        .filter_map(|(id, line, item)| seen.insert(id, line).map(|first| (item, first)))
        .collect()
}

fn duplicates(out: &mut Out<'_>) {
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

fn references(out: &mut Out<'_>) {
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

fn endpoints(out: &mut Out<'_>) {
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

fn allowed_conduits(out: &mut Out<'_>) {
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

fn assets(out: &mut Out<'_>) {
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

fn networks(out: &mut Out<'_>) {
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

fn sis(out: &mut Out<'_>) {
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

fn purdue(out: &mut Out<'_>) {
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

fn levels(out: &mut Out<'_>) {
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

fn rules(out: &mut Out<'_>) {
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

fn gateways(out: &mut Out<'_>) {
    let site = out.site;
    let mut listens: BTreeMap<std::net::SocketAddr, &str> = BTreeMap::new();
    let mut any_gateway = false;
    for c in &site.conduits {
        let Some(g) = &c.gateway else { continue };
        any_gateway = true;
        if let Err(u) = g.runnable_now() {
            out.push(
                "ZG-C031",
                Severity::Error,
                Subject::Conduit,
                &c.id,
                g.line,
                format!(
                    "gateway of {} is configured, not enforceable by this build: {u}; zonegate run refuses this model, so none of its conduits is enforced",
                    c.id
                ),
            );
        }
        if g.listen.ip().is_unspecified() {
            out.push(
                "ZG-C035",
                Severity::Warning,
                Subject::Conduit,
                &c.id,
                g.line,
                format!(
                    "gateway of {} listens on {}, every interface of the host: listen on the address of the interface in the client zone",
                    c.id, g.listen
                ),
            );
        }
        // Port 0 asks the OS for a free port: two such listeners never clash.
        if g.listen.port() == 0 {
            continue;
        }
        if let Some(other) = listens.insert(g.listen, &c.id) {
            out.push(
                "ZG-C022",
                Severity::Error,
                Subject::Conduit,
                &c.id,
                g.line,
                format!(
                    "gateway of {} listens on {}, like the gateway of {other}",
                    c.id, g.listen
                ),
            );
        }
        if !g.enforce() {
            out.push(
                "ZG-C023",
                Severity::Warning,
                Subject::Conduit,
                &c.id,
                g.line,
                format!(
                    "gateway of {} is in monitor mode: it logs what it would deny and forwards everything",
                    c.id
                ),
            );
        }
        if let Some(ip) = upstream_ip(&g.upstream) {
            let zones = site.conduit_zones(c);
            let known = site.zones_of_address(ip).iter().any(|z| zones.contains(z));
            let any_info = zones.iter().any(|z| !site.zone_blocks(*z).is_empty());
            if !known && any_info {
                out.push(
                    "ZG-C024",
                    Severity::Warning,
                    Subject::Conduit,
                    &c.id,
                    g.line,
                    format!(
                        "gateway of {} forwards to {ip}, which is in none of the zones the conduit connects",
                        c.id
                    ),
                );
            }
        }
        if c.rules.is_empty() {
            out.push(
                "ZG-C025",
                Severity::Info,
                Subject::Conduit,
                &c.id,
                g.line,
                format!("gateway of {} has no rules: it denies every request", c.id),
            );
        }
    }
    if any_gateway && site.audit.is_none() {
        out.push(
            "ZG-C026",
            Severity::Warning,
            Subject::Model,
            "audit",
            1,
            "the model has gateways but no audit section: decisions go to stdout only (SR 2.8, SR 3.9)",
        );
    }
}

/// Renders findings for a terminal: `file:line: severity[ID] element: message`, then a summary.
pub fn render_text(findings: &[Finding], file: &str) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = writeln!(
            s,
            "{}:{}: {}[{}] {}: {}",
            f.file,
            f.line,
            f.severity.as_str(),
            f.id,
            f.element,
            f.message
        );
    }
    let (e, w, i) = counts(findings);
    let _ = writeln!(
        s,
        "{file}: {e} error(s), {w} warning(s), {i} info(s){}",
        if e == 0 { " - ok" } else { "" }
    );
    s
}

/// JSON: `{"file", "summary": {errors, warnings, infos}, "findings": [...]}`.
pub fn render_json(findings: &[Finding], file: &str) -> serde_json::Value {
    let (e, w, i) = counts(findings);
    serde_json::json!({
        "file": file,
        "summary": {"errors": e, "warnings": w, "infos": i},
        "findings": findings,
    })
}

/// SARIF 2.1.0 for GitHub code scanning: every check as a `tool.driver.rules` entry, every
/// finding as a result with `ruleId`, `level`, `message` and a physical location (uri + line).
pub fn render_sarif(findings: &[Finding]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = CHECKS
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "name": c.name,
                "shortDescription": {"text": c.description},
                "fullDescription": {"text": c.description},
                "defaultConfiguration": {"level": c.severity.sarif_level()},
                "help": {"text": c.description},
                "properties": {"tags": ["security", "iec62443"]},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let idx = CHECKS.iter().position(|c| c.id == f.id).unwrap_or(0);
            serde_json::json!({
                "ruleId": f.id,
                "ruleIndex": idx,
                "level": f.severity.sarif_level(),
                "message": {"text": format!("{}: {}", f.element, f.message)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(&f.file)},
                        "region": {"startLine": f.line.max(1)},
                    }
                }],
                "partialFingerprints": {"zonegateElement": format!("{}:{}", f.id, f.element)},
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "zonegate",
                "informationUri": "https://example.invalid/zonegate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// A relative path with forward slashes, as code scanning expects: leading `./` removed, and an
/// absolute path under the current directory made relative to it.
fn sarif_uri(file: &str) -> String {
    let path = std::path::Path::new(file);
    let rel = if path.is_absolute() {
        std::env::current_dir()
            .ok()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
            .unwrap_or_else(|| file.to_owned())
    } else {
        file.to_owned()
    };
    let f = rel.replace('\\', "/");
    f.strip_prefix("./").unwrap_or(&f).to_owned()
}
