//! The one-way replication halves of `zonegate run` (`--side transmit|receive`) and
//! `zonegate probe MODEL --replication ID` (issue 13). The agents live in `zonegate_replicate`.
//!
//! Without `--side`, `run` starts both halves of every replication whose receive addresses
//! (`receive.bind`, `receive.serve`) are addresses of this host (tests, the demo); a
//! replication whose receive side is elsewhere is an error that says which `--side` to run.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zonegate_audit::{AuditConfig, AuditLog};
use zonegate_policy::{Model, ReplicaTable, Replication};
use zonegate_replicate::{ReceiveAgent, ReceiveOptions, TagKey, Transmitter, VerifyKey};

/// Which half of a replication this host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Side {
    /// The OT side: poll the source, send datagrams one way.
    Transmit,
    /// The DMZ side: verify datagrams, serve the read-only replica.
    Receive,
}

/// Running replication halves.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    audits: Vec<zonegate_audit::AuditHandle>,
    /// True when `run` must not start the gateway: `--side` was given, or no conduit has one.
    pub(crate) only: bool,
}

impl Running {
    /// Stops every half and closes the receive sides' audit chains.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for a in self.audits {
            let _ = a.shutdown().await;
        }
    }

    /// True when nothing runs.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Starts the replication halves of the model for `side` (both when `None` and local).
/// `Err(exit status)` after printing why.
pub(crate) async fn start(path: &Path, side: Option<Side>) -> Result<Running, u8> {
    let (stop, stop_rx) = watch::channel(false);
    let model = match zonegate_policy::load_file(path) {
        Ok(m) => m,
        // Without --side the gateway's start reports the errors, as it always has.
        Err(_) if side.is_none() => {
            return Ok(Running {
                stop,
                tasks: Vec::new(),
                audits: Vec::new(),
                only: false,
            })
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "zonegate run: {}: {} error(s); nothing started",
                path.display(),
                errors.len()
            );
            return Err(2);
        }
    };
    let mut running = Running {
        stop,
        tasks: Vec::new(),
        audits: Vec::new(),
        only: side.is_some() || model.conduits.iter().all(|c| c.gateway.is_none()),
    };
    if side.is_some() && model.replications.is_empty() {
        eprintln!(
            "zonegate run: {}: --side given but the model has no replications",
            path.display()
        );
        return Err(2);
    }
    for r in &model.replications {
        let (tx, rx) = match side {
            Some(Side::Transmit) => (true, false),
            Some(Side::Receive) => (false, true),
            None => {
                let local = is_local(r.receive.bind.ip()) && is_local(r.receive.serve.ip());
                if !local {
                    eprintln!(
                        "zonegate run: replication {}: receive.bind {} is not an address of this \
                         host; run `zonegate run -c {} --side transmit` here and `--side receive` \
                         on the receive side",
                        r.id,
                        r.receive.bind,
                        path.display()
                    );
                    running.stop().await;
                    return Err(2);
                }
                (true, true)
            }
        };
        // The receive side first, so the first datagrams find it bound.
        if rx {
            if let Err(e) = start_receive(&model, r, &stop_rx, &mut running).await {
                eprintln!("zonegate run: replication {}: {e}", r.id);
                running.stop().await;
                return Err(2);
            }
        }
        if tx {
            if let Err(e) = start_transmit(&model, r, &stop_rx, &mut running).await {
                eprintln!("zonegate run: replication {}: {e}", r.id);
                running.stop().await;
                return Err(2);
            }
        }
    }
    Ok(running)
}

