//! From the model to what the data path needs: gateway settings per conduit, the audit config.
//!
//! This is the one place that reads `zonegate-policy`'s gateway and audit types; the rest of
//! the crate works with [`Settings`] and [`ConduitState`].

use std::net::SocketAddr;
use std::sync::Arc;

use zonegate_audit::{AuditConfig, OnFailure, SyncMode, SyslogConfig, SyslogTransport};
use zonegate_policy::{
    AuditOnFailure, AuditSync, DenyAction as PolicyDeny, GatewaySettings, Mode as PolicyMode,
    Model, Policy, RateLimiter, SyslogTransport as PolicySyslogTransport, Upstream,
};

use crate::server::GatewayOptions;
use crate::state::{ConduitState, DenyAction, Mode, Settings, UpstreamTarget};

/// A conduit with a `gateway:` block.
pub(crate) struct GatewayConduit {
    /// Index in `policy.conduits()`.
    pub(crate) index: usize,
    pub(crate) id: String,
    pub(crate) listen: SocketAddr,
    /// `listen: rtu://...`: the serial line the gateway serves as a slave.
    pub(crate) serial: Option<zonegate_policy::SerialLine>,
}

/// A conduit whose upstream this version cannot serve: (conduit id, what).
pub(crate) struct Unsupported(pub(crate) String, pub(crate) String);

/// The conduits with a `gateway:` block, in model order.
pub(crate) fn gateway_conduits(policy: &Policy) -> Result<Vec<GatewayConduit>, Unsupported> {
    let mut out = Vec::new();
    for (index, c) in policy.conduits().iter().enumerate() {
        if let Some(g) = &c.gateway {
            // The one decision of "supported" (the policy crate's); the TLS files are read
            // by `conduit_state`, whose errors name the file.
            g.upstream
                .runnable()
                .map_err(|u| Unsupported(c.id.clone(), u.what))?;
            out.push(GatewayConduit {
                index,
                id: c.id.clone(),
                listen: g.listen,
                serial: g.listen_serial.clone(),
            });
        }
    }
    Ok(out)
}

fn upstream_target(
    upstream: &Upstream,
    serial: Option<&zonegate_policy::SerialOptions>,
) -> Result<UpstreamTarget, String> {
    // The one decision of "supported" is the policy crate's; check/report/assess use it too.
    upstream.runnable().map_err(|u| u.what)?;
    match upstream {
        Upstream::Tcp { host, port } => {
            let label = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            Ok(UpstreamTarget {
                host: host.clone(),
                port: *port,
                label: Arc::from(label),
                tls: None,
                bus: None,
            })
        }
        Upstream::Tls {
            host,
            port,
            ca,
            cert,
            key,
            server_name,
        } => {
            let label = if host.contains(':') {
                format!("tls://[{host}]:{port}")
            } else {
                format!("tls://{host}:{port}")
            };
            let tls = crate::tls::upstream_config(
                host,
                ca.as_deref(),
                cert.as_deref(),
                key.as_deref(),
                server_name.as_deref(),
            )?;
            Ok(UpstreamTarget {
                host: host.clone(),
                port: *port,
                label: Arc::from(label),
                tls: Some(tls),
                bus: None,
            })
        }
        // Modbus RTU: the gateway is the master of the bus (bus.rs).
        Upstream::Rtu { .. } | Upstream::RtuTcp { .. } => {
            let bus = crate::bus::BusTarget::for_upstream(upstream, serial)
                .ok_or_else(|| format!("upstream {upstream}"))?;
            Ok(UpstreamTarget {
                host: String::new(),
                port: 0,
                label: Arc::from(upstream.to_string()),
                tls: None,
                bus: Some(bus),
            })
        }
        _ => Err(format!("upstream {upstream}")),
    }
}

fn settings(g: &GatewaySettings) -> Result<Settings, String> {
    Ok(Settings {
        mode: match g.mode {
            PolicyMode::Monitor => Mode::Monitor,
            _ => Mode::Enforce,
        },
        deny: match g.deny {
            PolicyDeny::Drop => DenyAction::Drop,
            PolicyDeny::Close => DenyAction::Close,
            _ => DenyAction::Exception,
        },
        idle_timeout: g.idle_timeout,
        request_timeout: g.request_timeout,
        connect_timeout: g.connect_timeout,
        max_connections: g.max_connections.max(1),
        max_connections_per_source: g.max_connections_per_source.max(1),
        max_connections_wait: g.max_connections_wait,
        max_in_flight: g.max_in_flight.max(1),
        upstream: upstream_target(&g.upstream, g.serial.as_ref())?,
        unauthenticated_idle_timeout: g.unauthenticated_idle_timeout,
        max_upstream_connections: g.max_upstream_connections.max(1),
        max_upstream_in_flight: g.max_upstream_in_flight.max(1),
        tls: g.tls.as_ref().map(crate::tls::server_config).transpose()?,
    })
}

