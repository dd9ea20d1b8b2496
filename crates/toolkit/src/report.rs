//! `zonegate report`: the IEC 62443 Zone Implementation Report.
//!
//! [`build`] gathers a [`Report`] from the model, the check findings and optional probe results;
//! [`render_text`], [`render_markdown`], [`render_html`] and `serde_json` (the [`Report`] is
//! `Serialize`) present it. The text form follows the layout integrators know: a header, then
//! `ZONE ARCHITECTURE`, `CONDUIT CONFIGURATION` and `VALIDATION RESULTS`. The HTML form is one
//! self-contained file (inline CSS) with the zone/conduit graph drawn as inline SVG.

use std::fmt::Write as _;

use serde::Serialize;

use crate::check::{self, Finding};
use crate::model::{fc_name, Site, TABLES};
use crate::probe::ProbeRun;
use crate::util::{html, md, today_utc};

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
    /// Conduits with a zonegate gateway in enforce mode.
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
    /// Controls and requirements (`security_requirements`).
    pub controls: Vec<String>,
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
    /// Functions.
    pub functions: String,
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
    /// "ON (zonegate enforce)", "MONITOR ONLY (zonegate monitor)" or "OFF (no gateway)".
    pub inspection: String,
    /// `listen -> upstream, deny action` when there is a gateway.
    pub gateway: Option<String>,
    /// Allow rules in order.
    pub rules: Vec<RuleRow>,
    /// What happens to everything else.
    pub default_action: String,
}

