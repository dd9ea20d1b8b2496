//! `zonegate report`: the IEC 62443 Zone Implementation Report.
//!
//! [`build`] gathers a [`Report`] from the model, the check findings and optional probe results;
//! [`render_text`], [`render_markdown`], [`render_html`] and `serde_json` (the [`Report`] is
//! `Serialize`) present it. The text form follows the layout integrators know: a header, then
//! `ZONE ARCHITECTURE`, `CONDUIT CONFIGURATION` and `VALIDATION RESULTS`. The HTML form is one
//! self-contained file (inline CSS) with the zone/conduit graph drawn as inline SVG.

use std::fmt::Write as _;

use serde::Serialize;

use crate::allowed::DIAGNOSTIC_SUBS;
use crate::check::{self, Finding};
use crate::model::{
    asset_label, fc_name, table_name, table_set, upstream_short, ConduitExt, GatewayExt, RuleView,
    Site, ZoneExt, TABLES,
};
use crate::probe::ProbeRun;
use crate::util::{html, html_text, md, today_utc};
use zonegate_policy::Conduit;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Report title.
    pub title: String,
    /// `facility`.
    pub facility: String,
    /// `assessment_date` (or "not stated").
    pub assessment_date: String,
    /// `standard` (or "not stated").
    pub standard: String,
    /// Date the report was generated (UTC).
    pub generated: String,
    /// The model file.
    pub model_file: String,
    /// Totals.
    pub summary: Summary,
    /// One row per zone, top of the Purdue model first.
    pub zones: Vec<ZoneRow>,
    /// One entry per conduit, in file order.
    pub conduits: Vec<ConduitRow>,
    /// One entry per one-way replication (`replications:`), in file order.
    pub replications: Vec<crate::replication::ReplicationRow>,
    /// `zonegate check` findings.
    pub findings: Vec<Finding>,
    /// Probe runs included with `--probe`.
    pub probes: Vec<ProbeRun>,
}

/// Totals for the header.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Zones.
    pub zones: usize,
    /// Conduits.
    pub conduits: usize,
    /// Conduits with a zonegate gateway in enforce mode that this build can run.
    pub enforced_conduits: usize,
    /// Allow rules over all conduits.
    pub rules: usize,
    /// Error findings.
    pub errors: usize,
    /// Warning findings.
    pub warnings: usize,
    /// Info findings.
    pub infos: usize,
    /// Probe tests passed.
    pub probe_passed: usize,
    /// Probe tests failed.
    pub probe_failed: usize,
}

/// One zone of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneRow {
    /// `zone_id`.
    pub id: String,
    /// `name`.
    pub name: String,
    /// Purdue level as text ("-" when absent).
    pub purdue: String,
    /// SL-T as text ("not set" when absent).
    pub sl_t: String,
    /// `criticality`.
    pub criticality: String,
    /// True when the zone holds a SIS.
    pub safety: bool,
    /// Asset labels (`AHU-01 (plc, 10.20.1.10, unit 1)` or the description).
    pub assets: Vec<String>,
    /// Networks.
    pub networks: Vec<String>,
    /// Conduits that connect the zone.
    pub conduits: Vec<String>,
    /// `security_requirements` as written.
    pub security_requirements: Vec<String>,
}

/// One `protocols_allowed` line.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolRow {
    /// Protocol.
    pub protocol: String,
    /// Port ("-" when none).
    pub port: String,
    /// Direction prose.
    pub direction: String,
    /// Security mode prose.
    pub security_mode: String,
}

/// One allow rule, as text fields.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRow {
    /// Rule id.
    pub id: String,
    /// Sources.
    pub from: String,
    /// Unit ids ("any").
    pub units: String,
    /// Functions the compiled rule allows (what the gateway lets through).
    pub functions: String,
    /// Functions the rule names that the compiled rule never allows (e.g. FC 1 under `read`
    /// when the rule gives no coil range).
    pub never_allowed: Vec<String>,
    /// Address ranges per table.
    pub ranges: String,
    /// Value bounds ("-").
    pub values: String,
    /// Rate ("-").
    pub rate: String,
    /// Justification ("-").
    pub justification: String,
}

