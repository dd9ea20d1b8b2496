//! `zonegate demo`: the built-in model and the commands the demo prints.
//!
//! The demo starts the simulated cleanroom HVAC controller ([`crate::sim`]) on a free loopback
//! port and a gateway in front of it with the model below. Sources are told apart by their
//! loopback address (Linux routes all of 127.0.0.0/8 to `lo`): pymodbus can bind its socket to
//! 127.0.0.2 (the historian) or 127.0.0.3 (the engineering workstation); mbpoll cannot choose
//! its source, so it always acts as 127.0.0.1, the operator panel.

use std::fmt::Write as _;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zonegate_audit::{Event, Kind};

use crate::sim::{Device, Sim};
use crate::{Gateway, GatewayOptions, StartError};

/// The historian's address in the demo model.
pub const HISTORIAN: &str = "127.0.0.2";
/// The engineering workstation's address in the demo model.
pub const WORKSTATION: &str = "127.0.0.3";
/// A source the demo model does not list (anything else on the office LAN).
pub const STRANGER: &str = "127.0.0.9";

/// The built-in model; `{LISTEN}` and `{DEVICE}` are replaced by [`model_yaml`].
pub const MODEL_TEMPLATE: &str = r#"# zonegate demo: the built-in model (print it with `zonegate demo --print-model`).
facility: "Building 4 cleanroom HVAC (zonegate demo, simulated)"
standard: "IEC 62443-3-2:2020"
zones:
  - zone_id: Z4-ENTERPRISE
    name: Enterprise network (office LAN)
    purdue_level: 4
    security_level_target: "SL 1"
    assets:
      - "Office PCs, mail, ERP: every address not listed below"
    allowed_conduits: []
  - zone_id: Z2-OPS
    name: HVAC operations (supervisory)
    purdue_level: 2
    security_level_target: "SL 2"
    assets:
      - id: HISTORIAN-01
        address: 127.0.0.2
        kind: historian
      - id: EWS-01
        address: 127.0.0.3
        kind: ews
      - id: PANEL-01
        address: 127.0.0.1
        kind: hmi
    allowed_conduits: [C1-OPS-CTRL{TLS_ALLOWED}]
  - zone_id: Z1-CTRL
    name: Cleanroom HVAC control
    purdue_level: 1
    security_level_target: "SL 2"
    assets:
      - id: AHU-01
        unit_ids: [1]
        kind: plc
    allowed_conduits: [C1-OPS-CTRL{TLS_ALLOWED}]
conduits:
  - conduit_id: C1-OPS-CTRL
    name: HVAC operations to cleanroom control
    connects: [Z2-OPS, Z1-CTRL]
    security_level: "SL 2"
    gateway:
      listen: {LISTEN}
      upstream: tcp://{DEVICE}
      mode: enforce
      deny: exception
      idle_timeout: 5m
      request_timeout: 2s
    rules:
      - id: historian-read
        from: [HISTORIAN-01]
        functions: [read_holding_registers, read_input_registers]
        holding: 0-199
        input: 0-99
        justification: "the historian polls setpoints and measurements"
      - id: panel-read-measurements
        from: [PANEL-01]
        functions: [read_input_registers]
        input: 0-99
        justification: "the operator panel shows measurements, nothing else"
      - id: ews-setpoints
        from: [EWS-01]
        functions: [write_single_register, write_multiple_registers]
        holding: 100-109
        values: {min: 180, max: 240}
        rate: 2/s
        justification: "temperature setpoints (18.0-24.0 C) by the HVAC engineer"
{TLS_CONDUIT}audit:
  path: zonegate-demo-audit.log   # the demo writes to a temp file instead (see its output)
  sync: writes
  on_failure: block_writes
"#;

