//! One-way replications (`replications:`, issue 13) in the toolkit: `check` findings and the
//! `compile` nftables rules that let only the UDP stream pass, in one direction.
//!
//! A replication is a conduit whose data flows only from its first zone to its second. So:
//! - a gateway rule whose source is in the receiving zone, on a conduit between the same two
//!   zones, is a flow back across it (ZG-C036, error), as is a `protocols_allowed` entry whose
//!   direction names the receiving zone first, or a second replication the other way;
//! - its zones must exist and differ (ZG-C037), its `max_age` must exceed the periods (ZG-C038),
//!   `transmit.to` must be the receive side's `bind` (ZG-C039), and HMAC lets the receive side
//!   forge data (ZG-C040, info: Ed25519 keeps the secret on the transmit side), and a source this
//!   build's transmit agent cannot read (ZG-C041) is said so: none today, it reads `tcp://`,
//!   `tls://`, `rtu://` and `rtu+tcp://`; the check stays for the next upstream kind.
//!
//! The nftables (and iptables) rules come first in the forward chain, before `ct state established,related
//! accept`: otherwise conntrack would let the receive side's replies (and ICMP errors) back
//! through as "established".

use crate::check::{Finding, Severity, Subject};
use crate::model::Site;
use zonegate_policy::{Cidr, ReplicationAuth};

fn finding(
    site: &Site,
    id: &'static str,
    severity: Severity,
    element: &str,
    line: u32,
    message: String,
) -> Finding {
    Finding {
        id,
        check: crate::check::info(id).map_or("", |c| c.name),
        severity,
        subject: Subject::Conduit,
        element: element.to_owned(),
        message,
        file: site.file.clone(),
        line,
    }
}

/// The `check` findings of every replication.
pub fn findings(site: &Site) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in &site.replications {
        let (Some(from), Some(to)) = (r.from_zone(), r.to_zone()) else {
            continue;
        };
        let connects_line = r.line_of("connects");
        for z in [from, to] {
            if site.zone(z).is_none() {
                out.push(finding(
                    site,
                    "ZG-C037",
                    Severity::Error,
                    &r.id,
                    connects_line,
                    format!("replication {} connects unknown zone `{z}`", r.id),
                ));
            }
        }
        if from == to {
            out.push(finding(
                site,
                "ZG-C037",
                Severity::Error,
                &r.id,
                connects_line,
                format!("replication {} connects zone `{from}` to itself", r.id),
            ));
        }
        reverse_flows(site, r, from, to, &mut out);
        for b in &r.blocks {
            let max_age = r.receive.max_age_for(b.period);
            if max_age <= b.period {
                out.push(finding(
                    site,
                    "ZG-C038",
                    Severity::Warning,
                    &r.id,
                    b.line,
                    format!(
                        "replication {}: block {} is read every {:?} but max_age is {:?}: the \
                         replica would answer 0x0B between two reads",
                        r.id, b.id, b.period, max_age
                    ),
                ));
            }
        }
        let bind = r.receive.bind;
        let to_addr = r.transmit.to;
        if to_addr.port() != bind.port()
            || (!bind.ip().is_unspecified() && bind.ip() != to_addr.ip())
        {
            out.push(finding(
                site,
                "ZG-C039",
                Severity::Warning,
                &r.id,
                r.transmit.line,
                format!(
                    "replication {}: transmit.to {to_addr} is not the receive side's bind {bind}",
                    r.id
                ),
            ));
        }
        if let Err(u) = r.source_runnable() {
            out.push(finding(
                site,
                "ZG-C041",
                Severity::Warning,
                &r.id,
                r.line_of("source"),
                format!(
                    "replication {}: {u}: `zonegate run --side transmit` refuses it",
                    r.id
                ),
            ));
        }
        if r.auth == ReplicationAuth::HmacSha256 {
            out.push(finding(
                site,
                "ZG-C040",
                Severity::Info,
                &r.id,
                r.line_of("replication_id"),
                format!(
                    "replication {} uses HMAC-SHA256: the receive side holds the same key and \
                     could forge data; `auth: ed25519` keeps the secret on the transmit side",
                    r.id
                ),
            ));
        }
    }
    out
}