/// One conduit of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ConduitRow {
    /// `conduit_id`.
    pub id: String,
    /// `name`.
    pub name: String,
    /// Zones it connects.
    pub connects: Vec<String>,
    /// Security level ("not set").
    pub sl: String,
    /// `protocols_allowed`.
    pub protocols: Vec<ProtocolRow>,
    /// `controls`.
    pub controls: Vec<String>,
    /// "ON (zonegate, enforce)", "MONITOR ONLY (...)", "OFF: configured, not enforceable by
    /// this build: ..." or "OFF (no zonegate gateway)".
    pub inspection: String,
    /// `listen -> upstream, deny action` when there is a gateway.
    pub gateway: Option<String>,
    /// Allow rules in order.
    pub rules: Vec<RuleRow>,
    /// What happens to everything else.
    pub default_action: String,
}

/// How the report describes a conduit's enforcement: the inspection line, the gateway line and
/// what happens to everything else. Enforcement is credited only where this build's
/// `zonegate run` can start the gateway ([`GatewayExt::runnable_now`]).
fn enforcement(c: &Conduit) -> (String, Option<String>, String) {
    let Some(g) = &c.gateway else {
        return (
            "OFF (no zonegate gateway)".to_owned(),
            None,
            "not enforced by zonegate (see controls)".to_owned(),
        );
    };
    let line = format!(
        "listen {} -> upstream {}, deny: {}",
        g.listen_serial
            .as_ref()
            .map_or_else(|| g.listen.to_string(), zonegate_policy::SerialLine::url),
        upstream_short(&g.upstream),
        g.deny.as_str()
    );
    match g.runnable_now() {
        Err(u) => (
            format!("OFF: configured, not enforceable by this build: {}", u.what),
            Some(line),
            format!(
                "not enforced: zonegate run refuses this model ({u}); nothing on this conduit is inspected"
            ),
        ),
        Ok(()) if g.enforce() => (
            if g.upstream.is_bus() {
                // The truth about a bus: zonegate is one master on it; frames of another
                // master wired to the same line never pass through it.
                "ON (zonegate, enforce); RTU bus master: requests through zonegate are inspected, those of other masters on the line are not".to_owned()
            } else {
                "ON (zonegate, enforce)".to_owned()
            },
            Some(line),
            format!(
                "DENY everything else (implicit default deny, answered with deny: {})",
                g.deny.as_str()
            ),
        ),
        Ok(()) => (
            "MONITOR ONLY (zonegate, monitor: logs, forwards everything)".to_owned(),
            Some(line),
            "everything else is LOGGED as would_deny and forwarded (monitor mode)".to_owned(),
        ),
    }
}

/// "read_holding_registers (3)", with the FC 8 sub-functions / FC 43 MEI types when the rule
/// allows only some.
fn function_label(r: &RuleView<'_>, fc: u8) -> String {
    let base = format!("{} ({fc})", fc_name(fc));
    let subs = r.allowed.subs(fc);
    let all = match fc {
        8 => subs.len() == DIAGNOSTIC_SUBS.len(),
        43 => subs.len() == 2,
        _ => true,
    };
    if all {
        base
    } else {
        let word = if fc == 8 { "sub-function" } else { "MEI type" };
        let list: Vec<String> = subs.iter().map(u16::to_string).collect();
        format!("{base} {word} {}", list.join(","))
    }
}

