//! The loader: YAML text -> positioned tree -> strict decode into [`Model`] -> reference checks.
//!
//! Every problem is collected (unknown keys, wrong types, bad values, unresolved rule sources,
//! duplicate rule ids) and returned together as [`LoadErrors`]. Checks of the *design* (does every
//! conduit's zone exist, SL gaps, ...) are not load errors: they belong to the toolkit's `check`,
//! so a descriptive document with design flaws still loads and gets a report.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::decode::{index, int, join, list, parsed, seq, text, uint, word, Cx, Fields};
use crate::error::LoadErrors;
use crate::model::{
    AddressSet, Asset, AuditOnFailure, AuditSection, AuditSync, Conduit, DenyAction, Fr,
    FunctionSelector, GatewaySettings, KeyLines, Mode, Model, ProtocolAllowance, Rule,
    SecurityLevel, Source, SourceTarget, Spanned, SyslogSection, SyslogTransport, ValueBounds,
    Zone,
};
use crate::net::Cidr;
use crate::syntax;
use crate::yaml::{self, Node, Value};

/// Largest model file accepted (a model is a design document, not a data dump).
pub const MAX_MODEL_BYTES: u64 = 16 << 20;

/// Loads and checks a model file. Every error comes back at once, each with the file name,
/// line, column and key path.
pub fn load_file(path: &Path) -> Result<Model, LoadErrors> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadErrors::unreadable(&name, format!("cannot read the model file: {e}")))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(LoadErrors::unreadable(
            &name,
            format!(
                "the model file is {} bytes; the limit is {MAX_MODEL_BYTES}",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| LoadErrors::unreadable(&name, format!("cannot read the model file: {e}")))?;
    let mut model = load_bytes(&bytes, &name)?;
    model.dir = Some(model_dir(path));
    Ok(model)
}

/// Loads `text` as the content of the model file at `path` (read by the caller, e.g. so that
/// the policy hash is of exactly the text it read): messages name `path`, and relative paths
/// in the model resolve against the file's directory, as with [`load_file`].
pub fn load_file_text(text: &str, path: &Path) -> Result<Model, LoadErrors> {
    let mut model = load_str(text, &path.display().to_string())?;
    model.dir = Some(model_dir(path));
    Ok(model)
}

/// The directory relative paths of the model file at `path` resolve against, made absolute
/// now: a later change of the current directory must not move the audit log or a key.
fn model_dir(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Loads a model from bytes (must be UTF-8); `file` names it in messages.
pub fn load_bytes(bytes: &[u8], file: &str) -> Result<Model, LoadErrors> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        LoadErrors::unreadable(
            file,
            format!("the model file is not UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    load_str(text, file)
}

/// Loads a model from text; `file` names it in messages. The policy hash is the SHA-256 of the
/// text's UTF-8 bytes.
pub fn load_str(text: &str, file: &str) -> Result<Model, LoadErrors> {
    let root = yaml::parse(text).map_err(|e| {
        LoadErrors::new(vec![crate::LoadError {
            file: file.to_owned(),
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.message,
            kind: crate::LoadErrorKind::Syntax,
        }])
    })?;
    let mut cx = Cx::new(file);
    let model = decode_model(&mut cx, &root);
    match model {
        Some(mut m) if cx.errors.is_empty() => {
            m.sha256 = Sha256::digest(text.as_bytes()).into();
            Ok(m)
        }
        _ => {
            if cx.errors.is_empty() {
                cx.error(&root, "", "the model could not be read");
            }
            Err(LoadErrors::new(cx.errors))
        }
    }
}

fn decode_model(cx: &mut Cx, root: &Node) -> Option<Model> {
    if matches!(root.value, Value::Null) {
        cx.error(root, "", "the model file is empty");
        return None;
    }
    let mut f = Fields::open(cx, root, "", "the model")?;
    f.allow_extensions();
    let facility = f.opt(cx, "facility", text);
    let assessment_date = f.opt(cx, "assessment_date", text);
    let standard = f.opt(cx, "standard", text);
    let description = f.opt(cx, "description", text);
    let notes = f.opt(cx, "notes", text);
    let owner = f.opt(cx, "owner", text);
    let assessor = f.opt(cx, "assessor", text);
    let revision = f.opt(cx, "revision", text);
    let zones = f
        .opt(cx, "zones", |cx, n, p| Some(seq(cx, n, p, decode_zone)))
        .unwrap_or_default();
    let mut conduits = f
        .opt(cx, "conduits", |cx, n, p| {
            Some(seq(cx, n, p, decode_conduit))
        })
        .unwrap_or_default();
    let audit = f.opt(cx, "audit", decode_audit);
    let replications = f
        .opt(cx, "replications", crate::replication::decode_replications)
        .unwrap_or_default();
    let admin = f.opt(cx, "admin", crate::admin::decode_admin);
    let monitor = f.opt(cx, "monitor", crate::monitor::decode_monitor);
    let keys = f.finish(cx);
    for c in &mut conduits {
        for r in &mut c.rules {
            resolve_sources(cx, &zones, r);
        }
    }
    Some(Model {
        file: cx.file.clone(),
        facility,
        assessment_date,
        standard,
        description,
        notes,
        owner,
        assessor,
        revision,
        zones,
        conduits,
        audit,
        replications,
        admin,
        monitor,
        dir: None,
        keys,
        sha256: [0; 32],
    })
}

fn spanned_text(cx: &mut Cx, n: &Node, p: &str) -> Option<Spanned<String>> {
    text(cx, n, p).map(|value| Spanned {
        value,
        line: n.line,
        column: n.column,
    })
}

fn strings(cx: &mut Cx, n: &Node, p: &str) -> Option<Vec<String>> {
    Some(list(cx, n, p, text))
}

fn security_level(cx: &mut Cx, n: &Node, p: &str) -> Option<SecurityLevel> {
    if let Value::Map(_) = n.value {
        let mut f = Fields::open(cx, n, p, "a per-FR security level vector")?;
        let mut v = [None; 7];
        for fr in Fr::ALL {
            v[fr as usize] = f.opt(cx, fr.as_str(), |cx, n, p| {
                parsed(cx, n, p, syntax::parse_security_level)
            });
        }
        f.finish(cx);
        return Some(SecurityLevel::PerFr(v));
    }
    parsed(cx, n, p, syntax::parse_security_level).map(SecurityLevel::Uniform)
}

fn unit_ids(cx: &mut Cx, n: &Node, p: &str) -> Option<Vec<u8>> {
    let ranges = list(cx, n, p, |cx, n, p| {
        parsed(cx, n, p, |s| {
            let r = syntax::parse_u16_range(s, "unit id")?;
            if r.end > 255 {
                return Err(format!("\"{}\": unit id {} is above 255", s.trim(), r.end));
            }
            Ok(r)
        })
    });
    let mut ids: Vec<u8> = ranges
        .iter()
        .flat_map(|r| r.start..=r.end)
        .filter_map(|u| u8::try_from(u).ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

fn decode_zone(cx: &mut Cx, n: &Node, p: &str) -> Option<Zone> {
    let mut f = Fields::open(cx, n, p, "a zone")?;
    let id = f.req(cx, "zone_id", text);
    let name = f.opt(cx, "name", text);
    let description = f.opt(cx, "description", text);
    let notes = f.opt(cx, "notes", text);
    let owner = f.opt(cx, "owner", text);
    let rationale = f.opt(cx, "rationale", text);
    let location = f.opt(cx, "location", text);
    let purdue_level = f.opt(cx, "purdue_level", |cx, n, p| {
        parsed(cx, n, p, syntax::parse_purdue)
    });
    let security_level_target = f.opt(cx, "security_level_target", security_level);
    let criticality = f.opt(cx, "criticality", text);
    let assets = f
        .opt(cx, "assets", |cx, n, p| Some(seq(cx, n, p, decode_asset)))
        .unwrap_or_default();
    let security_requirements = f
        .opt(cx, "security_requirements", strings)
        .unwrap_or_default();
    let allowed_conduits = if f.has("allowed_conduits") {
        Some(
            f.opt(cx, "allowed_conduits", |cx, n, p| {
                Some(list(cx, n, p, spanned_text))
            })
            .unwrap_or_default(),
        )
    } else {
        f.get("allowed_conduits");
        None
    };
    let networks = f
        .opt(cx, "networks", |cx, n, p| {
            Some(list(cx, n, p, |cx, n, p| {
                parsed(cx, n, p, |s| s.parse::<Cidr>()).map(|value| Spanned {
                    value,
                    line: n.line,
                    column: n.column,
                })
            }))
        })
        .unwrap_or_default();
    // Modbus RTU serial listener lines of the zone (issue 11).
    let serial = f
        .opt(cx, "serial", |cx, n, p| {
            Some(list(cx, n, p, |cx, n, p| text(cx, n, p).map(PathBuf::from)))
        })
        .unwrap_or_default();
    let logical_boundary = f.opt(cx, "logical_boundary", text);
    let physical_boundary = f.opt(cx, "physical_boundary", text);
    let access_points = f.opt(cx, "access_points", strings).unwrap_or_default();
    let data_flows = f.opt(cx, "data_flows", strings).unwrap_or_default();
    let assumptions = f.opt(cx, "assumptions", strings).unwrap_or_default();
    let keys = f.finish(cx);
    Some(Zone {
        id: id?,
        name,
        description,
        notes,
        owner,
        rationale,
        location,
        purdue_level,
        security_level_target,
        criticality,
        assets,
        security_requirements,
        allowed_conduits,
        networks,
        serial,
        logical_boundary,
        physical_boundary,
        access_points,
        data_flows,
        assumptions,
        line: n.line,
        column: n.column,
        path: p.to_owned(),
        keys,
    })
}

fn decode_asset(cx: &mut Cx, n: &Node, p: &str) -> Option<Asset> {
    if let Value::Scalar { text, .. } = &n.value {
        return Some(Asset {
            id: None,
            name: Some(text.clone()),
            description: None,
            notes: None,
            owner: None,
            rationale: None,
            vendor: None,
            model: None,
            firmware: None,
            location: None,
            criticality: None,
            address: None,
            unit_ids: Vec::new(),
            kind: None,
            descriptive: true,
            line: n.line,
            column: n.column,
            path: p.to_owned(),
            keys: KeyLines::default(),
        });
    }
    let mut f = Fields::open(cx, n, p, "an asset (a string or a mapping)")?;
    let id = f.opt(cx, "id", text);
    let name = f.opt(cx, "name", text);
    let description = f.opt(cx, "description", text);
    let notes = f.opt(cx, "notes", text);
    let owner = f.opt(cx, "owner", text);
    let rationale = f.opt(cx, "rationale", text);
    let vendor = f.opt(cx, "vendor", text);
    let model = f.opt(cx, "model", text);
    let firmware = f.opt(cx, "firmware", text);
    let location = f.opt(cx, "location", text);
    let criticality = f.opt(cx, "criticality", text);
    let address = f.opt(cx, "address", |cx, n, p| {
        parsed(cx, n, p, |s| {
            s.trim()
                .parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| format!("`{s}` is not an IP address"))
        })
    });
    let unit_ids = f.opt(cx, "unit_ids", unit_ids).unwrap_or_default();
    let kind = f.opt(cx, "kind", word);
    let keys = f.finish(cx);
    if id.is_none() && name.is_none() {
        cx.error(n, p, "a structured asset needs an `id` or a `name`");
    }
    Some(Asset {
        id,
        name,
        description,
        notes,
        owner,
        rationale,
        vendor,
        model,
        firmware,
        location,
        criticality,
        address,
        unit_ids,
        kind,
        descriptive: false,
        line: n.line,
        column: n.column,
        path: p.to_owned(),
        keys,
    })
}

fn decode_protocol(cx: &mut Cx, n: &Node, p: &str) -> Option<ProtocolAllowance> {
    let mut f = Fields::open(cx, n, p, "a protocol entry")?;
    let protocol = f.req(cx, "protocol", text);
    let port = f.opt(cx, "port", |cx, n, p| match &n.value {
        Value::Seq(items) => {
            let parts: Vec<String> = items.iter().filter_map(|i| text(cx, i, p)).collect();
            Some(parts.join(", "))
        }
        _ => text(cx, n, p),
    });
    let ports = port.as_deref().map(extract_ports).unwrap_or_default();
    let direction = f.opt(cx, "direction", text);
    let security_mode = f.opt(cx, "security_mode", text);
    let description = f.opt(cx, "description", text);
    let notes = f.opt(cx, "notes", text);
    let rationale = f.opt(cx, "rationale", text);
    let keys = f.finish(cx);
    Some(ProtocolAllowance {
        protocol: protocol?,
        port,
        ports,
        direction,
        security_mode,
        description,
        notes,
        rationale,
        line: n.line,
        column: n.column,
        path: p.to_owned(),
        keys,
    })
}

/// The port numbers in prose such as `502/tcp`, `"44818, 2222"`.
fn extract_ports(s: &str) -> Vec<u16> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .filter_map(|t| t.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .collect()
}

fn decode_conduit(cx: &mut Cx, n: &Node, p: &str) -> Option<Conduit> {
    let mut f = Fields::open(cx, n, p, "a conduit")?;
    let id = f.req(cx, "conduit_id", text);
    let name = f.opt(cx, "name", text);
    let description = f.opt(cx, "description", text);
    let notes = f.opt(cx, "notes", text);
    let owner = f.opt(cx, "owner", text);
    let rationale = f.opt(cx, "rationale", text);
    let connects = f
        .opt(cx, "connects", |cx, n, p| {
            Some(list(cx, n, p, spanned_text))
        })
        .unwrap_or_default();
    let security_level = f.opt(cx, "security_level", security_level);
    let protocols_allowed = f
        .opt(cx, "protocols_allowed", |cx, n, p| {
            Some(seq(cx, n, p, decode_protocol))
        })
        .unwrap_or_default();
    let controls = f.opt(cx, "controls", strings).unwrap_or_default();
    let gateway = f.opt(cx, "gateway", decode_gateway);
    let shadow = f.opt(cx, "shadow", |cx, n, p| {
        spanned_text(cx, n, p).map(|s| Spanned {
            value: PathBuf::from(s.value.trim()),
            line: s.line,
            column: s.column,
        })
    });
    let rules = f
        .opt(cx, "rules", |cx, n, p| Some(seq(cx, n, p, decode_rule)))
        .unwrap_or_default();
    let keys = f.finish(cx);
    // Rule ids must be unique within the conduit: events and findings name rules by id.
    for (i, r) in rules.iter().enumerate() {
        if let Some(first) = rules[..i].iter().find(|o| o.id == r.id) {
            let (line, column) = r.keys.position("id").unwrap_or((r.line, r.column));
            cx.error_at(
                line,
                column,
                &join(&r.path, "id"),
                format!(
                    "rule id `{}` is already used by the rule at line {} in this conduit",
                    r.id, first.line
                ),
            );
        }
    }
    Some(Conduit {
        id: id?,
        name,
        description,
        notes,
        owner,
        rationale,
        connects,
        security_level,
        protocols_allowed,
        controls,
        gateway,
        rules,
        shadow,
        line: n.line,
        column: n.column,
        path: p.to_owned(),
        keys,
    })
}

fn duration(cx: &mut Cx, n: &Node, p: &str) -> Option<std::time::Duration> {
    let d = parsed(cx, n, p, syntax::parse_duration)?;
    if d.is_zero() {
        cx.error(n, p, "a duration of 0 is not allowed");
        return None;
    }
    Some(d)
}

fn decode_gateway(cx: &mut Cx, n: &Node, p: &str) -> Option<GatewaySettings> {
    let mut f = Fields::open(cx, n, p, "a gateway block")?;
    let listen = f.req(cx, "listen", |cx, n, p| {
        parsed(cx, n, p, |s| {
            // `rtu:///dev/ttyY?...`: a serial listener (issue 11, zonegate as a slave).
            if s.trim().starts_with("rtu://") {
                return match syntax::parse_upstream(s)? {
                    crate::model::Upstream::Rtu {
                        path,
                        baud,
                        parity,
                        data_bits,
                        stop_bits,
                    } => Ok((
                        SocketAddr::new(crate::serial::line_source(&path), 0),
                        Some(crate::SerialLine {
                            path,
                            baud,
                            parity,
                            data_bits,
                            stop_bits,
                        }),
                    )),
                    _ => Err(format!("`{s}`: a serial listener is rtu:///dev/...")),
                };
            }
            s.trim()
                .parse::<SocketAddr>()
                .map(|a| (a, None))
                .map_err(|_| {
                    format!("`{s}` is not an address:port; write e.g. 127.0.0.1:5020 or [::1]:5020 (rtu:///dev/ttyS0 for a serial listener)")
                })
        })
    });
    let (listen, listen_serial) = match listen {
        Some((a, s)) => (Some(a), s),
        None => (None, None),
    };
    let upstream = f.req(cx, "upstream", |cx, n, p| {
        parsed(cx, n, p, syntax::parse_upstream)
    });
    let mode = f.opt(cx, "mode", word).unwrap_or(Mode::Enforce);
    let deny = f.opt(cx, "deny", word).unwrap_or(DenyAction::Exception);
    let idle_timeout = f
        .opt(cx, "idle_timeout", duration)
        .unwrap_or(GatewaySettings::DEFAULT_IDLE_TIMEOUT);
    let request_timeout = f
        .opt(cx, "request_timeout", duration)
        .unwrap_or(GatewaySettings::DEFAULT_REQUEST_TIMEOUT);
    let connect_timeout = f
        .opt(cx, "connect_timeout", duration)
        .unwrap_or(GatewaySettings::DEFAULT_CONNECT_TIMEOUT);
    let max_connections = f
        .opt(cx, "max_connections", |cx, n, p| {
            positive(cx, n, p, 100_000)
        })
        .unwrap_or(GatewaySettings::DEFAULT_MAX_CONNECTIONS);
    let max_connections_per_source = f
        .opt(cx, "max_connections_per_source", |cx, n, p| {
            positive(cx, n, p, 100_000)
        })
        .unwrap_or(GatewaySettings::DEFAULT_MAX_CONNECTIONS_PER_SOURCE);
    let max_connections_wait = f
        .opt(cx, "max_connections_wait", duration)
        .unwrap_or(GatewaySettings::DEFAULT_MAX_CONNECTIONS_WAIT);
    let max_in_flight = f
        .opt(cx, "max_in_flight", |cx, n, p| positive(cx, n, p, 4096))
        .unwrap_or(GatewaySettings::DEFAULT_MAX_IN_FLIGHT);
    // Session data path (lock-out and upstream pool).
    let unauthenticated_idle_timeout = f
        .opt(cx, "unauthenticated_idle_timeout", duration)
        .unwrap_or(GatewaySettings::DEFAULT_UNAUTHENTICATED_IDLE_TIMEOUT);
    let max_upstream_connections = f
        .opt(cx, "max_upstream_connections", |cx, n, p| {
            positive(cx, n, p, 1024)
        })
        .unwrap_or(GatewaySettings::DEFAULT_MAX_UPSTREAM_CONNECTIONS);
    let max_upstream_in_flight = f
        .opt(cx, "max_upstream_in_flight", |cx, n, p| {
            let v = positive(cx, n, p, 1024)?;
            if v > 1 && upstream.as_ref().is_some_and(|u| u.is_bus()) {
                // A bus has one transaction at a time on the line whatever this says.
                cx.error(
                    n,
                    p,
                    "max_upstream_in_flight: applies to a tcp:// or tls:// upstream only (a bus runs one transaction at a time)",
                );
                return None;
            }
            Some(v)
        })
        .unwrap_or(GatewaySettings::DEFAULT_MAX_UPSTREAM_IN_FLIGHT);
    // Modbus/TCP Security listener (issue 10).
    let tls = f.opt(cx, "tls", crate::tls::decode_tls);
    // Modbus RTU bus options (issue 11): only where the upstream is a bus.
    let serial = f.opt(cx, "serial", |cx, sn, sp| {
        let s = crate::serial::decode_serial(cx, sn, sp)?;
        if upstream.as_ref().is_some_and(|u| !u.is_bus()) {
            cx.error(
                sn,
                sp,
                "serial: applies to an rtu:// or rtu+tcp:// upstream only",
            );
            return None;
        }
        Some(s)
    });
    f.finish(cx);
    Some(GatewaySettings {
        listen: listen?,
        upstream: upstream?,
        mode,
        deny,
        idle_timeout,
        request_timeout,
        connect_timeout,
        max_connections,
        max_connections_per_source,
        max_connections_wait,
        max_in_flight,
        unauthenticated_idle_timeout,
        max_upstream_connections,
        max_upstream_in_flight,
        tls,
        serial,
        listen_serial,
        line: n.line,
        column: n.column,
    })
}

fn positive(cx: &mut Cx, n: &Node, p: &str, max: u64) -> Option<usize> {
    let v = uint(cx, n, p, max)?;
    if v == 0 {
        cx.error(n, p, "must be at least 1");
        return None;
    }
    usize::try_from(v).ok()
}

fn function_entry(cx: &mut Cx, n: &Node, p: &str) -> Option<Spanned<FunctionSelector>> {
    let value = if let Value::Map(_) = n.value {
        let mut f = Fields::open(cx, n, p, "a function selector")?;
        let code = f.req(cx, "function", |cx, n, p| {
            parsed(cx, n, p, syntax::parse_single_function)
        });
        let subs = f.opt(cx, "sub_functions", |cx, n, p| {
            let items = list(cx, n, p, |cx, n, p| {
                text(cx, n, p).map(|t| (t, n.line, n.column, p.to_owned()))
            });
            Some(items)
        });
        f.finish(cx);
        let code = code?;
        let sub_functions = match subs {
            None => None,
            Some(items) => {
                let strs: Vec<&str> = items.iter().map(|(t, ..)| t.as_str()).collect();
                match syntax::parse_sub_functions(code, &strs, &strs.join(",")) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        cx.error(n, &join(p, "sub_functions"), e);
                        return None;
                    }
                }
            }
        };
        FunctionSelector::Function {
            code,
            sub_functions,
        }
    } else {
        parsed(cx, n, p, syntax::parse_function_selector)?
    };
    Some(Spanned {
        value,
        line: n.line,
        column: n.column,
    })
}

fn address_set(cx: &mut Cx, n: &Node, p: &str) -> Option<AddressSet> {
    let ranges = list(cx, n, p, |cx, n, p| {
        parsed(cx, n, p, |s| syntax::parse_u16_range(s, "address"))
    });
    Some(AddressSet::new(ranges))
}

fn decode_rule(cx: &mut Cx, n: &Node, p: &str) -> Option<Rule> {
    let mut f = Fields::open(cx, n, p, "a rule")?;
    let id = f.req(cx, "id", text);
    let from = f.req(cx, "from", |cx, n, p| {
        if is_empty_seq(n) {
            cx.error(
                n,
                p,
                "an empty `from` matches no source; name zones, assets or CIDRs",
            );
        }
        Some(list(cx, n, p, |cx, n, p| {
            text(cx, n, p).map(|t| Source {
                text: t,
                // Resolved once every zone is known (see `resolve_sources`).
                target: SourceTarget::Zone(String::new()),
                line: n.line,
                column: n.column,
            })
        }))
    });
    let unit_ids = f.opt(cx, "unit_ids", unit_ids);
    let roles = f.opt(cx, "roles", strings);
    let functions = f.req(cx, "functions", |cx, n, p| {
        if is_empty_seq(n) {
            cx.error(n, p, "an empty `functions` allows nothing");
        }
        Some(list(cx, n, p, function_entry))
    });
    let coils = f.opt(cx, "coils", address_set).unwrap_or_default();
    let discrete = f.opt(cx, "discrete", address_set).unwrap_or_default();
    let input = f.opt(cx, "input", address_set).unwrap_or_default();
    let holding = f.opt(cx, "holding", address_set).unwrap_or_default();
    let file = f.opt(cx, "file", |cx, n, p| {
        if is_empty_seq(n) {
            cx.error(
                n,
                p,
                "an empty `file` allows no file record; name files, e.g. [4, \"5:0-99\"]",
            );
        }
        Some(list(cx, n, p, |cx, n, p| {
            parsed(cx, n, p, syntax::parse_file_range)
        }))
    });
    let values = f.opt(cx, "values", |cx, n, p| {
        let mut vf = Fields::open(cx, n, p, "value bounds {min, max}")?;
        let min = vf.req(cx, "min", |cx, n, p| int(cx, n, p, -32768, 65535));
        let max = vf.req(cx, "max", |cx, n, p| int(cx, n, p, -32768, 65535));
        vf.finish(cx);
        let (min, max) = (i32::try_from(min?).ok()?, i32::try_from(max?).ok()?);
        if max < min {
            cx.error(n, p, format!("max ({max}) is below min ({min})"));
            return None;
        }
        if min < 0 && max > 32767 {
            cx.error(
                n,
                p,
                format!("a negative min reads registers as signed INT16, so max ({max}) must be at most 32767"),
            );
            return None;
        }
        Some(ValueBounds { min, max })
    });
    let rate = f.opt(cx, "rate", |cx, n, p| parsed(cx, n, p, syntax::parse_rate));
    let justification = f.opt(cx, "justification", text);
    let description = f.opt(cx, "description", text);
    let notes = f.opt(cx, "notes", text);
    let owner = f.opt(cx, "owner", text);
    let rationale = f.opt(cx, "rationale", text);
    let keys = f.finish(cx);
    let from = from.unwrap_or_default();
    let functions = functions.unwrap_or_default();
    Some(Rule {
        id: id?,
        from,
        unit_ids,
        roles,
        functions,
        coils,
        discrete,
        input,
        holding,
        file,
        values,
        rate,
        justification,
        description,
        notes,
        owner,
        rationale,
        line: n.line,
        column: n.column,
        path: p.to_owned(),
        keys,
    })
}

fn is_empty_seq(n: &Node) -> bool {
    matches!(&n.value, Value::Seq(items) if items.is_empty())
}

/// Resolves each `from` entry to a zone, an asset or a network, reporting what names nothing.
fn resolve_sources(cx: &mut Cx, zones: &[Zone], rule: &mut Rule) {
    for (i, s) in rule.from.iter_mut().enumerate() {
        let path = index(&join(&rule.path, "from"), i);
        let t = s.text.trim();
        let zone_hits: Vec<&Zone> = zones.iter().filter(|z| z.id == t).collect();
        let asset_hits: Vec<(&Zone, &Asset)> = zones
            .iter()
            .flat_map(|z| z.assets.iter().map(move |a| (z, a)))
            .filter(|(_, a)| a.id.as_deref() == Some(t))
            .collect();
        match (zone_hits.len(), asset_hits.len()) {
            (1, 0) => s.target = SourceTarget::Zone(t.to_owned()),
            (0, 1) => {
                let (z, a) = asset_hits[0];
                if a.address.is_none() {
                    cx.error_at(
                        s.line,
                        s.column,
                        &path,
                        format!(
                            "asset `{t}` (line {}) has no `address`, so no packet can come from it",
                            a.line
                        ),
                    );
                }
                s.target = SourceTarget::Asset {
                    zone: z.id.clone(),
                    asset: t.to_owned(),
                };
            }
            (0, 0) => match t.parse::<Cidr>() {
                Ok(c) => s.target = SourceTarget::Network(c),
                Err(e) => {
                    let looks_like_ip = t.contains('/')
                        || (t.contains(['.', ':'])
                            && t.chars()
                                .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':'));
                    let msg = if looks_like_ip {
                        format!("`{t}`: {e}")
                    } else {
                        format!("`{t}` names no zone or asset and is not a CIDR or IP address")
                    };
                    cx.error_at(s.line, s.column, &path, msg);
                }
            },
            _ => cx.error_at(
                s.line,
                s.column,
                &path,
                format!("`{t}` is ambiguous: more than one zone or asset has this id"),
            ),
        }
    }
}

fn decode_syslog(cx: &mut Cx, n: &Node, p: &str) -> Option<SyslogSection> {
    let mut f = Fields::open(cx, n, p, "a syslog block")?;
    let transport = f.opt(cx, "transport", word).unwrap_or(SyslogTransport::Udp);
    let address = f.req(cx, "address", text);
    let ca = f.opt(cx, "ca", text).map(PathBuf::from);
    let cert = f.opt(cx, "cert", text).map(PathBuf::from);
    let key = f.opt(cx, "key", text).map(PathBuf::from);
    let app_name = f
        .opt(cx, "app_name", text)
        .unwrap_or_else(|| "zonegate".to_owned());
    let facility = f
        .opt(cx, "facility", |cx, n, p| parsed(cx, n, p, syslog_facility))
        .unwrap_or(16);
    let hostname = f.opt(cx, "hostname", text);
    f.finish(cx);
    Some(SyslogSection {
        transport,
        address: address?,
        ca,
        cert,
        key,
        app_name,
        facility,
        hostname,
        line: n.line,
    })
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

fn syslog_facility(s: &str) -> Result<u8, String> {
    let t = s.trim();
    if let Some(i) = FACILITIES.iter().position(|f| *f == t) {
        return u8::try_from(i).map_err(|_| String::new());
    }
    match t.parse::<u8>() {
        Ok(v) if v <= 23 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a syslog facility (0-23 or a name such as local0, auth)"
        )),
    }
}

