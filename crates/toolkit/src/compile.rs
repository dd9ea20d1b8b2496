//! `zonegate compile`: L3/L4 firewall rules for the zone boundaries, from the conduits.
//!
//! Only the declared flows pass; everything else is dropped and logged (prefix `zonegate-drop`):
//! - a conduit with a zonegate gateway: each rule's sources (zone networks, asset addresses,
//!   CIDRs) may open TCP connections to the gateway's listen address and port (INPUT chain of the
//!   host that runs zonegate). No direct path to the devices is opened: Modbus goes through the
//!   gateway or nowhere. The gateway's own connections upstream leave through OUTPUT, which this
//!   file does not restrict.
//! - any other conduit: each `protocols_allowed` entry with a port, from the source side's
//!   networks to the destination side's networks (FORWARD chain of the boundary firewall). The
//!   direction comes from the entry's `direction` prose when it names the zones ("Z2 -> Z1"),
//!   else both ways. UDP when the protocol says so, else TCP. Entries without a port, or between
//!   zones without addresses, are listed as comments.
//!
//! Targets: [`Target::Nftables`] (an `inet` table, checked with `nft -c -f`) and
//! [`Target::Iptables`] (iptables-restore format for IPv4; IPv6 flows are listed as comments).

use std::fmt::Write as _;

use crate::model::{protocol_port, Site};
use zonegate_policy::{Cidr, Conduit};

/// Output syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// nftables (`nft -f`).
    Nftables,
    /// iptables-restore (IPv4).
    Iptables,
}

/// The prefix every logged drop carries.
pub const LOG_PREFIX: &str = "zonegate-drop";

/// One allowed L3/L4 flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Conduit id.
    pub conduit: String,
    /// What the flow is for (rule id or protocol).
    pub label: String,
    /// Source blocks (one family).
    pub src: Vec<Cidr>,
    /// Destination blocks (same family); empty = any destination on this host (gateway listen on
    /// an unspecified address).
    pub dst: Vec<Cidr>,
    /// "tcp" or "udp".
    pub proto: &'static str,
    /// Destination port.
    pub port: u16,
    /// True for flows to a gateway on this host (INPUT), false for routed flows (FORWARD).
    pub to_gateway: bool,
}

/// The flows of a model plus notes on what could not be expressed.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Allowed flows.
    pub flows: Vec<Flow>,
    /// Comments (skipped entries and why).
    pub notes: Vec<String>,
}

fn split_family(blocks: &[Cidr]) -> (Vec<Cidr>, Vec<Cidr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for b in blocks {
        let list = if b.addr().is_ipv4() { &mut v4 } else { &mut v6 };
        if !list.contains(b) {
            list.push(*b);
        }
    }
    (v4, v6)
}

/// Zones named in a direction text like "Z2-SUP -> Z1-CTRL (...)": (from, to).
fn direction(c: &Conduit, text: Option<&str>) -> Option<(String, String)> {
    let t = text?;
    let (left, right) = t.split_once("->")?;
    let find = |s: &str, last: bool| -> Option<String> {
        let mut hits: Vec<(usize, &String)> = c
            .connects
            .iter()
            .filter_map(|z| s.find(z.as_str()).map(|i| (i, &z.value)))
            .collect();
        hits.sort();
        let h = if last { hits.last() } else { hits.first() };
        h.map(|(_, z)| (*z).clone())
    };
    let from = find(left, true)?;
    let to = find(right, false)?;
    (from != to).then_some((from, to))
}