async fn start_receive(
    model: &Model,
    r: &Replication,
    stop: &watch::Receiver<bool>,
    running: &mut Running,
) -> Result<(), String> {
    let key = VerifyKey::load(r.auth, &model.resolve(&r.receive.key)).map_err(|e| e.0)?;
    let audit_path = model.resolve(
        r.receive
            .audit
            .as_deref()
            .unwrap_or(Path::new(&format!("{}-receive.log", r.id))),
    );
    let state_path = model.resolve(
        r.receive
            .state
            .as_deref()
            .unwrap_or(Path::new(&format!("{}-receive.state", r.id))),
    );
    // The gateway's own TLS listener configuration (one TLS stack, one set of rules).
    let tls = match &r.receive.tls {
        Some(t) => Some(
            zonegate_gateway::mbaps::server_config(&t.resolved(|p| model.resolve(p)))
                .map_err(|e| format!("receive.tls: {e}"))?,
        ),
        None => None,
    };
    let options = ReceiveOptions {
        tls,
        state: Some(state_path.clone()),
    };
    // The state first: a receive side that cannot trust it must not open a chain either.
    zonegate_replicate::ReplayState::load(&state_path, zonegate_replicate::datagram::stream_id(r))
        .map_err(|e| e.to_string())?;
    let audit = open_audit(model, &audit_path)?;
    let agent = match ReceiveAgent::bind_with(r.clone(), key, audit.clone(), options).await {
        Ok(a) => a,
        Err(e) => {
            let _ = audit.shutdown().await;
            return Err(e.to_string());
        }
    };
    println!(
        "replication {} receive: datagrams on {} (UDP), read-only replica on {}{}, audit {}, \
         replay state {}",
        r.id,
        agent.udp_addr().map_err(|e| e.to_string())?,
        agent.serve_addr().map_err(|e| e.to_string())?,
        if r.receive.tls.is_some() {
            " (Modbus/TCP Security, mutual TLS)"
        } else {
            ""
        },
        audit_path.display(),
        state_path.display()
    );
    running.tasks.push(tokio::spawn(agent.run(stop.clone())));
    running.audits.push(audit);
    Ok(())
}

async fn start_transmit(
    model: &Model,
    r: &Replication,
    stop: &watch::Receiver<bool>,
    running: &mut Running,
) -> Result<(), String> {
    let key = TagKey::load(r.auth, &model.resolve(&r.transmit.key)).map_err(|e| e.0)?;
    let mut resolved = r.clone();
    // tls:// files are relative to the model, as for a gateway upstream.
    resolved.source = model.resolve_upstream(&r.source);
    let tx = Transmitter::new(resolved, key)
        .await
        .map_err(|e| e.to_string())?;
    let audit_path = model.resolve(
        r.transmit
            .audit
            .as_deref()
            .unwrap_or(Path::new(&format!("{}-transmit.log", r.id))),
    );
    let audit = open_audit(model, &audit_path)?;
    let tx = tx
        .with_audit(audit.clone())
        .counters_every(r.transmit.counters);
    println!(
        "replication {} transmit: source {}, {} block(s), datagrams to {} (UDP, one way, repeat {}), audit {}",
        r.id,
        r.source,
        r.blocks.len(),
        r.transmit.to,
        r.transmit.repeat,
        audit_path.display()
    );
    running.tasks.push(tokio::spawn(tx.run(stop.clone())));
    running.audits.push(audit);
    Ok(())
}

fn open_audit(model: &Model, path: &Path) -> Result<zonegate_audit::AuditHandle, String> {
    let mut config = AuditConfig::new(path);
    config.policy_hash = Some(model.policy_hash());
    AuditLog::start(config)
        .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

// ---------------------------------------------------------------- probe

/// One check of the replication probe.
#[derive(Debug, serde::Serialize)]
struct Check {
    name: String,
    passed: bool,
    detail: String,
}

/// The probe's result, as `--out` writes it: a `zonegate probe` run (so `zonegate report
/// --probe` includes it as it is) plus the measured latency.
#[derive(Debug, serde::Serialize)]
struct ProbeResult {
    kind: &'static str,
    latency_ms: Option<f64>,
    #[serde(flatten)]
    run: zonegate_toolkit::probe::ProbeRun,
}

/// Options of `zonegate probe --replication`.
pub(crate) struct ProbeArgs<'a> {
    pub(crate) model: &'a Path,
    pub(crate) id: &'a str,
    pub(crate) timeout: Duration,
    pub(crate) from: Option<IpAddr>,
    pub(crate) mark: Option<&'a str>,
    pub(crate) connect: Option<SocketAddr>,
    pub(crate) out: Option<&'a Path>,
    /// Read the replica over Modbus/TCP Security as this client (`--cert`, `--key`).
    pub(crate) tls: Option<zonegate_toolkit::mbaps::ProbeTls>,
}

