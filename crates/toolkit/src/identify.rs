//! `zonegate inventory --probe MODEL`: asks the model's devices who they are.
//!
//! Only what the model declares is asked, over the path it declares (never a sweep): for every
//! gateway conduit, its upstream, for the unit ids of the asset at its address (unit 1 when the
//! asset lists none), spoken as the gateway speaks to it: `tcp://` Modbus/TCP, `rtu+tcp://` RTU
//! frames with CRC over TCP (a serial-to-Ethernet converter), `tls://` Modbus/TCP Security with
//! the upstream's `ca`, `cert`, `key` and `server_name` (the probe's rustls client, see
//! [`crate::mbaps`]). An `rtu://` serial line is the gateway's to drive: it is skipped, and
//! said so, unless `through_gateway`. With `through_gateway` the requests go to the conduit's
//! `listen` address instead (Modbus/TCP), so the gateway's own policy decides them. Each unit
//! gets FC 43/14 Read Device Identification, basic (01) then regular (02) stream access,
//! following "more follows" (at most 8 requests per category), and FC 17 Report Server ID.
//! Every step has a timeout; an exception or a silent device is noted, not an error.
//!
//! The output ([`render_yaml`]) is `assets:` entries (the model's asset id, address, unit ids,
//! vendor, model, firmware and the rest in `notes`) to merge into the model's zones.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use zonegate_modbus::{ReadDeviceIdCode, Request, Response};
use zonegate_policy::{Model, Upstream};

use crate::mbaps::ProbeTls;
use crate::probe::{Client, Reply};

/// Requests per read code at most (a device whose "more follows" never ends is cut off).
const MAX_ROUNDS: usize = 8;

/// How the requests to a [`Target`] travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus/TCP (MBAP): a `tcp://` upstream, or a gateway's listen address.
    Tcp,
    /// RTU frames (address, PDU, CRC) in a TCP stream: an `rtu+tcp://` upstream.
    RtuOverTcp,
    /// Modbus/TCP Security: a `tls://` upstream, with its CA, client certificate and name.
    Tls(ProbeTls),
}

/// One device to ask: where, which units, and which model asset it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The conduit whose path is used.
    pub conduit: String,
    /// Where the requests go (the upstream, or the gateway's listen address).
    pub connect: SocketAddr,
    /// How they are framed and secured there.
    pub transport: Transport,
    /// The device's address (the upstream's; `None`: a serial device behind the gateway).
    pub device: Option<SocketAddr>,
    /// The model's asset at that address (`None`: the model names none).
    pub asset: Option<String>,
    /// Unit ids asked.
    pub units: Vec<u8>,
}

/// What one unit said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitAnswer {
    /// The unit id.
    pub unit: u8,
    /// Device identification objects (id, value as text), in the order received.
    pub objects: Vec<(u8, String)>,
    /// The FC 17 data (server id, run indicator, additional data), as received.
    pub server_id: Option<Vec<u8>>,
    /// What did not work (exceptions, timeouts, invalid answers).
    pub notes: Vec<String>,
}

/// What one device said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// The device asked.
    pub target: Target,
    /// Per unit.
    pub units: Vec<UnitAnswer>,
}

/// The devices to ask, from the model's gateway conduits; conduits that cannot be asked (an
/// `rtu://` serial line directly, a host name, a `tls://` upstream without `ca=`) are said in
/// the second list, one line each. A listen address on every interface is asked on loopback.
pub fn plan(model: &Model, through_gateway: bool) -> (Vec<Target>, Vec<String>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut skipped = Vec::new();
    for c in &model.conduits {
        let Some(g) = &c.gateway else { continue };
        // The TLS files resolve against the model's folder, as the gateway opens them.
        let upstream = model.resolve_upstream(&g.upstream);
        let device = match upstream.host_port() {
            Some((host, port)) => match host.parse::<IpAddr>() {
                Ok(ip) => Some(SocketAddr::new(ip.to_canonical(), port)),
                Err(_) => {
                    skipped.push(format!(
                        "conduit {}: skipped: upstream host {host} is not an IP address; not probed",
                        c.id
                    ));
                    continue;
                }
            },
            None => None,
        };
        let (connect, transport) = if through_gateway {
            let l = g.listen;
            let connect = if l.ip().is_unspecified() {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), l.port())
            } else {
                l
            };
            (connect, Transport::Tcp)
        } else {
            match direct(&upstream, device) {
                Ok(d) => d,
                Err(why) => {
                    skipped.push(format!("conduit {}: skipped: {why}", c.id));
                    continue;
                }
            }
        };
        let asset = device.and_then(|d| {
            model
                .zones
                .iter()
                .flat_map(|z| z.assets.iter())
                .find(|a| a.address == Some(d.ip()))
        });
        let mut units = match asset {
            Some(a) => a.unit_ids.clone(),
            // A serial line has no address to find its asset by: the units its rules name.
            None if device.is_none() => rule_units(c),
            None => Vec::new(),
        };
        if units.is_empty() {
            units.push(1);
        }
        // Two conduits to one device: asked once.
        if targets
            .iter()
            .any(|t| t.connect == connect && t.device == device)
        {
            continue;
        }
        targets.push(Target {
            conduit: c.id.clone(),
            connect,
            transport,
            device,
            asset: asset.and_then(|a| a.id.clone()),
            units,
        });
    }
    (targets, skipped)
}