/// The Modbus/TCP Security conduit of the demo: the same device behind a mutual-TLS listener,
/// where the client certificate's role decides (spec R-21..R-31). `{TLS_LISTEN}`, `{DEVICE}`
/// and `{PKI}` are filled in by [`model_yaml`].
pub const TLS_CONDUIT_TEMPLATE: &str = r#"  - conduit_id: C2-OPS-CTRL-TLS
    name: HVAC operations to cleanroom control, Modbus/TCP Security (mutual TLS, roles)
    connects: [Z2-OPS, Z1-CTRL]
    security_level: "SL 2"
    gateway:
      listen: {TLS_LISTEN}
      upstream: tcp://{DEVICE}
      mode: enforce
      deny: exception
      idle_timeout: 5m
      request_timeout: 2s
      tls:
        cert: {PKI}/gateway.pem
        key: {PKI}/gateway.key
        client_ca: {PKI}/ca.pem
        min_version: "1.2"
    rules:
      - id: operator-read
        from: [Z2-OPS]
        roles: [Operator, Engineer]
        functions: [read_holding_registers, read_input_registers]
        holding: 0-199
        input: 0-99
        justification: "operators watch setpoints and measurements"
      - id: engineer-setpoints
        from: [Z2-OPS]
        roles: [Engineer]
        functions: [write_single_register, write_multiple_registers]
        holding: 100-109
        values: {min: 180, max: 240}
        rate: 2/s
        justification: "only an Engineer certificate changes a setpoint"
"#;

/// The lab PKI of the demo's TLS conduit: a folder holding `ca.pem`, `gateway.pem`/`.key` (the
/// listener) and `operator.pem`/`.key`, `engineer.pem`/`.key` (clients with roles `Operator`
/// and `Engineer`). `zonegate demo` makes it with `zonegate cert` at start.
#[derive(Debug, Clone)]
pub struct DemoPki {
    /// The folder.
    pub dir: PathBuf,
}

/// The demo model with its listen address and device address filled in; with `tls`, the
/// Modbus/TCP Security conduit too (listening on `tls.0`, certificates from `tls.1`).
pub fn model_yaml(listen: SocketAddr, device: SocketAddr) -> String {
    model_with(listen, device, None)
}

fn model_with(listen: SocketAddr, device: SocketAddr, tls: Option<(SocketAddr, &Path)>) -> String {
    let (allowed, conduit) = match tls {
        Some((tls_listen, pki)) => (
            ", C2-OPS-CTRL-TLS",
            TLS_CONDUIT_TEMPLATE
                .replace("{TLS_LISTEN}", &tls_listen.to_string())
                .replace("{PKI}", &pki.display().to_string()),
        ),
        None => ("", String::new()),
    };
    MODEL_TEMPLATE
        .replace("{TLS_ALLOWED}", allowed)
        .replace("{TLS_CONDUIT}", &conduit)
        .replace("{LISTEN}", &listen.to_string())
        .replace("{DEVICE}", &device.to_string())
}

/// Where the model printed by `zonegate demo --print-model` listens: a port no example model's
/// gateway uses (5020-5031), in front of `zonegate sim`'s default address.
pub const PRINTED_LISTEN: &str = "127.0.0.1:5040";

/// The model `zonegate demo --print-model` prints: it runs as it is with `zonegate sim` (default
/// address) as its device: `zonegate sim & zonegate run -c demo.yaml`.
/// The TLS conduit is left out: it needs a PKI (`zonegate cert`), which `zonegate demo` makes
/// for itself in a temporary folder.
pub fn printed_model() -> String {
    let (Ok(listen), Ok(device)) = (
        PRINTED_LISTEN.parse::<SocketAddr>(),
        crate::sim::DEFAULT_LISTEN.parse::<SocketAddr>(),
    ) else {
        return MODEL_TEMPLATE.to_owned();
    };
    model_yaml(listen, device)
}

/// A pymodbus one-liner over Modbus/TCP Security: the client presents `NAME.pem` from the demo
/// PKI (its role is in the certificate) and verifies the gateway's chain against `ca.pem`.
/// pymodbus's sync TLS client wraps its socket without a server name, so the name check is off
/// (the chain is still verified; the printed text says so).
fn pymodbus_tls(gw: SocketAddr, pki: &Path, name: &str, call: &str) -> String {
    let d = pki.display();
    format!(
        "python3 -c 'import ssl; from pymodbus.client import ModbusTlsClient as C; \
         x = ssl.create_default_context(cafile=\"{d}/ca.pem\"); x.check_hostname = False; \
         x.load_cert_chain(\"{d}/{name}.pem\", \"{d}/{name}.key\"); \
         c = C(\"{}\", port={}, sslctx=x); c.connect(); print(c.{call}); c.close()'",
        gw.ip(),
        gw.port()
    )
}