/// How the probe reads the replica: a fresh plaintext connection per read, or one Modbus/TCP
/// Security session (the toolkit's probe client, which reconnects when it must).
enum ReplicaReader {
    Plain(SocketAddr),
    Tls(Box<zonegate_toolkit::probe::Client>),
}

impl ReplicaReader {
    fn read(
        &mut self,
        unit: u8,
        table: ReplicaTable,
        address: u16,
        timeout: Duration,
    ) -> Result<u16, String> {
        use zonegate_toolkit::probe::Reply;
        match self {
            Self::Plain(addr) => read(*addr, unit, table, address, timeout),
            Self::Tls(c) => {
                let range =
                    zonegate_modbus::AddressRange::new(address, 1).map_err(|e| format!("{e:?}"))?;
                let request = match table {
                    ReplicaTable::Coils => zonegate_modbus::Request::ReadCoils(range),
                    ReplicaTable::Discrete => zonegate_modbus::Request::ReadDiscreteInputs(range),
                    ReplicaTable::Input => zonegate_modbus::Request::ReadInputRegisters(range),
                    _ => zonegate_modbus::Request::ReadHoldingRegisters(range),
                };
                match c.exchange(unit, &request) {
                    Reply::Normal(Some(v)) => Ok(v),
                    Reply::Exception(code) => Err(format!(
                        "exception 0x{code:02X} ({})",
                        zonegate_modbus::ExceptionCode::from_u8(code).as_str()
                    )),
                    Reply::Normal(None) => Err("empty response".into()),
                    Reply::Timeout => Err("no response before the timeout".into()),
                    Reply::Closed => Err("connection closed by the replica".into()),
                    Reply::Error(e) => Err(e),
                }
            }
        }
    }
}