/// Where and how an upstream is asked directly (not through the gateway).
fn direct(
    upstream: &Upstream,
    device: Option<SocketAddr>,
) -> Result<(SocketAddr, Transport), String> {
    let transport = match upstream {
        Upstream::Tcp { .. } => Transport::Tcp,
        Upstream::RtuTcp { .. } => Transport::RtuOverTcp,
        Upstream::Tls {
            host,
            ca,
            cert,
            key,
            server_name,
            ..
        } => {
            let Some(ca) = ca.clone() else {
                return Err(format!(
                    "upstream {upstream} has no ca= (the CA bundle the device certificate chains to)"
                ));
            };
            let identity = match (cert, key) {
                (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                (None, None) => None,
                _ => return Err(format!("upstream {upstream} takes cert= and key= together")),
            };
            Transport::Tls(ProbeTls {
                ca,
                identity,
                server_name: server_name.clone().unwrap_or_else(|| host.clone()),
            })
        }
        Upstream::Rtu { path, .. } => {
            return Err(format!(
                "serial line rtu://{} is probed through the gateway's conduit \
                 (--through-gateway), not directly",
                path.display()
            ))
        }
        other => {
            return Err(format!(
                "upstream {other} is of a kind this build does not probe"
            ))
        }
    };
    let connect = device.ok_or_else(|| format!("upstream {upstream} has no address"))?;
    Ok((connect, transport))
}

/// The unit ids a conduit's rules name, in order, once each.
fn rule_units(c: &zonegate_policy::Conduit) -> Vec<u8> {
    let mut units = Vec::new();
    for u in c.rules.iter().filter_map(|r| r.unit_ids.as_ref()).flatten() {
        if !units.contains(u) {
            units.push(*u);
        }
    }
    units
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Exception(c) => format!(
            "exception 0x{c:02X} ({})",
            zonegate_modbus::ExceptionCode::from_u8(*c).as_str()
        ),
        Reply::Timeout => "no answer within the timeout".to_owned(),
        Reply::Closed => "connection closed".to_owned(),
        Reply::Error(e) => e.clone(),
        Reply::Normal(_) => "answered".to_owned(),
    }
}