/// Collects the flows of a model.
pub fn plan(site: &Site) -> Plan {
    let mut plan = Plan::default();
    for c in &site.conduits {
        if let Some(g) = &c.gateway {
            if let Some(line) = &g.listen_serial {
                plan.notes.push(format!(
                    "{}: the gateway listens on the serial line {}: no L3/L4 rule applies; its sources are the line itself",
                    c.id,
                    line.url()
                ));
                continue;
            }
            let dst: Vec<Cidr> = if g.listen.ip().is_unspecified() {
                Vec::new()
            } else {
                vec![Cidr::host(g.listen.ip())]
            };
            if g.upstream.is_bus() && g.upstream.host_port().is_none() {
                // The truth about a serial upstream: no packet filter stands on the bus.
                plan.notes.push(format!(
                    "{}: the gateway's upstream {} is a serial line: no L3/L4 rule reaches it; only the gateway (one master of the line) and the line's physical protection stand there",
                    c.id,
                    crate::model::upstream_short(&g.upstream)
                ));
            }
            if c.rules.is_empty() {
                plan.notes.push(format!(
                    "{}: gateway {} has no rules: no flow to it is opened",
                    c.id, g.listen
                ));
            }
            for r in site.rules(c) {
                // The networks the policy compiled the rule's sources to.
                let blocks = r.sources();
                let (v4, v6) = split_family(blocks);
                for fam in [v4, v6] {
                    if fam.is_empty() {
                        continue;
                    }
                    let fam_dst: Vec<Cidr> = dst
                        .iter()
                        .filter(|d| d.addr().is_ipv4() == fam[0].addr().is_ipv4())
                        .copied()
                        .collect();
                    if !dst.is_empty() && fam_dst.is_empty() {
                        plan.notes.push(format!(
                            "{}/{}: sources {} are of another IP family than the listen address {}",
                            c.id,
                            r.id,
                            fam.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                            g.listen
                        ));
                        continue;
                    }
                    plan.flows.push(Flow {
                        conduit: c.id.clone(),
                        label: r.id.clone(),
                        src: fam,
                        dst: fam_dst,
                        proto: "tcp",
                        port: g.listen.port(),
                        to_gateway: true,
                    });
                }
                if blocks.is_empty() {
                    plan.notes.push(format!(
                        "{}/{}: the rule's sources stand for no address",
                        c.id, r.id
                    ));
                }
            }
            continue;
        }
        let zones = site.conduit_zones(c);
        for p in &c.protocols_allowed {
            let Some(port) = protocol_port(p) else {
                plan.notes.push(format!(
                    "{}: {} has no port (serial or non-IP): nothing to open",
                    c.id, p.protocol
                ));
                continue;
            };
            let lower = p.protocol.to_ascii_lowercase();
            let proto =
                if lower.contains("udp") || lower.contains("syslog") && !lower.contains("tcp") {
                    "udp"
                } else {
                    "tcp"
                };
            let pairs: Vec<(usize, usize)> = match direction(c, p.direction.as_deref()) {
                Some((from, to)) => match (site.zone_index(&from), site.zone_index(&to)) {
                    (Some(a), Some(b)) => vec![(a, b)],
                    _ => Vec::new(),
                },
                None => zones
                    .iter()
                    .flat_map(|a| zones.iter().filter(move |b| *b != a).map(move |b| (*a, *b)))
                    .collect(),
            };
            for (a, b) in pairs {
                let src = site.zone_blocks(a);
                let dst = site.zone_blocks(b);
                if src.is_empty() || dst.is_empty() {
                    plan.notes.push(format!(
                        "{}: {} port {port} {} -> {}: a zone has no networks or asset addresses",
                        c.id, p.protocol, site.zones[a].id, site.zones[b].id
                    ));
                    continue;
                }
                let (s4, s6) = split_family(&src);
                let (d4, d6) = split_family(&dst);
                for (s, d) in [(s4, d4), (s6, d6)] {
                    if s.is_empty() || d.is_empty() {
                        continue;
                    }
                    plan.flows.push(Flow {
                        conduit: c.id.clone(),
                        label: format!(
                            "{} {} -> {}",
                            p.protocol, site.zones[a].id, site.zones[b].id
                        ),
                        src: s,
                        dst: d,
                        proto,
                        port,
                        to_gateway: false,
                    });
                }
            }
        }
        if c.protocols_allowed.is_empty() {
            plan.notes.push(format!(
                "{}: no protocols_allowed and no gateway: nothing is opened",
                c.id
            ));
        }
    }
    plan
}