/// The lines the demo prints about its TLS conduit.
pub fn tls_instructions(tls: SocketAddr, pki: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Modbus/TCP Security (conduit C2-OPS-CTRL-TLS, mutual TLS on {tls}): the same device;\
         \nthe client certificate's role decides. Lab PKI made with `zonegate cert` in\
         \n{}:\
         \n  operator.pem  role Operator   read holding 0-199 and input 0-99\
         \n  engineer.pem  role Engineer   the same, and write setpoints holding 100-109 (180-240)\
         \n  no certificate, or one the lab CA did not sign: refused in the handshake\
         \n(pymodbus's sync TLS client cannot send a server name: check_hostname is off, the\
         \nchain to ca.pem is verified)\n",
        pki.display()
    );
    let steps = [
        (
            "9. TLS, role Operator: allowed read of the setpoints",
            pymodbus_tls(tls, pki, "operator", "read_holding_registers(100, count=4)"),
            "registers=[...]  (the current setpoints)",
        ),
        (
            "10. TLS, role Operator: a setpoint write is refused (only Engineer may)",
            pymodbus_tls(tls, pki, "operator", "write_register(100, 215)"),
            "ExceptionResponse(... exception_code=1)  illegal function: role_not_allowed",
        ),
        (
            "11. TLS, role Engineer: the same write is allowed",
            pymodbus_tls(tls, pki, "engineer", "write_register(100, 215)"),
            "WriteSingleRegisterResponse(... address=100 ... registers=[215])",
        ),
    ];
    for (title, cmd, expect) in steps {
        let _ = writeln!(s, "  {title}\n    {cmd}\n    -> {expect}\n");
    }
    s
}

/// A pymodbus one-liner acting as `source` against the gateway at `gw`.
fn pymodbus(gw: SocketAddr, source: &str, call: &str) -> String {
    format!(
        "python3 -c 'from pymodbus.client import ModbusTcpClient as C; \
         c = C(\"{}\", port={}, source_address=(\"{source}\", 0)); c.connect(); \
         print(c.{call}); c.close()'",
        gw.ip(),
        gw.port()
    )
}

/// What the demo prints once it runs: who may do what, and commands to try.
pub fn instructions(gateway: SocketAddr, device: SocketAddr, audit: &str) -> String {
    let ip = gateway.ip();
    let port = gateway.port();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nzonegate demo: a simulated cleanroom HVAC controller behind a zonegate gateway\n\
         \n  gateway  {gateway}   conduit C1-OPS-CTRL, mode enforce, deny by default\
         \n  device   {device}   simulated AHU-01 (the gateway's upstream)\
         \n  events   {audit}\n\
         \nThe built-in model (zonegate demo --print-model) allows exactly this:\
         \n  127.0.0.2  historian                 read holding 0-199 and input 0-99\
         \n  127.0.0.3  engineering workstation   write setpoints holding 100-109,\
         \n                                       values 180-240 (18.0-24.0 C), at most 2/s\
         \n  127.0.0.1  operator panel            read input registers 0-99\
         \n  anyone else (127.0.0.9, ...)         nothing: the connection is closed at accept\
         \n                                       (event connection, no_rule_for_source)\n\
         \nTry it from another terminal (pip install pymodbus; apt install mbpoll).\
         \npymodbus picks its source address with source_address (any 127.0.0.x works\
         \non Linux):\n"
    );
    let steps = [
        (
            "1. allowed read: the historian reads the setpoints (holding 100-103)",
            pymodbus(gateway, HISTORIAN, "read_holding_registers(100, count=4)"),
            "registers=[200, 180, 220, 210]",
        ),
        (
            "2. blocked write: FC 16 from the historian, which may only read",
            pymodbus(gateway, HISTORIAN, "write_registers(100, [300, 300])"),
            "ExceptionResponse(... exception_code=1)  illegal function: no rule for this function",
        ),
        (
            "3. out-of-bounds setpoint: the workstation writes 30.0 C (300 > 240)",
            pymodbus(gateway, WORKSTATION, "write_register(100, 300)"),
            "ExceptionResponse(... exception_code=3)  illegal data value",
        ),
        (
            "4. allowed write: the workstation sets 21.5 C",
            pymodbus(gateway, WORKSTATION, "write_register(100, 215)"),
            "WriteSingleRegisterResponse(... address=100 ... registers=[215])",
        ),
        (
            "5. outside the allowed range: the historian reads holding 300",
            pymodbus(gateway, HISTORIAN, "read_holding_registers(300, count=1)"),
            "ExceptionResponse(... exception_code=2)  illegal data address",
        ),
    ];
    for (title, cmd, expect) in steps {
        let _ = writeln!(s, "  {title}\n    {cmd}\n    -> {expect}\n");
    }
    let _ = writeln!(
        s,
        "With mbpoll (it cannot choose its source address, so it always acts as 127.0.0.1,\
         \nthe operator panel; -0 = zero-based addresses, -1 = poll once):\n\
         \n  6. allowed read: the panel reads the measurements (input registers 0-5)\
         \n    mbpoll -m tcp -p {port} -0 -t 3 -r 0 -c 6 -1 {ip}\
         \n    -> [0]: 201  [1]: 182  [2]: 447 ...   (20.1 C, 18.2 C, 44.7 %RH)\n\
         \n  7. blocked write: FC 16 from the panel, which has no write rule\
         \n    mbpoll -m tcp -p {port} -0 -t 4 -r 100 -1 {ip} 230 230\
         \n    -> Write output (holding) register failed: Illegal function\n\
         \n  8. blocked read: the panel may not read holding registers\
         \n    mbpoll -m tcp -p {port} -0 -t 4 -r 100 -c 4 -1 {ip}\
         \n    -> Read output (holding) register failed: Illegal function\n\
         \nEach request is one audit event (JSON line) with its decision, rule and reason;\
         \nthe device behind the gateway never sees a denied request. Ctrl-C stops the demo.\n"
    );
    s
}