/// A device's bytes as text: printable ASCII kept, anything else a space (device strings are
/// ASCII by the spec; what is not must not reach a terminal or YAML as control bytes).
fn text_of(value: &[u8]) -> String {
    value
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                ' '
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Reads one category of identification objects, following "more follows".
fn read_category(client: &mut Client, unit: u8, code: ReadDeviceIdCode, out: &mut UnitAnswer) {
    let label = match code {
        ReadDeviceIdCode::Basic => "basic",
        _ => "regular",
    };
    let mut object_id = 0u8;
    for _ in 0..MAX_ROUNDS {
        let request = Request::ReadDeviceIdentification {
            read_code: code,
            object_id,
        };
        let pdu = match client.exchange_pdu(unit, &request) {
            Ok(pdu) => pdu,
            Err(reply) => {
                out.notes
                    .push(format!("FC 43/14 {label}: {}", describe(&reply)));
                return;
            }
        };
        match Response::parse_for(&pdu, &request) {
            Ok(Response::ReadDeviceIdentification(id)) => {
                if !id.conformity_is_standard() {
                    out.notes.push(format!(
                        "FC 43/14 {label}: off-spec conformity level 0x{:02X}",
                        id.conformity_level
                    ));
                }
                for o in id.objects.iter() {
                    if !out.objects.iter().any(|(i, _)| *i == o.id) {
                        out.objects.push((o.id, text_of(o.value)));
                    }
                }
                if !id.more_follows || id.next_object_id <= object_id {
                    return;
                }
                object_id = id.next_object_id;
            }
            Ok(Response::Exception { code, .. }) => {
                out.notes.push(format!(
                    "FC 43/14 {label}: {}",
                    describe(&Reply::Exception(code.to_u8()))
                ));
                return;
            }
            Ok(_) => return,
            Err(e) => {
                out.notes
                    .push(format!("FC 43/14 {label}: invalid answer: {e}"));
                return;
            }
        }
    }
    out.notes.push(format!(
        "FC 43/14 {label}: still \"more follows\" after {MAX_ROUNDS} requests; stopped"
    ));
}

/// Asks every target (sequentially, one connection each, every step bounded by `timeout`).
pub fn run(targets: &[Target], timeout: Duration) -> Vec<Identified> {
    let mut all = Vec::new();
    for t in targets {
        let client = match &t.transport {
            Transport::Tcp => Ok(Client::new(t.connect, None, timeout)),
            Transport::RtuOverTcp => Ok(Client::new_rtu_over_tcp(t.connect, None, timeout)),
            Transport::Tls(tls) => Client::new_tls(t.connect, None, timeout, tls),
        };
        let mut client = match client {
            Ok(c) => c,
            Err(e) => {
                // The TLS files do not load: every unit says why, none is asked.
                let units = t
                    .units
                    .iter()
                    .map(|&unit| UnitAnswer {
                        unit,
                        notes: vec![format!("not asked: {e}")],
                        ..UnitAnswer::default()
                    })
                    .collect();
                all.push(Identified {
                    target: t.clone(),
                    units,
                });
                continue;
            }
        };
        let mut units = Vec::new();
        for &unit in &t.units {
            let mut answer = UnitAnswer {
                unit,
                ..UnitAnswer::default()
            };
            read_category(&mut client, unit, ReadDeviceIdCode::Basic, &mut answer);
            read_category(&mut client, unit, ReadDeviceIdCode::Regular, &mut answer);
            let request = Request::ReportServerId;
            match client.exchange_pdu(unit, &request) {
                Ok(pdu) => match Response::parse_for(&pdu, &request) {
                    Ok(Response::ReportServerId { data }) => {
                        answer.server_id = Some(data.to_vec());
                    }
                    Ok(Response::Exception { code, .. }) => answer.notes.push(format!(
                        "FC 17: {}",
                        describe(&Reply::Exception(code.to_u8()))
                    )),
                    Ok(_) => {}
                    Err(e) => answer.notes.push(format!("FC 17: invalid answer: {e}")),
                },
                Err(reply) => answer.notes.push(format!("FC 17: {}", describe(&reply))),
            }
            units.push(answer);
        }
        all.push(Identified {
            target: t.clone(),
            units,
        });
    }
    all
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The standard object names (V1.1b3 §6.21, table of object ids).
fn object_name(id: u8) -> String {
    match id {
        0 => "vendor name".into(),
        1 => "product code".into(),
        2 => "revision".into(),
        3 => "vendor URL".into(),
        4 => "product name".into(),
        5 => "model name".into(),
        6 => "user application name".into(),
        other => format!("object 0x{other:02X}"),
    }
}

/// FC 17 data for a person: the run indicator is the byte before the additional data, which
/// devices lay out as they like; the whole is given as hex and as text.
fn server_id_text(data: &[u8]) -> String {
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex} ({})", text_of(data))
}

/// `assets:` entries for what was found (see the module docs).
pub fn render_yaml(found: &[Identified], model_file: &str) -> String {
    let mut out = format!(
        "# Probed by `zonegate inventory --probe {model_file}`; merge into the zones' `assets:`.\nassets:\n"
    );
    for d in found {
        let t = &d.target;
        let id = t.asset.clone().unwrap_or_else(|| match t.device {
            Some(d) => format!("S-{}", d.ip().to_string().replace(['.', ':'], "-")),
            None => format!("S-{}", t.conduit),
        });
        let _ = writeln!(out, "  - id: {id}");
        if let Some(d) = t.device {
            let _ = writeln!(out, "    address: {}", quoted(&d.ip().to_string()));
        }
        let units: Vec<String> = t.units.iter().map(u8::to_string).collect();
        let _ = writeln!(out, "    unit_ids: [{}]", units.join(", "));
        // The first unit that identified itself names the device.
        if let Some(u) = d.units.iter().find(|u| !u.objects.is_empty()) {
            for (key, object) in [("vendor", 0u8), ("model", 1), ("firmware", 2)] {
                if let Some((_, v)) = u.objects.iter().find(|(i, _)| *i == object) {
                    let _ = writeln!(out, "    {key}: {}", quoted(v));
                }
            }
        }
        let how = match t.transport {
            Transport::Tcp => "",
            Transport::RtuOverTcp => " (RTU over TCP)",
            Transport::Tls(_) => " (Modbus/TCP Security)",
        };
        let mut notes = vec![format!(
            "conduit {}, asked at {}{how}",
            t.conduit, t.connect
        )];
        for u in &d.units {
            let mut parts = Vec::new();
            let extra: Vec<String> = u
                .objects
                .iter()
                .filter(|(i, _)| *i > 2)
                .map(|(i, v)| format!("{} {v}", object_name(*i)))
                .collect();
            if !extra.is_empty() {
                parts.push(extra.join(", "));
            }
            if let Some(data) = &u.server_id {
                parts.push(format!("FC 17 server id {}", server_id_text(data)));
            }
            parts.extend(u.notes.iter().cloned());
            if u.objects.is_empty() && u.server_id.is_none() && u.notes.is_empty() {
                parts.push("no answer".into());
            }
            notes.push(format!("unit {}: {}", u.unit, parts.join("; ")));
        }
        let _ = writeln!(out, "    notes: {}", quoted(&notes.join(". ")));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_the_models_upstreams_are_asked() {
        let m = zonegate_policy::load_str(
            "zones:\n  - zone_id: Z\n    assets:\n      - {id: PLC, address: 10.0.0.5, unit_ids: [1, 2]}\n      - {id: OTHER, address: 10.0.0.6}\nconduits:\n  - conduit_id: C1\n    gateway: {listen: 0.0.0.0:1502, upstream: tcp://10.0.0.5:502}\n    rules: []\n  - conduit_id: C2\n    gateway: {listen: 127.0.0.1:1503, upstream: tcp://10.0.0.5:502}\n    rules: []\n  - conduit_id: C3\n    gateway: {listen: 127.0.0.1:1504, upstream: 'rtu:///dev/ttyS0?baud=9600'}\n    rules: []\n",
            "m.yaml",
        )
        .unwrap();
        let (targets, skipped) = plan(&m, false);
        assert_eq!(targets.len(), 1, "one device, asked once: {targets:?}");
        let t = &targets[0];
        assert_eq!(t.connect, "10.0.0.5:502".parse().unwrap());
        assert_eq!(t.asset.as_deref(), Some("PLC"));
        assert_eq!(t.units, vec![1, 2]);
        assert_eq!(t.transport, Transport::Tcp);
        assert_eq!(
            skipped,
            vec![
                "conduit C3: skipped: serial line rtu:///dev/ttyS0 is probed through the \
                  gateway's conduit (--through-gateway), not directly"
                    .to_owned()
            ]
        );
        let (via, skipped) = plan(&m, true);
        assert_eq!(via[0].connect, "127.0.0.1:1502".parse().unwrap());
        assert_eq!(via.len(), 3, "through each gateway: {via:?}");
        assert!(skipped.is_empty(), "{skipped:?}");
        // The serial line through its gateway: no address, the units of its rules.
        assert_eq!(
            (via[2].connect, via[2].device, &via[2].units),
            ("127.0.0.1:1504".parse().unwrap(), None, &vec![1])
        );
        assert!(via.iter().all(|t| t.transport == Transport::Tcp));
    }

    #[test]
    fn rtu_over_tcp_and_tls_upstreams_are_asked_as_the_gateway_speaks_to_them() {
        let m = zonegate_policy::load_str(
            "zones:\n  - zone_id: Z\n    assets:\n      - {id: CONV, address: 10.0.0.7, unit_ids: [3, 4]}\nconduits:\n  - conduit_id: C1\n    gateway: {listen: 127.0.0.1:1502, upstream: 'rtu+tcp://10.0.0.7:4001'}\n    rules: []\n  - conduit_id: C2\n    gateway: {listen: 127.0.0.1:1503, upstream: 'tls://10.0.0.8:802?ca=pki/ca.pem&cert=pki/gw.pem&key=pki/gw.key&server_name=plc.local'}\n    rules: []\n  - conduit_id: C3\n    gateway: {listen: 127.0.0.1:1504, upstream: 'tls://10.0.0.9:802'}\n    rules: []",
            "m.yaml",
        )
        .unwrap();
        let mut m = m;
        m.dir = Some("/site".into());
        let (targets, skipped) = plan(&m, false);
        assert_eq!(targets.len(), 2, "{targets:?}");
        assert_eq!(targets[0].transport, Transport::RtuOverTcp);
        assert_eq!(targets[0].connect, "10.0.0.7:4001".parse().unwrap());
        assert_eq!(targets[0].units, vec![3, 4]);
        assert_eq!(
            targets[1].transport,
            Transport::Tls(ProbeTls {
                ca: "/site/pki/ca.pem".into(),
                identity: Some(("/site/pki/gw.pem".into(), "/site/pki/gw.key".into())),
                server_name: "plc.local".into(),
            }),
            "relative to the model's folder, as the gateway opens them"
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].starts_with("conduit C3: skipped: ") && skipped[0].contains("no ca="));
    }
}