fn rule_row(r: &RuleView<'_>) -> RuleRow {
    let allowed = r.functions();
    let functions = if allowed.is_empty() {
        "none (the compiled rule allows no request)".to_owned()
    } else {
        allowed
            .iter()
            .map(|f| function_label(r, *f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let never: Vec<String> = r
        .named_codes()
        .iter()
        .filter(|f| !allowed.contains(f))
        .map(|f| format!("{} ({f})", fc_name(*f)))
        .collect();
    let ranges: Vec<String> = TABLES
        .iter()
        .map(|t| (*t, table_set(r, *t)))
        .filter(|(_, set)| !set.is_empty())
        .map(|(t, set)| format!("{} {set}", table_name(t)))
        .collect();
    RuleRow {
        id: r.id.clone(),
        from: r
            .from
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        units: r.unit_ids.as_ref().map_or("any".into(), |u| join_u8(u)),
        functions,
        never_allowed: never,
        ranges: if ranges.is_empty() {
            "-".into()
        } else {
            ranges.join("; ")
        },
        values: r
            .values
            .map_or("-".into(), |b| format!("{}..{}", b.min, b.max)),
        rate: r.rate.map_or("-".into(), |x| x.to_string()),
        justification: r.justification.clone().unwrap_or_else(|| "-".into()),
    }
}

/// Builds the report (findings computed here).
pub fn build(site: &Site, probes: Vec<ProbeRun>) -> Report {
    let findings = check::check(site);
    let (errors, warnings, infos) = check::counts(&findings);
    let mut order: Vec<usize> = (0..site.zones.len()).collect();
    order.sort_by(|a, b| {
        let la = site.zones[*a].purdue_level.map_or(-1.0, |p| p.high());
        let lb = site.zones[*b].purdue_level.map_or(-1.0, |p| p.high());
        lb.total_cmp(&la)
    });
    let zones = order
        .iter()
        .map(|&i| {
            let z = &site.zones[i];
            let conduits: Vec<String> = site
                .conduits
                .iter()
                .filter(|c| c.connects.iter().any(|id| id.value == z.id))
                .map(|c| c.id.clone())
                .collect();
            ZoneRow {
                id: z.id.clone(),
                name: z.name.clone().unwrap_or_default(),
                purdue: z.purdue_level.map_or("-".into(), |p| p.to_string()),
                sl_t: z.sl_t().map_or("not set".into(), |s| s.display()),
                criticality: z.criticality.clone().unwrap_or_else(|| "-".into()),
                safety: z.is_sis(),
                assets: z
                    .assets
                    .iter()
                    .map(|a| {
                        let mut bits = Vec::new();
                        if let Some(k) = a.kind {
                            bits.push(k.as_str().to_owned());
                        }
                        if let Some(ip) = a.address {
                            bits.push(ip.to_string());
                        }
                        if !a.unit_ids.is_empty() {
                            bits.push(format!("unit {}", join_u8(&a.unit_ids)));
                        }
                        let label = asset_label(a);
                        if bits.is_empty() {
                            label
                        } else {
                            format!("{label} ({})", bits.join(", "))
                        }
                    })
                    .collect(),
                networks: z.networks.iter().map(|n| n.value.to_string()).collect(),
                conduits,
                security_requirements: z.security_requirements.clone(),
            }
        })
        .collect();
    let conduits = site
        .conduits
        .iter()
        .map(|c| {
            let (inspection, gateway, default_action) = enforcement(c);
            ConduitRow {
                id: c.id.clone(),
                name: c.name.clone().unwrap_or_default(),
                connects: c.connects.iter().map(|z| z.value.clone()).collect(),
                sl: c.sl().map_or("not set".into(), |s| s.display()),
                protocols: c
                    .protocols_allowed
                    .iter()
                    .map(|p| ProtocolRow {
                        protocol: p.protocol.clone(),
                        port: p.port.clone().unwrap_or_else(|| "-".into()),
                        direction: p.direction.clone().unwrap_or_else(|| "-".into()),
                        security_mode: p.security_mode.clone().unwrap_or_else(|| "-".into()),
                    })
                    .collect(),
                controls: c.controls.clone(),
                inspection,
                gateway,
                rules: site.rules(c).iter().map(rule_row).collect(),
                default_action,
            }
        })
        .collect();
    let replications = crate::replication::report_rows(site, &probes);
    let probe_passed = probes.iter().map(|p| p.passed).sum();
    let probe_failed = probes.iter().map(|p| p.failed).sum();
    Report {
        title: "IEC 62443 Zone Implementation Report".into(),
        facility: site
            .facility
            .clone()
            .unwrap_or_else(|| "(facility not stated)".into()),
        assessment_date: site
            .assessment_date
            .clone()
            .unwrap_or_else(|| "not stated".into()),
        standard: site.standard.clone().unwrap_or_else(|| "not stated".into()),
        generated: today_utc(),
        model_file: site.file.clone(),
        summary: Summary {
            zones: site.zones.len(),
            conduits: site.conduits.len(),
            enforced_conduits: site.conduits.iter().filter(|c| c.enforced()).count(),
            rules: site.conduits.iter().map(|c| c.rules.len()).sum(),
            errors,
            warnings,
            infos,
            probe_passed,
            probe_failed,
        },
        zones,
        conduits,
        replications,
        findings,
        probes,
    }
}

impl Report {
    /// True when `zonegate check` finds errors in the model: `zonegate report` exits 1 then.
    pub fn has_errors(&self) -> bool {
        self.summary.errors > 0
    }

    /// The verdict every form of the report ends with.
    pub fn overall(&self) -> &'static str {
        if self.summary.errors == 0 && self.summary.probe_failed == 0 {
            "PASS: no design errors, no failed probe"
        } else {
            "ATTENTION: design errors or failed probes above"
        }
    }
}

fn join_u8(v: &[u8]) -> String {
    v.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")
}

const RULE: &str =
    "================================================================================";
const THIN: &str =
    "--------------------------------------------------------------------------------";

/// Plain-text report.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "{RULE}");
    let _ = writeln!(w, "{}", r.title.to_uppercase());
    let _ = writeln!(w, "{RULE}");
    let _ = writeln!(w, "Facility:         {}", r.facility);
    let _ = writeln!(w, "Assessment date:  {}", r.assessment_date);
    let _ = writeln!(w, "Standard:         {}", r.standard);
    let _ = writeln!(w, "Model:            {}", r.model_file);
    let _ = writeln!(
        w,
        "Generated:        {} (zonegate {})",
        r.generated,
        env!("CARGO_PKG_VERSION")
    );
    let sm = &r.summary;
    let _ = writeln!(
        w,
        "Summary:          {} zones, {} conduits ({} enforced by zonegate), {} allow rules",
        sm.zones, sm.conduits, sm.enforced_conduits, sm.rules
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "ZONE ARCHITECTURE");
    let _ = writeln!(w, "{THIN}");
    for z in &r.zones {
        let _ = writeln!(w, "Zone {}  {}", z.id, z.name);
        let _ = writeln!(w, "  Purdue level:     {}", z.purdue);
        let _ = writeln!(w, "  SL-T:             {}", z.sl_t);
        let _ = writeln!(
            w,
            "  Criticality:      {}{}",
            z.criticality,
            if z.safety { "  [safety zone]" } else { "" }
        );
        let _ = writeln!(
            w,
            "  Networks:         {}",
            if z.networks.is_empty() {
                "-".to_owned()
            } else {
                z.networks.join(", ")
            }
        );
        let _ = writeln!(w, "  Assets ({}):", z.assets.len());
        for a in &z.assets {
            let _ = writeln!(w, "    - {a}");
        }
        let _ = writeln!(
            w,
            "  Conduits:         {}",
            if z.conduits.is_empty() {
                "none (isolated)".to_owned()
            } else {
                z.conduits.join(", ")
            }
        );
        if !z.security_requirements.is_empty() {
            let _ = writeln!(w, "  Security requirements:");
            for c in &z.security_requirements {
                let _ = writeln!(w, "    - {c}");
            }
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "CONDUIT CONFIGURATION");
    let _ = writeln!(w, "{THIN}");
    for c in &r.conduits {
        let _ = writeln!(w, "Conduit {}  {}", c.id, c.name);
        let _ = writeln!(w, "  Connects:         {}", c.connects.join(" <-> "));
        let _ = writeln!(w, "  Security level:   {}", c.sl);
        let _ = writeln!(w, "  Modbus inspection: {}", c.inspection);
        if let Some(g) = &c.gateway {
            let _ = writeln!(w, "  Gateway:          {g}");
        }
        if !c.protocols.is_empty() {
            let _ = writeln!(w, "  Protocols allowed:");
            for p in &c.protocols {
                let _ = writeln!(
                    w,
                    "    - {}{}: {} [{}]",
                    p.protocol,
                    port_text(&p.port),
                    p.direction,
                    p.security_mode
                );
            }
        }
        if !c.controls.is_empty() {
            let _ = writeln!(w, "  Controls:");
            for x in &c.controls {
                let _ = writeln!(w, "    - {x}");
            }
        }
        if !c.rules.is_empty() {
            if c.inspection.starts_with("OFF") {
                let _ = writeln!(
                    w,
                    "  Allow rules (configured, NOT enforced by this build; first match wins):"
                );
            } else {
                let _ = writeln!(w, "  Allow rules (first match wins):");
            }
            for (i, rr) in c.rules.iter().enumerate() {
                let _ = writeln!(w, "    {}. ALLOW {}", i + 1, rr.id);
                let _ = writeln!(w, "         from:      {}", rr.from);
                let _ = writeln!(w, "         units:     {}", rr.units);
                let _ = writeln!(w, "         functions: {}", rr.functions);
                if !rr.never_allowed.is_empty() {
                    let _ = writeln!(
                        w,
                        "         named but never allowed: {}",
                        rr.never_allowed.join(", ")
                    );
                }
                let _ = writeln!(w, "         ranges:    {}", rr.ranges);
                if rr.values != "-" {
                    let _ = writeln!(w, "         values:    {}", rr.values);
                }
                if rr.rate != "-" {
                    let _ = writeln!(w, "         rate:      {}", rr.rate);
                }
                let _ = writeln!(w, "         why:       {}", rr.justification);
            }
        }
        let _ = writeln!(w, "  Default:          {}", c.default_action);
        let _ = writeln!(w);
    }
    crate::replication::render_text(&r.replications, w);
    let _ = writeln!(w, "VALIDATION RESULTS");
    let _ = writeln!(w, "{THIN}");
    let _ = writeln!(
        w,
        "Design checks (zonegate check): {} error(s), {} warning(s), {} info(s)",
        sm.errors, sm.warnings, sm.infos
    );
    if r.findings.is_empty() {
        let _ = writeln!(w, "  No findings.");
    }
    for f in &r.findings {
        let _ = writeln!(
            w,
            "  [{}] {} line {}: {}: {}",
            f.severity.as_str().to_uppercase(),
            f.id,
            f.line,
            f.element,
            f.message
        );
    }
    if r.probes.is_empty() {
        let _ = writeln!(
            w,
            "Commissioning probes: none included (run `zonegate probe` and pass --probe)."
        );
    }
    for p in &r.probes {
        let _ = writeln!(
            w,
            "Commissioning probe of {} via {} from {} at {}: {} passed, {} failed",
            p.conduit, p.gateway, p.source, p.started, p.passed, p.failed
        );
        for n in &p.notes {
            let _ = writeln!(w, "  note: {n}");
        }
        for t in &p.tests {
            let _ = writeln!(
                w,
                "  {} {:<28} expect {:<5} {}: {}",
                if t.pass { "PASS" } else { "FAIL" },
                t.name,
                t.expect,
                t.request,
                t.outcome
            );
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "Overall: {}", r.overall());
    let _ = writeln!(w, "{RULE}");
    s
}

/// Markdown report (GitHub-flavoured tables).
pub fn render_markdown(r: &Report) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# {}\n", r.title);
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| Facility | {} |", md(&r.facility));
    let _ = writeln!(w, "| Assessment date | {} |", md(&r.assessment_date));
    let _ = writeln!(w, "| Standard | {} |", md(&r.standard));
    let _ = writeln!(w, "| Model | `{}` |", md(&r.model_file));
    let _ = writeln!(w, "| Generated | {} |", r.generated);
    let sm = &r.summary;
    let _ = writeln!(
        w,
        "| Summary | {} zones, {} conduits ({} enforced by zonegate), {} allow rules |\n",
        sm.zones, sm.conduits, sm.enforced_conduits, sm.rules
    );
    let _ = writeln!(w, "## Zone architecture\n");
    let _ = writeln!(
        w,
        "| Zone | Name | Purdue | SL-T | Criticality | Assets | Networks | Conduits |\n|---|---|---|---|---|---|---|---|"
    );
    for z in &r.zones {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            md(&z.id),
            md(&z.name),
            z.purdue,
            md(&z.sl_t),
            md(&z.criticality),
            z.assets.len(),
            md(&z.networks.join(", ")),
            md(&z.conduits.join(", "))
        );
    }
    let _ = writeln!(w);
    for z in &r.zones {
        if z.assets.is_empty() && z.security_requirements.is_empty() {
            continue;
        }
        let _ = writeln!(w, "**{}** assets: {}", md(&z.id), md(&z.assets.join("; ")));
        if !z.security_requirements.is_empty() {
            let _ = writeln!(
                w,
                " — security requirements: {}",
                md(&z.security_requirements.join("; "))
            );
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Conduit configuration\n");
    for c in &r.conduits {
        let _ = writeln!(w, "### {} {}\n", md(&c.id), md(&c.name));
        let _ = writeln!(w, "- Connects: {}", md(&c.connects.join(" ↔ ")));
        let _ = writeln!(w, "- Security level: {}", md(&c.sl));
        let _ = writeln!(w, "- Modbus inspection: **{}**", md(&c.inspection));
        if let Some(g) = &c.gateway {
            let _ = writeln!(w, "- Gateway: `{}`", md(g));
        }
        for p in &c.protocols {
            let _ = writeln!(
                w,
                "- Protocol: {}{}: {} [{}]",
                md(&p.protocol),
                md(&port_text(&p.port)),
                md(&p.direction),
                md(&p.security_mode)
            );
        }
        for x in &c.controls {
            let _ = writeln!(w, "- Control: {}", md(x));
        }
        if !c.rules.is_empty() {
            let _ = writeln!(
                w,
                "\n| # | Rule | From | Units | Functions | Ranges | Values | Rate | Justification |\n|---|---|---|---|---|---|---|---|---|"
            );
            for (i, rr) in c.rules.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    i + 1,
                    md(&rr.id),
                    md(&rr.from),
                    md(&rr.units),
                    md(&functions_cell(rr)),
                    md(&rr.ranges),
                    md(&rr.values),
                    md(&rr.rate),
                    md(&rr.justification)
                );
            }
        }
        let _ = writeln!(w, "\nDefault: {}\n", md(&c.default_action));
    }
    crate::replication::render_markdown(&r.replications, w);
    let _ = writeln!(w, "## Validation results\n");
    let _ = writeln!(
        w,
        "Design checks: **{} error(s), {} warning(s), {} info(s)**\n",
        sm.errors, sm.warnings, sm.infos
    );
    if !r.findings.is_empty() {
        let _ = writeln!(
            w,
            "| Severity | Id | Line | Element | Finding |\n|---|---|---|---|---|"
        );
        for f in &r.findings {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                f.severity.as_str(),
                f.id,
                f.line,
                md(&f.element),
                md(&f.message)
            );
        }
        let _ = writeln!(w);
    }
    for p in &r.probes {
        let _ = writeln!(
            w,
            "Probe of **{}** via `{}` from `{}` at {}: {} passed, {} failed\n",
            md(&p.conduit),
            p.gateway,
            p.source,
            p.started,
            p.passed,
            p.failed
        );
        let _ = writeln!(
            w,
            "| Result | Test | Expect | Request | Outcome |\n|---|---|---|---|---|"
        );
        for t in &p.tests {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                if t.pass { "PASS" } else { "**FAIL**" },
                md(&t.name),
                t.expect,
                md(&t.request),
                md(&t.outcome)
            );
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "**Overall: {}**", r.overall());
    s
}