/// How `zonegate demo` runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the gateway listens (port 0 = a free port).
    pub listen: SocketAddr,
    /// The audit log file; `None` writes the JSON events to stdout instead of the summary.
    pub audit_log: Option<PathBuf>,
    /// The lab PKI of the Modbus/TCP Security conduit; `None` runs the plaintext conduit only.
    pub pki: Option<DemoPki>,
    /// The registry the admin endpoint serves, and that endpoint's address (the dashboard,
    /// printed in the banner); `None`: no admin endpoint.
    pub admin: Option<(Arc<crate::Metrics>, SocketAddr)>,
}

/// The default audit log of the demo: a file in the temp directory, named after the process.
pub fn default_audit_log() -> PathBuf {
    std::env::temp_dir().join(format!("zonegate-demo-{}.log", std::process::id()))
}

/// Runs the demo until Ctrl-C / SIGTERM: simulated device, gateway, instructions, and one
/// human-readable line per audit event (read back from the audit log as it grows).
pub async fn run(options: DemoOptions) -> Result<(), String> {
    let device_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = Sim::start(device_addr, Device::hvac())
        .await
        .map_err(|e| format!("cannot start the simulated device on {device_addr}: {e}"))?;
    // The TLS conduit listens beside the plaintext one, on a free port of the same address.
    let tls_listen = SocketAddr::new(options.listen.ip(), 0);
    let yaml = model_with(
        options.listen,
        sim.local_addr(),
        options.pki.as_ref().map(|p| (tls_listen, p.dir.as_path())),
    );
    let gateway_options = GatewayOptions {
        audit_path: Some(options.audit_log.clone()),
        metrics: options.admin.as_ref().map(|(m, _)| Arc::clone(m)),
        ..GatewayOptions::default()
    };
    let gateway = match Gateway::start_text(&yaml, "<built-in demo model>", gateway_options).await {
        Ok(g) => g,
        Err(e) => {
            sim.stop().await;
            return Err(match e {
                StartError::Model(errors) => format!("the built-in model does not load:\n{errors}"),
                other => other.to_string(),
            });
        }
    };
    let by_id = |id: &str| {
        gateway
            .listeners()
            .iter()
            .find(|l| l.conduit == id)
            .cloned()
    };
    let Some(listener) = by_id("C1-OPS-CTRL") else {
        sim.stop().await;
        return Err("the built-in model has no gateway conduit".to_owned());
    };
    let tls_text = match (&options.pki, by_id("C2-OPS-CTRL-TLS")) {
        (Some(pki), Some(l)) => tls_instructions(l.addr, &pki.dir),
        _ => String::new(),
    };
    let audit_label = match &options.audit_log {
        Some(p) => format!(
            "{}  (JSON lines; check it with: zonegate log verify {})",
            p.display(),
            p.display()
        ),
        None => "stdout (JSON lines)".to_owned(),
    };
    let device = sim.local_addr();
    let follow = options.audit_log.is_some();
    // The tail starts printing once the banner is out, so no record lands above it.
    let (banner_tx, banner_rx) = tokio::sync::oneshot::channel::<()>();
    let tail = options
        .audit_log
        .clone()
        .map(|path| tokio::spawn(tail_events(path, banner_rx)));
    gateway
        .run_until_signal_then(|_| {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", instructions(listener.addr, device, &audit_label));
            let _ = write!(out, "{tls_text}");
            if let Some((_, addr)) = &options.admin {
                let _ = writeln!(
                    out,
                    "Dashboard (live decisions, devices, denials): http://{addr}/\n  \
                     metrics: http://{addr}/metrics   ready: http://{addr}/readyz\n"
                );
            }
            if follow {
                let _ = writeln!(out, "Live decisions (from the audit log):");
            }
            let _ = out.flush();
            let _ = banner_tx.send(());
        })
        .await;
    if let Some(t) = tail {
        // Let the tail print the last records (stop included), then end it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        t.abort();
    }
    sim.stop().await;
    if let Some(p) = &options.audit_log {
        println!(
            "\ndemo stopped. The audit log stays at {}\n  zonegate log verify {}\n  zonegate log show {}",
            p.display(),
            p.display(),
            p.display()
        );
    }
    Ok(())
}