fn decode_audit(cx: &mut Cx, n: &Node, p: &str) -> Option<AuditSection> {
    let mut f = Fields::open(cx, n, p, "the audit section")?;
    let path = f.opt(cx, "path", text).map(PathBuf::from);
    let sync = f.opt(cx, "sync", word).unwrap_or(AuditSync::Writes);
    let on_failure = f
        .opt(cx, "on_failure", word)
        .unwrap_or(AuditOnFailure::BlockWrites);
    let rotate_size = f.opt(cx, "rotate_size", |cx, n, p| {
        let v = parsed(cx, n, p, syntax::parse_size)?;
        if v < 4096 {
            cx.error(
                n,
                p,
                format!("rotate_size {v} bytes is too small (at least 4096)"),
            );
            return None;
        }
        Some(v)
    });
    let checkpoint_every = f.opt(cx, "checkpoint_every", |cx, n, p| {
        positive(cx, n, p, u64::from(u32::MAX)).map(|v| v as u64)
    });
    let signing_key = f.opt(cx, "signing_key", text).map(PathBuf::from);
    let syslog = f.opt(cx, "syslog", decode_syslog);
    // `0s` is allowed here: every denial in full (still only counted while storage is low).
    let aggregate_interval = f.opt(cx, "aggregate_interval", |cx, n, p| {
        parsed(cx, n, p, syntax::parse_duration)
    });
    let max_bytes = f.opt(cx, "max_bytes", |cx, n, p| {
        parsed(cx, n, p, syntax::parse_size)
    });
    let max_segments = f.opt(cx, "max_segments", |cx, n, p| {
        positive(cx, n, p, 1_000_000).map(|v| v as u64)
    });
    if let Some(max) = max_bytes {
        // The writer's default rotate_size is 64 MiB.
        let rotate = rotate_size.unwrap_or(64 << 20);
        if max < rotate {
            cx.error(
                n,
                p,
                format!(
                    "max_bytes {max} is smaller than rotate_size {rotate}: retention would \
                     delete every segment as soon as it is made"
                ),
            );
        }
    }
    let keys = f.finish(cx);
    Some(AuditSection {
        path,
        sync,
        on_failure,
        rotate_size,
        checkpoint_every,
        signing_key,
        syslog,
        aggregate_interval,
        max_bytes,
        max_segments,
        line: n.line,
        keys,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn gateway_with(extra: &str) -> Result<GatewaySettings, LoadErrors> {
        let text = format!(
            "conduits:\n  - conduit_id: C1\n    gateway:\n      listen: 127.0.0.1:5020\n      upstream: tcp://10.0.0.1:502\n{extra}    rules: []\n"
        );
        load_str(&text, "m.yaml").map(|m| m.conduits[0].gateway.clone().unwrap())
    }

    #[test]
    fn session_keys_default_and_decode() {
        let g = gateway_with("").unwrap();
        assert_eq!(
            g.unauthenticated_idle_timeout,
            GatewaySettings::DEFAULT_UNAUTHENTICATED_IDLE_TIMEOUT
        );
        assert_eq!(
            g.max_upstream_connections,
            GatewaySettings::DEFAULT_MAX_UPSTREAM_CONNECTIONS
        );
        let g = gateway_with(
            "      unauthenticated_idle_timeout: 750ms\n      max_upstream_connections: 2\n",
        )
        .unwrap();
        assert_eq!(g.unauthenticated_idle_timeout, Duration::from_millis(750));
        assert_eq!(g.max_upstream_connections, 2);
    }

    #[test]
    fn max_upstream_in_flight_defaults_to_unshared_and_is_refused_on_a_bus() {
        let g = gateway_with("").unwrap();
        assert_eq!(g.max_upstream_in_flight, 1);
        let g = gateway_with("      max_upstream_in_flight: 16\n").unwrap();
        assert_eq!(g.max_upstream_in_flight, 16);
        let e = gateway_with("      max_upstream_in_flight: 0\n").unwrap_err();
        assert!(e.to_string().contains("max_upstream_in_flight"), "{e}");
        let e = gateway_with("      max_upstream_in_flight: 5000\n").unwrap_err();
        assert!(e.to_string().contains("max_upstream_in_flight"), "{e}");
        let text = "conduits:\n  - conduit_id: C1\n    gateway:\n      listen: 127.0.0.1:5020\n      upstream: rtu+tcp://10.0.0.1:4001\n      max_upstream_in_flight: 4\n    rules: []\n";
        let e = load_str(text, "m.yaml").unwrap_err().to_string();
        assert!(e.contains("m.yaml:6"), "{e}");
        assert!(e.contains("a bus runs one transaction at a time"), "{e}");
    }

    #[test]
    fn session_keys_reject_zero() {
        let e = gateway_with("      max_upstream_connections: 0\n").unwrap_err();
        assert!(e.to_string().contains("max_upstream_connections"), "{e}");
        let e = gateway_with("      unauthenticated_idle_timeout: 0s\n").unwrap_err();
        assert!(
            e.to_string().contains("unauthenticated_idle_timeout"),
            "{e}"
        );
    }
}
