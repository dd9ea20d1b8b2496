//! Fills the toolkit's [`Site`] view from a model loaded by `zonegate-policy`.
//!
//! This is the only module that knows the loader's types; when they grow, extend the mapping
//! here and the analyses keep working.

use zonegate_policy as p;

use crate::model::{
    Asset, Audit, Conduit, Gateway, Protocol, Rule, Site, SlVector, Upstream, Zone,
};

/// Builds the view of a loaded model.
pub fn site(m: &p::Model) -> Site {
    Site {
        file: m.file.clone(),
        facility: m.facility.clone(),
        assessment_date: m.assessment_date.clone(),
        standard: m.standard.clone(),
        zones: m.zones.iter().map(zone).collect(),
        conduits: m.conduits.iter().map(conduit).collect(),
        audit: m.audit.as_ref().map(audit),
        replications: m.replications.clone(),
    }
}

fn zone(z: &p::Zone) -> Zone {
    Zone {
        id: z.id.clone(),
        line: z.line,
        name: z.name.clone(),
        purdue: z.purdue_level,
        sl_t: z.security_level_target.as_ref().map(SlVector::from_policy),
        criticality: z.criticality.clone(),
        networks: z.networks.iter().map(|n| (n.value, n.line)).collect(),
        assets: z.assets.iter().map(asset).collect(),
        allowed_conduits: z
            .allowed_conduits
            .as_ref()
            .map(|v| v.iter().map(|s| (s.value.clone(), s.line)).collect()),
        security_requirements: z.security_requirements.clone(),
    }
}

fn asset(a: &p::Asset) -> Asset {
    let label = if a.descriptive {
        a.name
            .clone()
            .or_else(|| a.description.clone())
            .unwrap_or_else(|| a.label().to_owned())
    } else {
        a.label().to_owned()
    };
    Asset {
        id: a.id.clone(),
        label,
        line: a.line,
        address: a.address,
        unit_ids: a.unit_ids.clone(),
        kind: a.kind.map(|k| k.as_str().to_owned()),
    }
}

fn conduit(c: &p::Conduit) -> Conduit {
    Conduit {
        id: c.id.clone(),
        line: c.line,
        name: c.name.clone(),
        connects: c
            .connects
            .iter()
            .map(|s| (s.value.clone(), s.line))
            .collect(),
        sl: c.security_level.as_ref().map(SlVector::from_policy),
        protocols: c
            .protocols_allowed
            .iter()
            .map(|pa| Protocol {
                protocol: pa.protocol.clone(),
                port: pa.ports.first().copied(),
                direction: pa.direction.clone(),
                security_mode: pa.security_mode.clone(),
                line: pa.line,
            })
            .collect(),
        controls: c.controls.clone(),
        gateway: c.gateway.as_ref().map(gateway),
        rules: c.rules.iter().map(rule).collect(),
    }
}

fn gateway(g: &p::GatewaySettings) -> Gateway {
    let upstream = match &g.upstream {
        p::Upstream::Tcp { host, port } => Upstream::Tcp {
            host: host.clone(),
            port: *port,
        },
        p::Upstream::Tls { host, port, .. } => Upstream::Tls {
            host: host.clone(),
            port: *port,
        },
        p::Upstream::Rtu { path, .. } => Upstream::Rtu {
            path: path.display().to_string(),
        },
        // A transport this toolkit does not know yet: describe it, treat it as cleartext.
        #[allow(unreachable_patterns)]
        other => Upstream::Rtu {
            path: other.to_string(),
        },
    };
    Gateway {
        line: g.line,
        listen: g.listen,
        upstream,
        enforce: g.mode == p::Mode::Enforce,
        deny: g.deny.as_str().to_owned(),
        tls_listener: false,
        client_auth: false,
        max_connections: Some(g.max_connections),
        request_timeout_ms: Some(duration_ms(g.request_timeout)),
        idle_timeout_ms: Some(duration_ms(g.idle_timeout)),
    }
}

fn duration_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn rule(r: &p::Rule) -> Rule {
    let mut functions = std::collections::BTreeSet::new();
    for f in &r.functions {
        functions.extend(f.value.codes().iter().copied());
    }
    let ranges = |s: &p::AddressSet| -> Vec<(u16, u16)> {
        s.merged().iter().map(|r| (r.start, r.end)).collect()
    };
    Rule {
        id: r.id.clone(),
        line: r.line,
        from: r.from.iter().map(|s| (s.text.clone(), s.line)).collect(),
        unit_ids: r.unit_ids.clone(),
        functions,
        tables: [
            ranges(&r.coils),
            ranges(&r.discrete),
            ranges(&r.input),
            ranges(&r.holding),
        ],
        values: r.values.map(|v| (i64::from(v.min), i64::from(v.max))),
        rate: r.rate.map(|x| x.to_string()),
        roles: r.roles.clone().unwrap_or_default(),
        justification: r.justification.clone(),
    }
}

fn audit(a: &p::AuditSection) -> Audit {
    Audit {
        line: a.line,
        path: a.path.as_ref().map(|p| p.display().to_string()),
        sync: Some(a.sync.as_str().to_owned()),
        on_failure: Some(a.on_failure.as_str().to_owned()),
        signing: a.signing_key.is_some(),
        syslog: a.syslog.is_some(),
        rotation: a.rotate_size.is_some(),
    }
}