fn reverse_flows(
    site: &Site,
    r: &zonegate_policy::Replication,
    from: &str,
    to: &str,
    out: &mut Vec<Finding>,
) {
    let to_idx = site.zone_index(to);
    for c in &site.conduits {
        let names: Vec<&str> = c.connects.iter().map(|z| z.as_str()).collect();
        if !(names.contains(&from) && names.contains(&to)) {
            continue;
        }
        for rule in &c.rules {
            for s in &rule.from {
                let (src, line) = (&s.text, &s.line);
                let from_receiving = match site.resolve(src) {
                    crate::model::Source::Zone(z) => Some(z) == to_idx,
                    crate::model::Source::Asset(z, _) => Some(z) == to_idx,
                    crate::model::Source::Cidr(c) => {
                        to_idx.is_some_and(|z| site.zone_blocks(z).iter().any(|b| overlaps(&c, b)))
                    }
                    crate::model::Source::Unknown => false,
                };
                if from_receiving {
                    out.push(finding(
                        site,
                        "ZG-C036",
                        Severity::Error,
                        &format!("{}/{}", c.id, rule.id),
                        *line,
                        format!(
                            "rule {}/{} lets `{src}` in {to} reach {from}, against the one-way \
                             replication {} ({from} -> {to} only)",
                            c.id, rule.id, r.id
                        ),
                    ));
                }
            }
        }
        for p in &c.protocols_allowed {
            let Some(d) = p.direction.as_deref() else {
                continue;
            };
            let lower = d.to_ascii_lowercase();
            let back = match (
                lower.find(&to.to_ascii_lowercase()),
                lower.find(&from.to_ascii_lowercase()),
            ) {
                (Some(t), Some(f)) => t < f || lower.contains("<->") || lower.contains("both"),
                _ => lower.contains("bidirectional") || lower.contains("both"),
            };
            if back {
                out.push(finding(
                    site,
                    "ZG-C036",
                    Severity::Error,
                    &c.id,
                    p.line,
                    format!(
                        "conduit {} declares a flow `{d}` back across the one-way replication {} \
                         ({from} -> {to} only)",
                        c.id, r.id
                    ),
                ));
            }
        }
    }
    for other in &site.replications {
        if other.from_zone() == Some(to) && other.to_zone() == Some(from) {
            out.push(finding(
                site,
                "ZG-C036",
                Severity::Error,
                &other.id,
                other.line_of("connects"),
                format!(
                    "replication {} runs {to} -> {from}, back across the one-way replication {}",
                    other.id, r.id
                ),
            ));
        }
    }
}

fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

/// nftables rules for the forward chain: `(first, accepts)`. `first` go before the conntrack
/// accept (nothing from the receive host back into the sending zone, not even "established" or
/// ICMP "related"); `accepts` let the UDP stream through, new or not, one way.
pub fn nft_forward(site: &Site) -> (Vec<String>, Vec<String>) {
    let mut first = Vec::new();
    let mut accepts = Vec::new();
    for r in &site.replications {
        let rx = r.receive.bind;
        let fam = if rx.is_ipv4() { "ip" } else { "ip6" };
        let src: Vec<Cidr> = match r.transmit.bind.filter(|b| !b.ip().is_unspecified()) {
            Some(b) => vec![Cidr::host(b.ip())],
            None => r
                .from_zone()
                .and_then(|z| site.zone_index(z))
                .map(|z| site.zone_blocks(z))
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.addr().is_ipv4() == rx.is_ipv4())
                .collect(),
        };
        if src.is_empty() || rx.ip().is_unspecified() {
            first.push(format!(
                "# replication {}: no addresses for the sending zone or the receive side: no \
                 flow opened",
                r.id
            ));
            continue;
        }
        let set = set(&src);
        first.push(format!(
            "{fam} saddr {} {fam} daddr {set} log prefix \"zonegate-drop diode-reverse \" drop \
             comment \"{} one-way: nothing back\"",
            rx.ip(),
            r.id
        ));
        accepts.push(format!(
            "{fam} saddr {set} {fam} daddr {} udp dport {} accept comment \"{} one-way UDP\"",
            rx.ip(),
            rx.port(),
            r.id
        ));
    }
    (first, accepts)
}