/// " (port 502)", or nothing for an entry without a port (a serial line).
fn port_text(port: &str) -> String {
    if port == "-" || port.is_empty() {
        String::new()
    } else {
        format!(" (port {port})")
    }
}

/// The functions cell of a rule table: what is allowed, then what is named but never allowed.
fn functions_cell(rr: &RuleRow) -> String {
    if rr.never_allowed.is_empty() {
        rr.functions.clone()
    } else {
        format!(
            "{}; named but never allowed: {}",
            rr.functions,
            rr.never_allowed.join(", ")
        )
    }
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#1b1f24;max-width:1200px}\
h1{border-bottom:3px solid #1f4e79;padding-bottom:.3em}h2{color:#1f4e79;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.92em}th,td{border:1px solid #c8ced6;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#eef2f7}.err{color:#b00020;font-weight:bold}.warn{color:#a15c00}.info{color:#555}.pass{color:#1a7f37;font-weight:bold}.fail{color:#b00020;font-weight:bold}\
.on{color:#1a7f37;font-weight:bold}.off{color:#b00020}.mon{color:#a15c00;font-weight:bold}svg{border:1px solid #c8ced6;background:#fafbfc}\
code{background:#f1f3f5;padding:0 .2em}";

/// A self-contained HTML page (inline CSS, inline SVG graph).
pub fn render_html(r: &Report, site: &Site) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - {}</title><style>{CSS}</style></head><body>",
        html(&r.title),
        html(&r.facility)
    );
    let _ = writeln!(w, "<h1>{}</h1>", html_text(&r.title));
    let _ = writeln!(w, "<table><tbody>");
    for (k, v) in [
        ("Facility", &r.facility),
        ("Assessment date", &r.assessment_date),
        ("Standard", &r.standard),
        ("Model", &r.model_file),
        ("Generated", &r.generated),
    ] {
        let _ = writeln!(w, "<tr><th>{k}</th><td>{}</td></tr>", html_text(v));
    }
    let sm = &r.summary;
    let _ = writeln!(
        w,
        "<tr><th>Summary</th><td>{} zones, {} conduits ({} enforced by zonegate), {} allow rules; {} error(s), {} warning(s)</td></tr></tbody></table>",
        sm.zones, sm.conduits, sm.enforced_conduits, sm.rules, sm.errors, sm.warnings
    );
    let _ = writeln!(w, "<h2>Zone and conduit diagram</h2>");
    w.push_str(&crate::diagram::svg(site));
    let _ = writeln!(w, "<h2>Zone architecture</h2>");
    let _ = writeln!(
        w,
        "<table><thead><tr><th>Zone</th><th>Name</th><th>Purdue</th><th>SL-T</th><th>Criticality</th><th>Assets</th><th>Networks</th><th>Conduits</th><th>Security requirements</th></tr></thead><tbody>"
    );
    for z in &r.zones {
        let _ = writeln!(
            w,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_text(&z.id),
            html_text(&z.name),
            html_text(&z.purdue),
            html_text(&z.sl_t),
            html_text(&z.criticality),
            list(&z.assets),
            html_text(&z.networks.join(", ")),
            html_text(&z.conduits.join(", ")),
            list(&z.security_requirements)
        );
    }
    let _ = writeln!(w, "</tbody></table>");
    let _ = writeln!(w, "<h2>Conduit configuration</h2>");
    for c in &r.conduits {
        let class = if c.inspection.starts_with("ON") {
            "on"
        } else if c.inspection.starts_with("MONITOR") {
            "mon"
        } else {
            "off"
        };
        let _ = writeln!(
            w,
            "<h3>{} {}</h3><p>Connects {} &middot; security level {} &middot; Modbus inspection <span class=\"{class}\">{}</span></p>",
            html_text(&c.id),
            html_text(&c.name),
            html_text(&c.connects.join(" ↔ ")),
            html_text(&c.sl),
            html_text(&c.inspection)
        );
        if let Some(g) = &c.gateway {
            let _ = writeln!(w, "<p>Gateway: <code>{}</code></p>", html_text(g));
        }
        if !c.protocols.is_empty() {
            let _ = writeln!(w, "<table><thead><tr><th>Protocol</th><th>Port</th><th>Direction</th><th>Security mode</th></tr></thead><tbody>");
            for p in &c.protocols {
                let _ = writeln!(
                    w,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html_text(&p.protocol),
                    html_text(&p.port),
                    html_text(&p.direction),
                    html_text(&p.security_mode)
                );
            }
            let _ = writeln!(w, "</tbody></table>");
        }
        if !c.controls.is_empty() {
            let _ = writeln!(w, "<p>Controls: {}</p>", list(&c.controls));
        }
        if !c.rules.is_empty() {
            let _ = writeln!(w, "<table><thead><tr><th>#</th><th>Allow rule</th><th>From</th><th>Units</th><th>Functions</th><th>Ranges</th><th>Values</th><th>Rate</th><th>Justification</th></tr></thead><tbody>");
            for (i, rr) in c.rules.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "<tr><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    i + 1,
                    html_text(&rr.id),
                    html_text(&rr.from),
                    html_text(&rr.units),
                    html_text(&functions_cell(rr)),
                    html_text(&rr.ranges),
                    html_text(&rr.values),
                    html_text(&rr.rate),
                    html_text(&rr.justification)
                );
            }
            let _ = writeln!(w, "</tbody></table>");
        }
        let _ = writeln!(w, "<p>Default: {}</p>", html_text(&c.default_action));
    }
    crate::replication::render_html(&r.replications, w);
    let _ = writeln!(w, "<h2>Validation results</h2>");
    let _ = writeln!(
        w,
        "<p>Design checks: <span class=\"{}\">{} error(s)</span>, {} warning(s), {} info(s)</p>",
        if sm.errors > 0 { "err" } else { "pass" },
        sm.errors,
        sm.warnings,
        sm.infos
    );
    if !r.findings.is_empty() {
        let _ = writeln!(w, "<table><thead><tr><th>Severity</th><th>Id</th><th>Line</th><th>Element</th><th>Finding</th></tr></thead><tbody>");
        for f in &r.findings {
            let class = match f.severity {
                check::Severity::Error => "err",
                check::Severity::Warning => "warn",
                check::Severity::Info => "info",
            };
            let _ = writeln!(
                w,
                "<tr><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.severity.as_str(),
                f.id,
                f.line,
                html_text(&f.element),
                html_text(&f.message)
            );
        }
        let _ = writeln!(w, "</tbody></table>");
    }
    for p in &r.probes {
        let _ = writeln!(
            w,
            "<h3>Probe of {} via {} from {}</h3><p>{} &middot; {} passed, {} failed</p>",
            html_text(&p.conduit),
            html_text(&p.gateway),
            html_text(&p.source),
            html_text(&p.started),
            p.passed,
            p.failed
        );
        let _ = writeln!(w, "<table><thead><tr><th>Result</th><th>Test</th><th>Expect</th><th>Request</th><th>Outcome</th></tr></thead><tbody>");
        for t in &p.tests {
            let _ = writeln!(
                w,
                "<tr><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if t.pass { "pass" } else { "fail" },
                if t.pass { "PASS" } else { "FAIL" },
                html_text(&t.name),
                html_text(&t.expect),
                html_text(&t.request),
                html_text(&t.outcome)
            );
        }
        let _ = writeln!(w, "</tbody></table>");
    }
    let _ = writeln!(
        w,
        "<p class=\"{}\"><b>Overall: {}</b></p>",
        if r.summary.errors == 0 && r.summary.probe_failed == 0 {
            "pass"
        } else {
            "err"
        },
        html_text(r.overall())
    );
    let _ = writeln!(w, "</body></html>");
    s
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "-".into();
    }
    let mut s = String::from("<ul>");
    for i in items {
        let _ = write!(s, "<li>{}</li>", html_text(i));
    }
    s.push_str("</ul>");
    s
}

pub use crate::diagram::svg;