/// Builds the report (findings computed here).
pub fn build(site: &Site, probes: Vec<ProbeRun>) -> Report {
    let findings = check::check(site);
    let (errors, warnings, infos) = check::counts(&findings);
    let mut order: Vec<usize> = (0..site.zones.len()).collect();
    order.sort_by(|a, b| {
        let la = site.zones[*a].purdue.map_or(-1.0, |p| p.high());
        let lb = site.zones[*b].purdue.map_or(-1.0, |p| p.high());
        lb.total_cmp(&la)
    });
    let zones = order
        .iter()
        .map(|&i| {
            let z = &site.zones[i];
            let conduits: Vec<String> = site
                .conduits
                .iter()
                .filter(|c| c.connects.iter().any(|(id, _)| id == &z.id))
                .map(|c| c.id.clone())
                .collect();
            ZoneRow {
                id: z.id.clone(),
                name: z.name.clone().unwrap_or_default(),
                purdue: z.purdue.map_or("-".into(), |p| p.to_string()),
                sl_t: z.sl_t.map_or("not set".into(), |s| s.display()),
                criticality: z.criticality.clone().unwrap_or_else(|| "-".into()),
                safety: z.is_sis(),
                assets: z
                    .assets
                    .iter()
                    .map(|a| {
                        let mut bits = Vec::new();
                        if let Some(k) = &a.kind {
                            bits.push(k.clone());
                        }
                        if let Some(ip) = a.address {
                            bits.push(ip.to_string());
                        }
                        if !a.unit_ids.is_empty() {
                            bits.push(format!("unit {}", join_u8(&a.unit_ids)));
                        }
                        if bits.is_empty() {
                            a.label.clone()
                        } else {
                            format!("{} ({})", a.label, bits.join(", "))
                        }
                    })
                    .collect(),
                networks: z.networks.iter().map(|(n, _)| n.to_string()).collect(),
                conduits,
                controls: z.security_requirements.clone(),
            }
        })
        .collect();
    let conduits = site
        .conduits
        .iter()
        .map(|c| {
            let (inspection, gateway) = match &c.gateway {
                Some(g) => (
                    if g.enforce {
                        "ON (zonegate, enforce)".to_owned()
                    } else {
                        "MONITOR ONLY (zonegate, monitor: logs, forwards everything)".to_owned()
                    },
                    Some(format!(
                        "listen {} -> upstream {}, deny: {}",
                        g.listen,
                        g.upstream.display(),
                        g.deny
                    )),
                ),
                None => ("OFF (no zonegate gateway)".to_owned(), None),
            };
            let default_action = match &c.gateway {
                Some(g) if g.enforce => {
                    "DENY everything else (implicit default deny, answered per `deny`)".to_owned()
                }
                Some(_) => "everything else is LOGGED as would_deny and forwarded (monitor mode)"
                    .to_owned(),
                None => "not enforced by zonegate (see controls)".to_owned(),
            };
            ConduitRow {
                id: c.id.clone(),
                name: c.name.clone().unwrap_or_default(),
                connects: c.connects.iter().map(|(z, _)| z.clone()).collect(),
                sl: c.sl.map_or("not set".into(), |s| s.display()),
                protocols: c
                    .protocols
                    .iter()
                    .map(|p| ProtocolRow {
                        protocol: p.protocol.clone(),
                        port: p.port.map_or("-".into(), |n| n.to_string()),
                        direction: p.direction.clone().unwrap_or_else(|| "-".into()),
                        security_mode: p.security_mode.clone().unwrap_or_else(|| "-".into()),
                    })
                    .collect(),
                controls: c.controls.clone(),
                inspection,
                gateway,
                rules: c
                    .rules
                    .iter()
                    .map(|r| RuleRow {
                        id: r.id.clone(),
                        from: r
                            .from
                            .iter()
                            .map(|(s, _)| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        units: r.unit_ids.as_ref().map_or("any".into(), |u| join_u8(u)),
                        functions: r
                            .functions
                            .iter()
                            .map(|f| format!("{} ({f})", fc_name(*f)))
                            .collect::<Vec<_>>()
                            .join(", "),
                        ranges: {
                            let v: Vec<String> = TABLES
                                .iter()
                                .zip(&r.tables)
                                .filter(|(_, r)| !r.is_empty())
                                .map(|(t, r)| {
                                    let rs: Vec<String> = r
                                        .iter()
                                        .map(|(a, b)| {
                                            if a == b {
                                                a.to_string()
                                            } else {
                                                format!("{a}-{b}")
                                            }
                                        })
                                        .collect();
                                    format!("{t} {}", rs.join(","))
                                })
                                .collect();
                            if v.is_empty() {
                                "-".into()
                            } else {
                                v.join("; ")
                            }
                        },
                        values: r.values.map_or("-".into(), |(a, b)| format!("{a}..{b}")),
                        rate: r.rate.clone().unwrap_or_else(|| "-".into()),
                        justification: r.justification.clone().unwrap_or_else(|| "-".into()),
                    })
                    .collect(),
                default_action,
            }
        })
        .collect();
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
            enforced_conduits: site
                .conduits
                .iter()
                .filter(|c| c.gateway.as_ref().is_some_and(|g| g.enforce))
                .count(),
            rules: site.conduits.iter().map(|c| c.rules.len()).sum(),
            errors,
            warnings,
            infos,
            probe_passed,
            probe_failed,
        },
        zones,
        conduits,
        findings,
        probes,
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
        if !z.controls.is_empty() {
            let _ = writeln!(w, "  Controls:");
            for c in &z.controls {
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
                    "    - {} (port {}): {} [{}]",
                    p.protocol, p.port, p.direction, p.security_mode
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
            let _ = writeln!(w, "  Allow rules (first match wins):");
            for (i, rr) in c.rules.iter().enumerate() {
                let _ = writeln!(w, "    {}. ALLOW {}", i + 1, rr.id);
                let _ = writeln!(w, "         from:      {}", rr.from);
                let _ = writeln!(w, "         units:     {}", rr.units);
                let _ = writeln!(w, "         functions: {}", rr.functions);
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
    let verdict = if sm.errors == 0 && sm.probe_failed == 0 {
        "PASS: no design errors, no failed probe"
    } else {
        "ATTENTION: design errors or failed probes above"
    };
    let _ = writeln!(w);
    let _ = writeln!(w, "Overall: {verdict}");
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
        if z.assets.is_empty() && z.controls.is_empty() {
            continue;
        }
        let _ = writeln!(w, "**{}** assets: {}", md(&z.id), md(&z.assets.join("; ")));
        if !z.controls.is_empty() {
            let _ = writeln!(w, " — controls: {}", md(&z.controls.join("; ")));
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
                "- Protocol: {} (port {}): {} [{}]",
                md(&p.protocol),
                p.port,
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
                    md(&rr.functions),
                    md(&rr.ranges),
                    md(&rr.values),
                    md(&rr.rate),
                    md(&rr.justification)
                );
            }
        }
        let _ = writeln!(w, "\nDefault: {}\n", md(&c.default_action));
    }
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
    s
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
    let _ = writeln!(w, "<h1>{}</h1>", html(&r.title));
    let _ = writeln!(w, "<table><tbody>");
    for (k, v) in [
        ("Facility", &r.facility),
        ("Assessment date", &r.assessment_date),
        ("Standard", &r.standard),
        ("Model", &r.model_file),
        ("Generated", &r.generated),
    ] {
        let _ = writeln!(w, "<tr><th>{k}</th><td>{}</td></tr>", html(v));
    }
    let sm = &r.summary;
    let _ = writeln!(
        w,
        "<tr><th>Summary</th><td>{} zones, {} conduits ({} enforced by zonegate), {} allow rules; {} error(s), {} warning(s)</td></tr></tbody></table>",
        sm.zones, sm.conduits, sm.enforced_conduits, sm.rules, sm.errors, sm.warnings
    );
    let _ = writeln!(w, "<h2>Zone and conduit diagram</h2>");
    w.push_str(&svg(site));
    let _ = writeln!(w, "<h2>Zone architecture</h2>");
    let _ = writeln!(
        w,
        "<table><thead><tr><th>Zone</th><th>Name</th><th>Purdue</th><th>SL-T</th><th>Criticality</th><th>Assets</th><th>Networks</th><th>Conduits</th><th>Controls</th></tr></thead><tbody>"
    );
    for z in &r.zones {
        let _ = writeln!(
            w,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(&z.id),
            html(&z.name),
            html(&z.purdue),
            html(&z.sl_t),
            html(&z.criticality),
            list(&z.assets),
            html(&z.networks.join(", ")),
            html(&z.conduits.join(", ")),
            list(&z.controls)
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
            html(&c.id),
            html(&c.name),
            html(&c.connects.join(" ↔ ")),
            html(&c.sl),
            html(&c.inspection)
        );
        if let Some(g) = &c.gateway {
            let _ = writeln!(w, "<p>Gateway: <code>{}</code></p>", html(g));
        }
        if !c.protocols.is_empty() {
            let _ = writeln!(w, "<table><thead><tr><th>Protocol</th><th>Port</th><th>Direction</th><th>Security mode</th></tr></thead><tbody>");
            for p in &c.protocols {
                let _ = writeln!(
                    w,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html(&p.protocol),
                    html(&p.port),
                    html(&p.direction),
                    html(&p.security_mode)
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
                    html(&rr.id),
                    html(&rr.from),
                    html(&rr.units),
                    html(&rr.functions),
                    html(&rr.ranges),
                    html(&rr.values),
                    html(&rr.rate),
                    html(&rr.justification)
                );
            }
            let _ = writeln!(w, "</tbody></table>");
        }
        let _ = writeln!(w, "<p>Default: {}</p>", html(&c.default_action));
    }
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
                html(&f.element),
                html(&f.message)
            );
        }
        let _ = writeln!(w, "</tbody></table>");
    }
    for p in &r.probes {
        let _ = writeln!(
            w,
            "<h3>Probe of {} via {} from {}</h3><p>{} &middot; {} passed, {} failed</p>",
            html(&p.conduit),
            html(&p.gateway),
            html(&p.source),
            html(&p.started),
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
                html(&t.name),
                html(&t.expect),
                html(&t.request),
                html(&t.outcome)
            );
        }
        let _ = writeln!(w, "</tbody></table>");
    }
    let _ = writeln!(w, "</body></html>");
    s
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "-".into();
    }
    let mut s = String::from("<ul>");
    for i in items {
        let _ = write!(s, "<li>{}</li>", html(i));
    }
    s.push_str("</ul>");
    s
}