/// Follows the audit log and prints one line per record (bounded poll every 100 ms), from the
/// moment `banner` fires (or its sender is gone).
async fn tail_events(path: PathBuf, banner: tokio::sync::oneshot::Receiver<()>) {
    let _ = banner.await;
    let mut offset = 0u64;
    let mut pending = String::new();
    loop {
        if let Some(chunk) = read_from(&path, &mut offset) {
            pending.push_str(&chunk);
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                if let Ok(event) = serde_json::from_str::<Event>(line.trim_end()) {
                    if let Some(text) = summarize(&event) {
                        println!("{text}");
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read_from(path: &Path, offset: &mut u64) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len < *offset {
        *offset = 0; // rotated
    }
    if len == *offset {
        return None;
    }
    f.seek(SeekFrom::Start(*offset)).ok()?;
    let mut buf = Vec::new();
    f.take(len - *offset).read_to_end(&mut buf).ok()?;
    // Only whole lines; a partial last line is read again next time.
    let end = buf.iter().rposition(|b| *b == b'\n')? + 1;
    buf.truncate(end);
    *offset += end as u64;
    String::from_utf8(buf).ok()
}

/// Width of the source column: an IPv4 `address:port` (`127.0.0.255:65535`) and a space.
const SRC_WIDTH: usize = 21;
/// Width of the function column (`write_multiple_registers`; longer names overflow it).
const FUNCTION_WIDTH: usize = 24;
/// Width of the table-and-range column (`holding 65000-65123`).
const RANGE_WIDTH: usize = 19;
/// Width of the decision column (`WOULD DENY`).
const DECISION_WIDTH: usize = 10;

/// One readable line for an audit record (`None` for records a person need not see here).
///
/// Request lines have fixed columns (time, seq, source, function, table and range, decision);
/// what varies in length (the reason, the rule, written values, latency) comes after them, so
/// the columns stay put. An allow names the rule that allowed it; a denial names its reason and,
/// when the policy found one, the *nearest* rule (the one that came closest, e.g. the rule whose
/// value bounds or rate limit refused the request, or the source's rule that lacks the
/// function): that rule did not allow the request, it is where to look.
pub fn summarize(e: &Event) -> Option<String> {
    let time = e.ts.as_deref().and_then(|t| t.get(11..23)).unwrap_or("");
    let seq = e.seq.map(|s| format!("#{s}")).unwrap_or_default();
    match e.kind {
        Kind::Request => {
            let src = e.src.as_deref().unwrap_or("?");
            let function = e.function.as_deref().map(str::to_owned).unwrap_or_else(|| {
                e.fc.map_or_else(|| "malformed frame".to_owned(), |fc| format!("fc {fc}"))
            });
            let mut range = String::new();
            if let (Some(t), Some(a), Some(q)) = (&e.table, e.address, e.quantity) {
                let _ = write!(range, "{t} {a}");
                if q > 1 {
                    let _ = write!(range, "-{}", u32::from(a) + u32::from(q) - 1);
                }
            }
            let decision = e.decision.map_or("?", |d| match d {
                zonegate_audit::Decision::Allow => "ALLOW",
                zonegate_audit::Decision::Deny => "DENY",
                zonegate_audit::Decision::WouldDeny => "WOULD DENY",
            });
            let mut line = format!(
                "{time} {seq:>5} {src:<SRC_WIDTH$} {function:<FUNCTION_WIDTH$} \
                 {range:<RANGE_WIDTH$} {decision:<DECISION_WIDTH$}"
            );
            let allowed = e.decision == Some(zonegate_audit::Decision::Allow);
            if allowed {
                if let Some(r) = &e.rule {
                    let _ = write!(line, " rule {r}");
                }
            } else {
                if let Some(r) = &e.reason {
                    let _ = write!(line, " {r}");
                }
                if let Some(r) = &e.rule {
                    let _ = write!(line, " (nearest rule: {r})");
                }
            }
            if let Some(x) = e.exception {
                let _ = write!(line, " -> exception {x:02X}");
            }
            if let Some(us) = e.latency_us {
                let _ = write!(line, " {us} us");
            }
            if let Some(v) = &e.values {
                let shown: Vec<String> = v.iter().take(8).map(u16::to_string).collect();
                let _ = write!(
                    line,
                    " values [{}{}]",
                    shown.join(", "),
                    if v.len() > 8 { ", ..." } else { "" }
                );
            }
            Some(line.trim_end().to_owned())
        }
        Kind::Outcome => {
            let r = e.ref_seq.map(|s| format!("#{s}")).unwrap_or_default();
            let result = e
                .exception
                .map_or_else(|| "done".to_owned(), |x| format!("exception {x:02X}"));
            let us = e.latency_us.unwrap_or(0);
            Some(format!(
                "{time} {seq:>5} {:<SRC_WIDTH$} outcome of {r}: {result} {us} us",
                ""
            ))
        }
        Kind::Start | Kind::Stop | Kind::PolicyLoad | Kind::PolicyReload | Kind::PolicyRejected => {
            Some(format!(
                "{time} {seq:>5} {}: {}",
                e.kind.as_str(),
                e.message.as_deref().unwrap_or("")
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn model_has_no_placeholders_left() {
        let a: SocketAddr = "127.0.0.1:5020".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:15020".parse().unwrap();
        let m = model_yaml(a, b);
        assert!(!m.contains('{') || !m.contains("{LISTEN}"));
        assert!(m.contains("listen: 127.0.0.1:5020"));
        assert!(m.contains("upstream: tcp://127.0.0.1:15020"));
        let text = instructions(a, b, "stdout");
        assert!(text.contains("source_address=(\"127.0.0.2\", 0)"));
        assert!(text.contains("mbpoll -m tcp -p 5020"));
    }

    #[test]
    fn the_built_in_model_loads_and_compiles() {
        let a: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5021".parse().unwrap();
        let m = zonegate_policy::load_str(&model_yaml(a, b), "demo").unwrap();
        let p = zonegate_policy::Policy::compile(&m).unwrap();
        assert_eq!(p.conduits().len(), 1);
        assert!(p.conduits()[0].gateway.is_some());
    }

    #[test]
    fn the_tls_conduit_loads_and_names_its_pki() {
        let a: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5021".parse().unwrap();
        let m = model_with(a, b, Some((a, Path::new("/tmp/pki"))));
        assert!(m.contains("cert: /tmp/pki/gateway.pem"), "{m}");
        let m = zonegate_policy::load_str(&m, "demo").unwrap();
        let p = zonegate_policy::Policy::compile(&m).unwrap();
        assert_eq!(p.conduits().len(), 2);
        let text = tls_instructions(a, Path::new("/tmp/pki"));
        assert!(text.contains("/tmp/pki/operator.pem"), "{text}");
        assert!(text.contains("exception_code=1"), "{text}");
    }

    #[test]
    fn summary_lines_are_readable() {
        let e = Event {
            ts: Some("2026-11-22T03:17:14.433000Z".into()),
            seq: Some(3),
            src: Some("127.0.0.9:5000".into()),
            function: Some("write_multiple_registers".into()),
            table: Some("holding".into()),
            address: Some(100),
            quantity: Some(2),
            values: Some(vec![300, 300]),
            decision: Some(zonegate_audit::Decision::Deny),
            reason: Some("no_rule_for_source".into()),
            exception: Some(1),
            ..Event::default()
        };
        let line = summarize(&e).unwrap();
        assert!(
            line.starts_with("03:17:14.433    #3 127.0.0.9:5000"),
            "{line}"
        );
        assert!(line.contains("holding 100-101"), "{line}");
        assert!(line.ends_with("values [300, 300]"), "{line}");
        assert!(
            line.contains("DENY       no_rule_for_source -> exception 01"),
            "{line}"
        );
        assert_eq!(summarize(&Event::new(Kind::Checkpoint)), None);
    }

    fn request(src: &'static str, function: &'static str, address: u16, quantity: u16) -> Event {
        Event {
            ts: Some("2026-11-22T03:17:14.433000Z".into()),
            seq: Some(12),
            src: Some(src.into()),
            function: Some(function.into()),
            table: Some("holding".into()),
            address: Some(address),
            quantity: Some(quantity),
            ..Event::default()
        }
    }

    #[test]
    fn demo_live_stream_shifts_columns_when_values_are_shown() {
        let mut read = request("127.0.0.2:54713", "read_holding_registers", 100, 4);
        read.decision = Some(zonegate_audit::Decision::Allow);
        read.reason = Some("allowed".into());
        read.rule = Some("historian-read".into());
        let mut write = request("127.0.0.9:43099", "write_multiple_registers", 100, 2);
        write.decision = Some(zonegate_audit::Decision::Deny);
        write.reason = Some("no_rule_for_source".into());
        write.values = Some(vec![300, 300]);
        write.exception = Some(1);
        let mut monitor = request("127.0.0.3:1", "write_single_register", 65000, 1);
        monitor.decision = Some(zonegate_audit::Decision::WouldDeny);
        monitor.reason = Some("value_out_of_bounds".into());
        monitor.values = Some(vec![9]);
        let lines: Vec<String> = [read, write, monitor]
            .iter()
            .map(|e| summarize(e).unwrap())
            .collect();
        // The decision starts in the same column on every line, values or not.
        let columns: Vec<Option<usize>> = lines
            .iter()
            .zip(["ALLOW", "DENY", "WOULD DENY"])
            .map(|(l, d)| l.find(&format!(" {d} ")).map(|i| i + 1))
            .collect();
        assert!(columns[0].is_some(), "{lines:?}");
        assert!(columns.iter().all(|c| *c == columns[0]), "{lines:#?}");
    }

    #[test]
    fn demo_live_stream_says_allow_allowed() {
        let mut e = request("127.0.0.2:54713", "read_holding_registers", 100, 4);
        e.decision = Some(zonegate_audit::Decision::Allow);
        e.reason = Some("allowed".into());
        e.rule = Some("historian-read".into());
        let line = summarize(&e).unwrap();
        assert!(!line.contains("allowed"), "{line}");
        assert!(line.ends_with("ALLOW      rule historian-read"), "{line}");
    }

    #[test]
    fn demo_live_stream_reads_as_if_the_nearest_rule_denied() {
        let mut e = request("127.0.0.1:45587", "read_holding_registers", 100, 4);
        e.decision = Some(zonegate_audit::Decision::Deny);
        e.reason = Some("no_rule_for_function".into());
        e.rule = Some("panel-read-measurements".into());
        e.exception = Some(1);
        let line = summarize(&e).unwrap();
        assert!(
            line.contains(
                "DENY       no_rule_for_function (nearest rule: panel-read-measurements) -> exception 01"
            ),
            "{line}"
        );
        assert!(!line.contains("(rule "), "{line}");
    }

    #[test]
    fn demo_zone_names_agree_with_their_purdue_level() {
        // Zone ids start with `Z<level>-` in the demo; the level must be the one declared.
        let m = zonegate_policy::load_str(&printed_model(), "demo").unwrap();
        for z in &m.zones {
            let digit: Option<String> =
                z.id.strip_prefix('Z')
                    .and_then(|r| r.split('-').next())
                    .map(str::to_owned);
            let level = z.purdue_level.map(|l| l.to_string());
            assert_eq!(digit, level, "zone {}", z.id);
        }
    }

    #[test]
    fn the_printed_model_runs_in_front_of_the_default_simulator() {
        let m = printed_model();
        assert!(m.contains(&format!("listen: {PRINTED_LISTEN}")));
        assert!(m.contains(&format!("upstream: tcp://{}", crate::sim::DEFAULT_LISTEN)));
    }
}
