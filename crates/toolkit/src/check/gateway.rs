//! Checks of the `gateway:` blocks: listen addresses (ZG-C022, ZG-C035), monitor mode
//! (ZG-C023), the upstream inside the conduit's zones (ZG-C024), no rules (ZG-C025), the audit
//! section (ZG-C026), what this build can run (ZG-C031) and a `shadow:` candidate with no
//! gateway to evaluate it (ZG-C044).

use std::collections::BTreeMap;

use crate::model::{upstream_ip, GatewayExt};

use super::{Out, Severity, Subject};

pub(super) fn gateways(out: &mut Out<'_>) {
    let site = out.site;
    let mut listens: BTreeMap<std::net::SocketAddr, &str> = BTreeMap::new();
    let mut any_gateway = false;
    for c in &site.conduits {
        let Some(g) = &c.gateway else {
            if let Some(s) = &c.shadow {
                out.push(
                    "ZG-C044",
                    Severity::Error,
                    Subject::Conduit,
                    &c.id,
                    s.line,
                    format!(
                        "{}.shadow: needs a gateway: block; nothing evaluates it (candidate {})",
                        c.path,
                        s.value.display()
                    ),
                );
            }
            continue;
        };
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