/// `zonegate probe MODEL --replication ID`: forward flow, latency, reverse flow.
pub(crate) fn probe(a: &ProbeArgs<'_>) -> u8 {
    let model = match zonegate_policy::load_file(a.model) {
        Ok(m) => m,
        Err(errors) => {
            eprintln!("{errors}");
            return 2;
        }
    };
    let Some(r) = model.replication(a.id) else {
        eprintln!(
            "zonegate probe: {}: no replication `{}`",
            a.model.display(),
            a.id
        );
        return 2;
    };
    let replica = a.connect.unwrap_or(r.receive.serve);
    let mut reader = match &a.tls {
        None => ReplicaReader::Plain(replica),
        Some(t) => match zonegate_toolkit::probe::Client::new_tls(replica, a.from, a.timeout, t) {
            Ok(c) => ReplicaReader::Tls(Box::new(c)),
            Err(e) => {
                eprintln!("zonegate probe: {e}");
                return 2;
            }
        },
    };
    let started = zonegate_toolkit::util::now_utc();
    let mut checks = Vec::new();
    let mut latency_ms = None;
    // Forward flow: every block's first address answers with data, not 0x0B.
    for b in &r.blocks {
        let res = reader.read(b.unit, b.table, b.range.start, a.timeout);
        checks.push(Check {
            name: format!(
                "forward: unit {} {} {} is served",
                b.unit,
                b.table.as_str(),
                b.range.start
            ),
            passed: res.is_ok(),
            detail: match res {
                Ok(v) => format!("value {v}"),
                Err(e) => e,
            },
        });
    }
    // A marked value: written to the source, restored after it is seen on the replica.
    if let Some(mark) = a.mark {
        let (check, latency) = marked_value(r, mark, &mut reader, a.timeout);
        latency_ms = latency;
        checks.push(check);
    }
    // Reverse flow: from this host (the receive side), nothing may reach the transmit side.
    for (name, target) in reverse_targets(r) {
        let bind = a.from.map(|ip| SocketAddr::new(ip, 0));
        let reached = tcp_reaches(target, bind, a.timeout);
        checks.push(Check {
            name: format!("reverse: no TCP connection to {name} {target}"),
            passed: reached.is_err(),
            detail: match reached {
                Ok(()) => "CONNECTED: the reverse direction is open".into(),
                Err(e) => format!("no connection ({e})"),
            },
        });
    }
    if let Some(tx) = r.transmit.bind {
        let sent = UdpSocket::bind(SocketAddr::new(
            a.from.unwrap_or(if tx.is_ipv4() {
                [0, 0, 0, 0].into()
            } else {
                [0u16; 8].into()
            }),
            0,
        ))
        .and_then(|s| {
            let _ = s.set_read_timeout(Some(a.timeout));
            s.send_to(b"zonegate probe reverse datagram", tx)?;
            let mut buf = [0u8; 64];
            s.recv_from(&mut buf).map(|_| ())
        });
        checks.push(Check {
            name: format!("reverse: a datagram to the transmit side {tx} gets no answer"),
            passed: sent.is_err(),
            detail: "the transmit agent never reads its socket; only a network listener on the \
                     transmit side can prove non-arrival (see tests/e2e/test_replicate_netns.py)"
                .into(),
        });
    }
    let passed = checks.iter().filter(|c| c.passed).count() as u32;
    let failed = checks.len() as u32 - passed;
    for c in &checks {
        println!(
            "{} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    if let Some(l) = latency_ms {
        println!("replication latency (marked value, source write to replica visible): {l:.1} ms");
    }
    println!("{passed} passed, {failed} failed");
    let mut notes = vec![format!(
        "one-way replication {} ({} -> {}): forward flow, marked-value latency, reverse flow \
         from this host",
        r.id,
        r.from_zone().unwrap_or("?"),
        r.to_zone().unwrap_or("?")
    )];
    if let Some(l) = latency_ms {
        notes.push(format!(
            "replication latency (source write to replica visible): {l:.1} ms"
        ));
    }
    let result = ProbeResult {
        kind: "replication",
        latency_ms,
        run: zonegate_toolkit::probe::ProbeRun {
            conduit: r.id.clone(),
            gateway: replica.to_string(),
            source: a
                .from
                .map_or_else(|| "this host".to_owned(), |ip| ip.to_string()),
            started,
            tls: None,
            tests: checks
                .into_iter()
                .map(|c| zonegate_toolkit::probe::ProbeResult {
                    expect: if c.name.starts_with("reverse") {
                        "deny".into()
                    } else {
                        "allow".into()
                    },
                    request: c.name.clone(),
                    name: c.name,
                    outcome: c.detail,
                    pass: c.passed,
                })
                .collect(),
            passed: passed as usize,
            failed: failed as usize,
            notes,
        },
    };
    if let Some(out) = a.out {
        let json = match serde_json::to_string_pretty(&result) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("zonegate probe: {e}");
                return 2;
            }
        };
        if let Err(e) = std::fs::write(out, json + "\n") {
            eprintln!("zonegate probe: cannot write {}: {e}", out.display());
            return 2;
        }
    }
    u8::from(failed > 0)
}