fn set(blocks: &[Cidr]) -> String {
    if blocks.len() == 1 {
        blocks[0].to_string()
    } else {
        format!(
            "{{ {} }}",
            blocks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A comment safe for nft and iptables: printable ASCII, at most 120 characters. Quotes and
/// backslashes are dropped (a `_` in their place read as markdown emphasis, `_Modbus RTU_`), and
/// the arrows and dashes prose uses are spelled in ASCII.
fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\'' | '\\' | '`' => {}
            '→' => out.push_str("->"),
            '←' => out.push_str("<-"),
            '↔' => out.push_str("<->"),
            '–' | '—' => out.push('-'),
            '…' => out.push_str("..."),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.chars().take(120).collect()
}

fn header(site: &Site, target: &str) -> String {
    format!(
        "# zonegate compile --target {target}\n# Facility: {}\n# Model:    {}\n# Only the flows the conduits declare pass; everything else is dropped and logged with the\n# prefix \"{LOG_PREFIX}\". Review before loading: the INPUT chain also drops management access\n# (SSH) that is not added below.\n",
        comment(site.facility.as_deref().unwrap_or("(not stated)")),
        comment(&site.file)
    )
}

/// Renders the plan for a target.
pub fn render(site: &Site, target: Target) -> String {
    let p = plan(site);
    match target {
        Target::Nftables => nftables(site, &p),
        Target::Iptables => iptables(site, &p),
    }
}

fn nftables(site: &Site, p: &Plan) -> String {
    let mut s = String::from("#!/usr/sbin/nft -f\n");
    s.push_str(&header(site, "nftables"));
    for n in &p.notes {
        let _ = writeln!(s, "# note: {}", comment(n));
    }
    s.push_str("\ntable inet zonegate\ndelete table inet zonegate\n\ntable inet zonegate {\n");
    let (diode_first, diode_accepts) = crate::replication::nft_forward(site);
    for (chain, hook, to_gw) in [("input", "input", true), ("forward", "forward", false)] {
        let _ = writeln!(s, "\tchain {chain} {{");
        let _ = writeln!(
            s,
            "\t\ttype filter hook {hook} priority filter; policy drop;"
        );
        for r in diode_first.iter().filter(|_| !to_gw) {
            let _ = writeln!(s, "\t\t{r}");
        }
        let _ = writeln!(s, "\t\tct state established,related accept");
        let _ = writeln!(
            s,
            "\t\tct state invalid log prefix \"{LOG_PREFIX} invalid \" drop"
        );
        if to_gw {
            let _ = writeln!(s, "\t\tiif \"lo\" accept");
            let _ = writeln!(
                s,
                "\t\t# add management access here, e.g.: ip saddr 192.0.2.10 tcp dport 22 accept"
            );
        }
        for f in p.flows.iter().filter(|f| f.to_gateway == to_gw) {
            let fam = if f.src[0].addr().is_ipv4() {
                "ip"
            } else {
                "ip6"
            };
            let mut rule = format!("\t\t{fam} saddr {}", set(&f.src));
            if !f.dst.is_empty() {
                let _ = write!(rule, " {fam} daddr {}", set(&f.dst));
            }
            let _ = writeln!(
                s,
                "{rule} {} dport {} ct state new accept comment \"{}\"",
                f.proto,
                f.port,
                comment(&format!("{} {}", f.conduit, f.label))
            );
        }
        for r in diode_accepts.iter().filter(|_| !to_gw) {
            let _ = writeln!(s, "\t\t{r}");
        }
        let _ = writeln!(s, "\t\tlog prefix \"{LOG_PREFIX} \" counter drop");
        let _ = writeln!(s, "\t}}");
    }
    s.push_str("}\n");
    s
}

fn iptables(site: &Site, p: &Plan) -> String {
    let mut s = header(site, "iptables");
    s.push_str(
        "# IPv4 only (iptables-restore); IPv6 flows are listed as comments for ip6tables.\n",
    );
    for n in &p.notes {
        let _ = writeln!(s, "# note: {}", comment(n));
    }
    s.push_str("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:ZONEGATE-DROP - [0:0]\n");
    let _ = writeln!(
        s,
        "-A ZONEGATE-DROP -m limit --limit 10/second --limit-burst 50 -j LOG --log-prefix \"{LOG_PREFIX} \""
    );
    s.push_str("-A ZONEGATE-DROP -j DROP\n");
    s.push_str("-A INPUT -i lo -j ACCEPT\n");
    for line in crate::replication::iptables_forward(site) {
        let _ = writeln!(s, "{line}");
    }
    for chain in ["INPUT", "FORWARD"] {
        let _ = writeln!(
            s,
            "-A {chain} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
        );
        let _ = writeln!(
            s,
            "-A {chain} -m conntrack --ctstate INVALID -j ZONEGATE-DROP"
        );
        let to_gw = chain == "INPUT";
        for f in p.flows.iter().filter(|f| f.to_gateway == to_gw) {
            let c = comment(&format!("{} {}", f.conduit, f.label));
            if !f.src[0].addr().is_ipv4() {
                let _ = writeln!(
                    s,
                    "# ip6tables: -A {chain} -s {} {}-p {} --dport {} -j ACCEPT  ({c})",
                    f.src
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    if f.dst.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "-d {} ",
                            f.dst
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(",")
                        )
                    },
                    f.proto,
                    f.port
                );
                continue;
            }
            let dsts: Vec<Option<Cidr>> = if f.dst.is_empty() {
                vec![None]
            } else {
                f.dst.iter().copied().map(Some).collect()
            };
            for src in &f.src {
                for d in &dsts {
                    let _ = writeln!(
                        s,
                        "-A {chain} -s {}{} -p {} -m {} --dport {} -m conntrack --ctstate NEW -m comment --comment \"{c}\" -j ACCEPT",
                        cidr4(src),
                        d.map_or(String::new(), |d| format!(" -d {}", cidr4(&d))),
                        f.proto,
                        f.proto,
                        f.port
                    );
                }
            }
        }
        let _ = writeln!(s, "-A {chain} -j ZONEGATE-DROP");
    }
    s.push_str("COMMIT\n");
    s
}

fn cidr4(c: &Cidr) -> String {
    format!("{}/{}", c.addr(), c.prefix())
}