/// The rate limiter for a compiled policy: `previous` (the one of the state a reload
/// replaces) when it suits the policy, so that buckets survive the reload, else a fresh one.
pub(crate) fn limiter_for(
    policy: &Policy,
    previous: Option<&Arc<RateLimiter>>,
) -> Arc<RateLimiter> {
    match previous {
        Some(old) if old.suits(policy) => Arc::clone(old),
        _ => Arc::new(RateLimiter::new(policy)),
    }
}

/// The state of conduit `index` of `policy` (its settings must come from a `gateway:` block);
/// `previous` is the limiter of the state it replaces on a reload.
pub(crate) fn conduit_state(
    policy: &Arc<Policy>,
    index: Option<usize>,
    previous: Option<&Arc<RateLimiter>>,
) -> Result<ConduitState, String> {
    let gateway = index
        .and_then(|i| policy.conduits().get(i))
        .and_then(|c| c.gateway.as_ref())
        .ok_or_else(|| "a conduit without a gateway block".to_owned())?;
    Ok(ConduitState {
        policy: Arc::clone(policy),
        index,
        limiter: limiter_for(policy, previous),
        settings: settings(gateway)?,
        rule_ids: crate::state::rule_ids(policy, index),
    })
}

/// The audit writer configuration from the model's `audit:` section (defaults when absent).
pub(crate) fn audit_config(
    model: &Model,
    options: &GatewayOptions,
    policy_hash: &str,
) -> (AuditConfig, SyncMode, OnFailure) {
    let mut cfg = AuditConfig::default();
    cfg.policy_hash = Some(policy_hash.to_owned());
    if let Some(a) = &model.audit {
        cfg.path = a.path.as_deref().map(|p| model.resolve(p));
        cfg.sync = match a.sync {
            AuditSync::Every => SyncMode::Every,
            AuditSync::Batch => SyncMode::Batch,
            _ => SyncMode::Writes,
        };
        cfg.on_failure = match a.on_failure {
            AuditOnFailure::BlockAll => OnFailure::BlockAll,
            AuditOnFailure::Continue => OnFailure::Continue,
            _ => OnFailure::BlockWrites,
        };
        if let Some(bytes) = a.rotate_size {
            cfg.rotate_bytes = bytes;
        }
        if let Some(n) = a.checkpoint_every {
            cfg.checkpoint_every = n;
        }
        if let Some(d) = a.aggregate_interval {
            cfg.aggregate_interval = d;
        }
        if let Some(n) = a.max_bytes {
            cfg.max_bytes = n;
        }
        if let Some(n) = a.max_segments {
            cfg.max_segments = usize::try_from(n).unwrap_or(usize::MAX);
        }
        cfg.signing_key = a.signing_key.as_deref().map(|p| model.resolve(p));
        if let Some(s) = &a.syslog {
            let transport = match s.transport {
                PolicySyslogTransport::Tcp => SyslogTransport::Tcp,
                PolicySyslogTransport::Tls => SyslogTransport::Tls,
                _ => SyslogTransport::Udp,
            };
            let mut sc = SyslogConfig::new(transport, s.address.clone());
            // Every file a model names resolves against the model file's folder (8.7).
            sc.ca_file = s.ca.as_deref().map(|p| model.resolve(p));
            sc.client_cert = s.cert.as_deref().map(|p| model.resolve(p));
            sc.client_key = s.key.as_deref().map(|p| model.resolve(p));
            sc.facility = s.facility;
            sc.app_name.clone_from(&s.app_name);
            sc.hostname.clone_from(&s.hostname);
            cfg.syslog = Some(sc);
        }
    }
    if let Some(path) = &options.audit_path {
        cfg.path.clone_from(path);
    }
    // Without a file there is nothing to fsync: `writes`/`every` would only add latency.
    let sync = if cfg.path.is_some() {
        cfg.sync
    } else {
        SyncMode::Batch
    };
    let on_failure = cfg.on_failure;
    (cfg, sync, on_failure)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Regression (8.7): the syslog client certificate and key of the model were never passed
    /// to the audit writer, and every audit path must follow the model file's folder.
    #[test]
    fn audit_config_resolves_every_path_against_the_model_folder() {
        let text = "zones: []
conduits: []
audit:
  path: logs/audit.log
  signing_key: keys/audit.key
  syslog:
    transport: tls
    address: logs.example:6514
    ca: pki/ca.pem
    cert: pki/gw.pem
    key: /etc/zonegate/gw.key
";
        let model =
            zonegate_policy::load_file_text(text, Path::new("/srv/site/model.yaml")).unwrap();
        let (cfg, _, _) = audit_config(&model, &GatewayOptions::default(), "00");
        let site = |p: &str| Some(PathBuf::from("/srv/site").join(p));
        assert_eq!(cfg.path, site("logs/audit.log"));
        assert_eq!(cfg.signing_key, site("keys/audit.key"));
        let syslog = cfg.syslog.unwrap();
        assert_eq!(syslog.ca_file, site("pki/ca.pem"));
        assert_eq!(syslog.client_cert, site("pki/gw.pem"));
        assert_eq!(
            syslog.client_key,
            Some(PathBuf::from("/etc/zonegate/gw.key"))
        );
    }
}