/// `--cert/--key` with `--replication`: the CA (given, or the replica's `receive.tls.client_ca`
/// resolved against the model's folder, right for a lab PKI where one CA signs both) and the
/// server name (given, or the address connected to).
pub(crate) fn probe_tls(
    args: &super::probe::Args,
    id: &str,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
) -> Result<zonegate_toolkit::mbaps::ProbeTls, String> {
    let model = zonegate_policy::load_file(&args.model).map_err(|e| e.to_string())?;
    let r = model
        .replication(id)
        .ok_or_else(|| format!("no replication `{id}` in the model"))?;
    let ca = match (&args.ca, &r.receive.tls) {
        (Some(ca), _) => ca.clone(),
        (None, Some(t)) => model.resolve(&t.client_ca),
        (None, None) => {
            return Err(format!(
                "replication {id} has no receive.tls block; --cert applies only to a TLS replica"
            ))
        }
    };
    let target = args.connect.unwrap_or(r.receive.serve);
    let server_name = args
        .server_name
        .clone()
        .unwrap_or_else(|| zonegate_toolkit::mbaps::default_server_name(target));
    Ok(zonegate_toolkit::mbaps::ProbeTls {
        ca,
        identity: Some((cert, key)),
        server_name,
    })
}

fn reverse_targets(r: &Replication) -> Vec<(&'static str, SocketAddr)> {
    let mut out = Vec::new();
    if let Some((host, port)) = r.source.host_port() {
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.push(("the source device", SocketAddr::new(ip, port)));
        }
    }
    if let Some(tx) = r.transmit.bind {
        if !tx.ip().is_unspecified() {
            out.push((
                "the transmit host (Modbus port)",
                SocketAddr::new(tx.ip(), 502),
            ));
        }
    }
    out
}

fn tcp_reaches(
    target: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
) -> Result<(), String> {
    match bind {
        None => TcpStream::connect_timeout(&target, timeout)
            .map(drop)
            .map_err(|e| e.to_string()),
        Some(local) => {
            let s = socket2::Socket::new(
                socket2::Domain::for_address(target),
                socket2::Type::STREAM,
                None,
            )
            .map_err(|e| e.to_string())?;
            s.bind(&local.into()).map_err(|e| e.to_string())?;
            s.connect_timeout(&target.into(), timeout)
                .map_err(|e| e.to_string())
        }
    }
}

/// A Modbus exchange over a blocking socket, every byte through the codec.
fn exchange(addr: SocketAddr, unit: u8, pdu: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    use zonegate_modbus::{tcp, TcpDeframer, UnitId};
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let mut adu = [0u8; 260];
    let n = tcp::encode_adu(1, UnitId::new(unit), pdu, &mut adu).map_err(|e| format!("{e:?}"))?;
    s.write_all(&adu[..n]).map_err(|e| e.to_string())?;
    let mut d = TcpDeframer::new();
    let mut buf = [0u8; 300];
    for _ in 0..64 {
        if let Some(a) = d.next_adu().map_err(|e| format!("{e:?}"))? {
            return Ok(a.pdu.to_vec());
        }
        let got = s.read(&mut buf).map_err(|e| e.to_string())?;
        if got == 0 {
            return Err("connection closed".into());
        }
        d.feed(&buf[..got]);
    }
    Err("no whole response".into())
}

/// Reads one value (register, or bit as 0/1).
fn read(
    addr: SocketAddr,
    unit: u8,
    table: ReplicaTable,
    address: u16,
    timeout: Duration,
) -> Result<u16, String> {
    let [ah, al] = address.to_be_bytes();
    let fc = table.read_function();
    let pdu = exchange(addr, unit, &[fc, ah, al, 0, 1], timeout)?;
    match zonegate_modbus::Response::parse(&pdu) {
        Ok(zonegate_modbus::Response::ReadHoldingRegisters(v))
        | Ok(zonegate_modbus::Response::ReadInputRegisters(v)) => {
            v.get(0).ok_or_else(|| "empty response".to_owned())
        }
        Ok(zonegate_modbus::Response::ReadCoils(v))
        | Ok(zonegate_modbus::Response::ReadDiscreteInputs(v)) => v
            .get(0)
            .map(u16::from)
            .ok_or_else(|| "empty response".to_owned()),
        Ok(zonegate_modbus::Response::Exception { code, .. }) => Err(format!(
            "exception 0x{:02X} ({})",
            code.to_u8(),
            code.as_str()
        )),
        Ok(other) => Err(format!("unexpected response {other:?}")),
        Err(e) => Err(format!("invalid response: {e:?}")),
    }
}