fn set(blocks: &[Cidr]) -> String {
    match blocks {
        [one] => one.to_string(),
        _ => format!(
            "{{ {} }}",
            blocks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// iptables-restore lines for the FORWARD chain (IPv4; IPv6 replications as comments), to be
/// appended before the conntrack accept: the reverse drop, then the one-way UDP accept.
pub fn iptables_forward(site: &Site) -> Vec<String> {
    let mut out = Vec::new();
    for r in &site.replications {
        let rx = r.receive.bind;
        if !rx.is_ipv4() {
            out.push(format!(
                "# replication {}: IPv6 receive side {rx}: see the nftables output",
                r.id
            ));
            continue;
        }
        let src: Vec<Cidr> = match r.transmit.bind.filter(|b| !b.ip().is_unspecified()) {
            Some(b) => vec![Cidr::host(b.ip())],
            None => r
                .from_zone()
                .and_then(|z| site.zone_index(z))
                .map(|z| site.zone_blocks(z))
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.addr().is_ipv4())
                .collect(),
        };
        if src.is_empty() || rx.ip().is_unspecified() {
            out.push(format!(
                "# replication {}: no addresses for the sending zone or the receive side: no \
                 flow opened",
                r.id
            ));
            continue;
        }
        for s in &src {
            out.push(format!(
                "-A FORWARD -s {}/32 -d {s} -m comment --comment \"{} one-way: nothing back\" \
                 -j ZONEGATE-DROP",
                rx.ip(),
                r.id
            ));
        }
        for s in &src {
            out.push(format!(
                "-A FORWARD -s {s} -d {}/32 -p udp -m udp --dport {} -m comment --comment \
                 \"{} one-way UDP\" -j ACCEPT",
                rx.ip(),
                rx.port(),
                r.id
            ));
        }
    }
    out
}

/// One replication in the body of `zonegate report`: what is replicated, over what, and what
/// this build enforces one way (credited only where the transmit agent can run it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicationRow {
    /// `replication_id`.
    pub id: String,
    /// `name` ("" when absent).
    pub name: String,
    /// Zone data comes from.
    pub from: String,
    /// Zone data goes to.
    pub to: String,
    /// `source`, as a URL.
    pub source: String,
    /// Why this build's transmit agent cannot read the source (ZG-C041), if it cannot.
    pub source_unsupported: Option<String>,
    /// `hmac-sha256` or `ed25519`, with what it means.
    pub auth: String,
    /// One line per block: unit, table, range, period, `max_age` in force.
    pub blocks: Vec<String>,
    /// `transmit.to`, `bind`, `repeat`, `refresh`, `request_timeout`.
    pub transmit: String,
    /// `receive.bind`, `serve` (plaintext or TLS), `max_connections`.
    pub receive: String,
    /// `transmit.repeat`.
    pub repeat: u8,
    /// `transmit.refresh`, as text.
    pub refresh: String,
    /// What zonegate enforces one way (the agents, the replica, the compiled firewall).
    pub one_way: Vec<String>,
    /// Results of `zonegate probe --replication` runs included with `--probe`.
    pub probes: Vec<String>,
}

fn secs(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The report rows of every replication, with the probe runs of each (`conduit` = its id).
pub fn report_rows(site: &Site, probes: &[crate::probe::ProbeRun]) -> Vec<ReplicationRow> {
    let (first, accepts) = nft_forward(site);
    site.replications
        .iter()
        .map(|r| {
            let from = r.from_zone().unwrap_or("?").to_owned();
            let to = r.to_zone().unwrap_or("?").to_owned();
            let source_unsupported = r.source_runnable().err().map(|u| u.to_string());
            let t = &r.transmit;
            let rx = &r.receive;
            let tls =
                match &rx.tls {
                    Some(tls) => format!(
                    "Modbus/TCP Security (mutual TLS, client certificates chain to {}{}, TLS {} \
                     and up)",
                    tls.client_ca.display(),
                    if tls.crl.is_some() { ", CRL checked" } else { "" },
                    tls.min_version.as_str()
                ),
                    None => "plaintext Modbus/TCP".to_owned(),
                };
            let mut one_way = Vec::new();
            match &source_unsupported {
                Some(u) => one_way.push(format!(
                    "NOT RUNNABLE by this build: {u}; `zonegate run --side transmit` refuses it, \
                     so nothing below is in force"
                )),
                None => {
                    one_way.push(
                        "transmit agent: sends UDP only, never reads its socket (no receive \
                         call, socket not connected): works with the reverse direction dropped"
                            .to_owned(),
                    );
                    one_way.push(format!(
                        "receive agent: never sends towards {from}; every datagram authenticated \
                         ({}), replays, gaps, forgeries and staleness are alerts on its own chain",
                        r.auth.as_str()
                    ));
                    one_way.push(
                        "replica: read-only, FC 1-4 from the image; every write and diagnostic \
                         answered 01 and recorded; a block older than max_age answered 0x0B"
                            .to_owned(),
                    );
                    if r.source.is_bus() {
                        // The firewall rules below say nothing about a serial line.
                        one_way.push(format!(
                            "source {} is a Modbus RTU bus: read by the transmit agent through                              the gateway's RTU master (FC 1-4 only), shared round robin with any                              conduit on the same line; the line itself is not filtered",
                            r.source
                        ));
                    }
                }
            }
            let drops = first
                .iter()
                .filter(|l| l.contains(&format!("\"{} ", r.id)))
                .count();
            let opens = accepts
                .iter()
                .filter(|l| l.contains(&format!("\"{} ", r.id)))
                .count();
            one_way.push(if drops > 0 {
                format!(
                    "firewall (`zonegate compile --target nftables`): {drops} rule(s) drop \
                     everything from {} back into {from}, before conntrack; {opens} rule(s) let \
                     only UDP to port {} through",
                    rx.bind.ip(),
                    rx.bind.port()
                )
            } else {
                "firewall: no rule compiled (no addresses for the sending zone or the receive \
                 side); the link's one-way property rests on the link itself"
                    .to_owned()
            });
            let probes = probes
                .iter()
                .filter(|p| p.conduit == r.id)
                .map(|p| {
                    let latency = p
                        .notes
                        .iter()
                        .find(|n| n.starts_with("replication latency"))
                        .map_or(String::new(), |n| format!("; {n}"));
                    format!(
                        "probe from {} at {}: {} passed, {} failed{latency}",
                        p.source, p.started, p.passed, p.failed
                    )
                })
                .collect();
            ReplicationRow {
                id: r.id.clone(),
                name: r.name.clone().unwrap_or_default(),
                from,
                to,
                source: r.source.to_string(),
                source_unsupported,
                auth: match r.auth {
                    ReplicationAuth::Ed25519 => {
                        "ed25519 (the receive side holds only the public key)".to_owned()
                    }
                    _ => "hmac-sha256 (both sides hold the secret)".to_owned(),
                },
                blocks: r
                    .blocks
                    .iter()
                    .map(|b| {
                        format!(
                            "block {}: unit {} {} {}-{} every {}, max_age {}",
                            b.id,
                            b.unit,
                            b.table.as_str(),
                            b.range.start,
                            b.range.end,
                            secs(b.period),
                            secs(rx.max_age_for(b.period))
                        )
                    })
                    .collect(),
                transmit: format!(
                    "UDP to {}{}, repeat {}, refresh {}, request_timeout {}",
                    t.to,
                    t.bind.map_or(String::new(), |b| format!(" from {b}")),
                    t.repeat,
                    secs(t.refresh),
                    secs(t.request_timeout)
                ),
                receive: format!(
                    "datagrams on {}, replica on {} ({tls}), at most {} client(s)",
                    rx.bind, rx.serve, rx.max_connections
                ),
                repeat: t.repeat,
                refresh: secs(t.refresh),
                one_way,
                probes,
            }
        })
        .collect()
}

/// The report's text section (nothing when the model has no replication).
pub fn render_text(rows: &[ReplicationRow], w: &mut String) {
    use std::fmt::Write as _;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(w, "ONE-WAY REPLICATIONS (DATA DIODE)");
    let _ = writeln!(w, "{}", "-".repeat(80));
    for r in rows {
        let _ = writeln!(w, "Replication {}  {}", r.id, r.name);
        let _ = writeln!(w, "  Flow:             {} -> {} only", r.from, r.to);
        let _ = writeln!(w, "  Source:           {}", r.source);
        let _ = writeln!(w, "  Authentication:   {}", r.auth);
        let _ = writeln!(w, "  Transmit:         {}", r.transmit);
        let _ = writeln!(w, "  Receive:          {}", r.receive);
        let _ = writeln!(w, "  Blocks ({}):", r.blocks.len());
        for b in &r.blocks {
            let _ = writeln!(w, "    - {b}");
        }
        let _ = writeln!(w, "  Enforced one way:");
        for o in &r.one_way {
            let _ = writeln!(w, "    - {o}");
        }
        if r.probes.is_empty() {
            let _ = writeln!(
                w,
                "  Probe:            none included (`zonegate probe MODEL --replication {}`)",
                r.id
            );
        }
        for p in &r.probes {
            let _ = writeln!(w, "  Probe:            {p}");
        }
        let _ = writeln!(w);
    }
}

/// The report's Markdown section.
pub fn render_markdown(rows: &[ReplicationRow], w: &mut String) {
    use crate::util::md;
    use std::fmt::Write as _;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(w, "## One-way replications (data diode)\n");
    for r in rows {
        let _ = writeln!(w, "### {} {}\n", md(&r.id), md(&r.name));
        let _ = writeln!(w, "| | |\n|---|---|");
        let _ = writeln!(w, "| Flow | {} -> {} only |", md(&r.from), md(&r.to));
        let _ = writeln!(w, "| Source | `{}` |", r.source);
        let _ = writeln!(w, "| Authentication | {} |", md(&r.auth));
        let _ = writeln!(w, "| Transmit | {} |", md(&r.transmit));
        let _ = writeln!(w, "| Receive | {} |", md(&r.receive));
        let _ = writeln!(w, "| Blocks | {} |", md(&r.blocks.join("; ")));
        let _ = writeln!(w, "| Enforced one way | {} |", md(&r.one_way.join("; ")));
        let _ = writeln!(
            w,
            "| Probe | {} |\n",
            if r.probes.is_empty() {
                "none included".to_owned()
            } else {
                md(&r.probes.join("; "))
            }
        );
    }
}

/// The report's HTML section.
pub fn render_html(rows: &[ReplicationRow], w: &mut String) {
    use crate::util::html_text;
    use std::fmt::Write as _;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(w, "<h2>One-way replications (data diode)</h2>");
    for r in rows {
        let _ = writeln!(
            w,
            "<h3>{} {}</h3><table><tbody>",
            html_text(&r.id),
            html_text(&r.name)
        );
        let list = |items: &[String]| {
            items
                .iter()
                .map(|i| html_text(i))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        for (k, v) in [
            ("Flow", html_text(&format!("{} -> {} only", r.from, r.to))),
            ("Source", html_text(&r.source)),
            ("Authentication", html_text(&r.auth)),
            ("Transmit", html_text(&r.transmit)),
            ("Receive", html_text(&r.receive)),
            ("Blocks", list(&r.blocks)),
            ("Enforced one way", list(&r.one_way)),
            (
                "Probe",
                if r.probes.is_empty() {
                    "none included".to_owned()
                } else {
                    list(&r.probes)
                },
            ),
        ] {
            let _ = writeln!(w, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        let _ = writeln!(w, "</tbody></table>");
    }
}