/// The zone/conduit graph as inline SVG: zones as boxes in rows by Purdue level (highest level
/// at the top), conduits as lines labelled with their id and security level.
pub fn svg(site: &Site) -> String {
    const BOX_W: f32 = 190.0;
    const BOX_H: f32 = 58.0;
    const ROW_H: f32 = 120.0;
    const GAP: f32 = 70.0;
    // Rows: distinct levels, highest first; zones without a level at the bottom.
    let mut levels: Vec<Option<i32>> = site
        .zones
        .iter()
        .map(|z| z.purdue.map(|p| (p.high() * 10.0).round() as i32))
        .collect();
    levels.sort_by(|a, b| b.cmp(a));
    levels.dedup();
    let mut pos: Vec<(f32, f32)> = vec![(0.0, 0.0); site.zones.len()];
    let mut max_in_row = 1usize;
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for lvl in &levels {
        let row: Vec<usize> = site
            .zones
            .iter()
            .enumerate()
            .filter(|(_, z)| z.purdue.map(|p| (p.high() * 10.0).round() as i32) == *lvl)
            .map(|(i, _)| i)
            .collect();
        max_in_row = max_in_row.max(row.len());
        rows.push(row);
    }
    let width = (max_in_row as f32) * (BOX_W + GAP) + GAP + 60.0;
    let height = (rows.len() as f32) * ROW_H + 40.0;
    for (ri, row) in rows.iter().enumerate() {
        let row_w = (row.len() as f32) * (BOX_W + GAP) - GAP;
        let x0 = 60.0 + (width - 60.0 - row_w) / 2.0;
        for (k, &zi) in row.iter().enumerate() {
            pos[zi] = (x0 + (k as f32) * (BOX_W + GAP), 20.0 + (ri as f32) * ROW_H);
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"zone and conduit diagram\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    for (ri, lvl) in levels.iter().enumerate() {
        let label = lvl.map_or("L?".to_owned(), |l| {
            if l % 10 == 0 {
                format!("L{}", l / 10)
            } else {
                format!("L{}.{}", l / 10, l % 10)
            }
        });
        let _ = writeln!(
            s,
            "<text x=\"8\" y=\"{:.0}\" fill=\"#57606a\" font-weight=\"bold\">{label}</text>",
            20.0 + (ri as f32) * ROW_H + BOX_H / 2.0 + 4.0
        );
    }
    // Conduit lines first (boxes cover their ends), their labels last (always readable).
    let mut labels: Vec<String> = Vec::new();
    for c in &site.conduits {
        let zs = site.conduit_zones(c);
        let color = match &c.gateway {
            Some(g) if g.enforce => "#1a7f37",
            Some(_) => "#a15c00",
            None => "#57606a",
        };
        let dash = if c.gateway.is_some() {
            ""
        } else {
            " stroke-dasharray=\"6 4\""
        };
        for pair in zs.windows(2) {
            let (a, b) = (pos[pair[0]], pos[pair[1]]);
            let (x1, y1) = (a.0 + BOX_W / 2.0, a.1 + BOX_H / 2.0);
            let (x2, y2) = (b.0 + BOX_W / 2.0, b.1 + BOX_H / 2.0);
            let _ = writeln!(
                s,
                "<line x1=\"{x1:.0}\" y1=\"{y1:.0}\" x2=\"{x2:.0}\" y2=\"{y2:.0}\" stroke=\"{color}\" stroke-width=\"2.5\"{dash}><title>{}</title></line>",
                html(&c.id)
            );
            let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
            let label = format!(
                "{} ({}){}",
                c.id,
                c.sl.map_or("SL ?".to_owned(), |l| l.display()),
                if c.gateway.is_some() {
                    " [zonegate]"
                } else {
                    ""
                }
            );
            // A conduit within one row runs between two boxes: label it under them.
            // Otherwise label it in the first gap below the upper box, where no box can be.
            let (lx, ly, anchor) = if (y1 - y2).abs() < 1.0 {
                (mx, my + BOX_H / 2.0 + 14.0, "middle")
            } else {
                let ((ux, uy), (dx, dy)) = if y1 < y2 {
                    ((x1, y1), (x2, y2))
                } else {
                    ((x2, y2), (x1, y1))
                };
                let gy = uy + ROW_H / 2.0;
                let t = (gy - uy) / (dy - uy);
                (ux + t * (dx - ux) + 6.0, gy + 4.0, "start")
            };
            labels.push(format!(
                "<text x=\"{lx:.0}\" y=\"{ly:.0}\" text-anchor=\"{anchor}\" fill=\"{color}\" stroke=\"#fafbfc\" stroke-width=\"4\" paint-order=\"stroke\">{}</text>",
                html(&label)
            ));
        }
    }
    for (zi, z) in site.zones.iter().enumerate() {
        let (x, y) = pos[zi];
        let (fill, stroke) = if z.is_sis() {
            ("#fde8e8", "#b00020")
        } else if z.purdue.is_some_and(|p| p.is_dmz()) {
            ("#fff4d6", "#a15c00")
        } else if z.purdue.is_some_and(|p| p.low() >= 4.0) {
            ("#e8f0fe", "#1f4e79")
        } else {
            ("#e9f5ec", "#1a7f37")
        };
        let _ = writeln!(
            s,
            "<g><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{BOX_W:.0}\" height=\"{BOX_H:.0}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#57606a\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#57606a\">SL-T {}</text></g>",
            x + BOX_W / 2.0,
            y + 18.0,
            html(&z.id),
            x + BOX_W / 2.0,
            y + 34.0,
            html(&truncate(z.name.as_deref().unwrap_or(""), 28)),
            x + BOX_W / 2.0,
            y + 50.0,
            html(&z.sl_t.map_or("?".to_owned(), |t| if t.is_uniform() {
                t.0[0].to_string()
            } else {
                format!("up to {} (per FR)", t.max())
            }))
        );
    }
    for l in labels {
        let _ = writeln!(s, "{l}");
    }
    s.push_str("</svg>\n");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