fn write_register(
    addr: SocketAddr,
    unit: u8,
    address: u16,
    value: u16,
    t: Duration,
) -> Result<(), String> {
    let [ah, al] = address.to_be_bytes();
    let [vh, vl] = value.to_be_bytes();
    let pdu = exchange(addr, unit, &[6, ah, al, vh, vl], t)?;
    if pdu.first() == Some(&6) {
        Ok(())
    } else {
        Err(format!("the device refused the write: {pdu:02X?}"))
    }
}

/// `--mark UNIT:ADDRESS`: writes a marker into a spare holding register of the source (it must
/// lie in a replicated holding block), waits until the replica shows it, restores the old value.
fn marked_value(
    r: &Replication,
    mark: &str,
    replica: &mut ReplicaReader,
    timeout: Duration,
) -> (Check, Option<f64>) {
    let fail = |detail: String| {
        (
            Check {
                name: format!("forward: marked value {mark} reaches the replica"),
                passed: false,
                detail,
            },
            None,
        )
    };
    let Some((unit, address)) = mark
        .split_once(':')
        .and_then(|(u, a)| Some((u.parse::<u8>().ok()?, a.parse::<u16>().ok()?)))
    else {
        return fail("--mark takes UNIT:ADDRESS, e.g. 1:99".into());
    };
    let Some(block) = r
        .blocks
        .iter()
        .find(|b| b.unit == unit && b.table == ReplicaTable::Holding && b.range.contains(address))
    else {
        return fail(format!(
            "unit {unit} holding {address} is not in a replicated holding block"
        ));
    };
    let Some(device) = r.source.host_port().and_then(|(h, p)| {
        use std::net::ToSocketAddrs;
        (h, p).to_socket_addrs().ok()?.next()
    }) else {
        return fail(format!(
            "cannot reach the source {} (tcp:// only)",
            r.source
        ));
    };
    let old = match read(device, unit, ReplicaTable::Holding, address, timeout) {
        Ok(v) => v,
        Err(e) => return fail(format!("cannot read the source: {e}")),
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos());
    let mut marker = (nanos % 0xFFFF) as u16;
    if marker == old {
        marker = marker.wrapping_add(1);
    }
    let started = Instant::now();
    if let Err(e) = write_register(device, unit, address, marker, timeout) {
        return fail(e);
    }
    // Bounded: the block's period, max_age and repeat/refresh slack, at most 60 s.
    let limit = (block.period * 4 + r.receive.max_age_for(block.period) + timeout)
        .min(Duration::from_secs(60));
    let mut seen = None;
    while started.elapsed() < limit {
        if replica.read(unit, ReplicaTable::Holding, address, timeout) == Ok(marker) {
            seen = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let restored = write_register(device, unit, address, old, timeout);
    let restore_note = match &restored {
        Ok(()) => format!("old value {old} restored"),
        Err(e) => format!("COULD NOT RESTORE the old value {old}: {e}"),
    };
    match seen {
        Some(l) => (
            Check {
                name: format!("forward: marked value {mark} reaches the replica"),
                passed: restored.is_ok(),
                detail: format!(
                    "marker {marker} visible after {:.1} ms; {restore_note}",
                    l.as_secs_f64() * 1000.0
                ),
            },
            Some(l.as_secs_f64() * 1000.0),
        ),
        None => fail(format!(
            "marker {marker} not visible within {limit:?}; {restore_note}"
        )),
    }
}
