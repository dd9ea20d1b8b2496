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
//!   build's transmit agent cannot read (ZG-C041: `rtu://`; `tcp://` and `tls://` it reads) is
//!   said so.
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
