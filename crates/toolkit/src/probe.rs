//! `zonegate probe`: the commissioning test of a live conduit.
//!
//! From one source address, [`plan`] derives from the conduit's rules what must work (a read in an
//! allowed range, from an allowed unit) and what must fail (a write where none is allowed, a read
//! just outside the allowed ranges, a unit no rule names, a function no rule allows). [`run`]
//! sends them to the gateway's listen address with a small blocking Modbus TCP client (std
//! `TcpStream`, the codec's encoders and strict decoders, timeouts on every step) and records
//! PASS/FAIL per test as a [`ProbeRun`], which `zonegate report --probe` includes.
//!
//! Never leave a changed value: a write test first reads the register and writes back exactly
//! the value it read (so even a wrongly permitted write changes nothing); if the write is
//! permitted it reads again and, should the value differ, writes the old value back, and the test
//! FAILs. Where the source may not read the register, the write test is a mask write with
//! AND = 0xFFFF, OR = 0x0000, which leaves any register as it is.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zonegate_modbus::{rtu, tcp, AddressRange, Request, Response, UnitId};

use crate::mbaps::{self, ProbeTls, Stream};
use crate::model::{table_set, GatewayExt, RuleView, Site, TABLES};
use crate::util::now_utc;
use zonegate_policy::Conduit;

/// One probe run: what was tested and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRun {
    /// Conduit id.
    pub conduit: String,
    /// The address probed (the gateway's listen address).
    pub gateway: String,
    /// Source address the requests came from.
    pub source: String,
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// Tests in order.
    pub tests: Vec<ProbeResult>,
    /// Tests passed.
    pub passed: usize,
    /// Tests failed.
    pub failed: usize,
    /// Remarks on the run (e.g. the gateway is in monitor mode, so denials are only logged).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Over Modbus/TCP Security: the client certificate's subject and role (`null` = the null
    /// role), as the gateway reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ProbeIdentity>,
}

/// Who the probe was over Modbus/TCP Security.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeIdentity {
    /// Subject of the client certificate.
    pub subject: String,
    /// The role the certificate carries; `None` is the null role.
    pub role: Option<String>,
    /// Why there is no role, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_role: Option<String>,
}

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Short name, e.g. `allowed-read`.
    pub name: String,
    /// `allow` or `deny`.
    pub expect: String,
    /// The request, for humans.
    pub request: String,
    /// What happened.
    pub outcome: String,
    /// True when the outcome is what the rules say.
    pub pass: bool,
}

/// What a planned test sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// FC 1.
    ReadCoils(u16),
    /// FC 2.
    ReadDiscrete(u16),
    /// FC 3.
    ReadHolding(u16),
    /// FC 4.
    ReadInput(u16),
    /// Read the register, then FC 6 with the value read.
    WriteSameValue(u16),
    /// Read the coil, then FC 5 with the state read.
    WriteSameCoil(u16),
    /// FC 22 with AND 0xFFFF, OR 0x0000 (changes nothing).
    MaskWriteNoop(u16),
    /// FC 43 / 14 read device identification (basic).
    ReadDeviceId,
}

/// One planned test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTest {
    /// Short name.
    pub name: &'static str,
    /// True when the rules allow it.
    pub expect_allow: bool,
    /// Unit id.
    pub unit: u8,
    /// What to send.
    pub op: Op,
    /// Why this test (the rule it exercises).
    pub why: String,
}

impl PlannedTest {
    /// Human description of the request.
    pub fn describe(&self) -> String {
        let what = match self.op {
            Op::ReadCoils(a) => format!("FC 1 read_coils coil {a}"),
            Op::ReadDiscrete(a) => format!("FC 2 read_discrete_inputs input {a}"),
            Op::ReadHolding(a) => format!("FC 3 read_holding_registers holding {a}"),
            Op::ReadInput(a) => format!("FC 4 read_input_registers input {a}"),
            Op::WriteSameValue(a) => {
                format!("FC 6 write_single_register holding {a} (value read before)")
            }
            Op::WriteSameCoil(a) => format!("FC 5 write_single_coil coil {a} (state read before)"),
            Op::MaskWriteNoop(a) => {
                format!("FC 22 mask_write_register holding {a} AND 0xFFFF OR 0x0000 (no-op)")
            }
            Op::ReadDeviceId => "FC 43/14 read_device_identification basic".to_owned(),
        };
        format!("unit {} {what}", self.unit)
    }
}

/// True when the compiled rule's sources hold `src` and its `roles` (if any) hold `role`
/// (`None` = the null role, which a rule with `roles:` never matches).
fn applies(r: &RuleView<'_>, src: IpAddr, role: Option<&str>) -> bool {
    let role_ok = match (&r.roles, role) {
        (None, _) => true,
        (Some(list), Some(role)) => list.iter().any(|x| x == role),
        (Some(_), None) => false,
    };
    role_ok && r.sources().iter().any(|c| c.contains(src))
}

fn unit_ok(r: &RuleView<'_>, unit: u8) -> bool {
    r.unit_ids.as_ref().is_none_or(|u| u.contains(&unit))
}

/// True when some applicable rule allows function `fc` on `unit` at `table`/`addr`
/// (`table` = None for functions that touch no table).
fn allowed(rules: &[RuleView<'_>], unit: u8, fc: u8, table: Option<usize>, addr: u16) -> bool {
    rules.iter().any(|r| {
        unit_ok(r, unit)
            && r.functions().contains(&fc)
            && table.is_none_or(|t| table_set(r, TABLES[t]).contains(addr))
    })
}

/// Derives the tests for one source address and role (`None`: plaintext, or a certificate
/// without a role).
pub fn plan(site: &Site, conduit: &Conduit, src: IpAddr, role: Option<&str>) -> Vec<PlannedTest> {
    let rules: Vec<RuleView<'_>> = site
        .rules(conduit)
        .into_iter()
        .filter(|r| applies(r, src, role))
        .collect();
    let mut tests = Vec::new();
    // A unit the source may use: the first unit of the first applicable rule, else the target
    // zone's first unit, else 1.
    let target_unit = site.target_zone(conduit).and_then(|z| {
        site.zones[z]
            .assets
            .iter()
            .flat_map(|a| a.unit_ids.iter())
            .next()
            .copied()
    });
    let unit = rules
        .iter()
        .find_map(|r| r.unit_ids.as_ref().and_then(|u| u.first().copied()))
        .or(target_unit)
        .unwrap_or(1);

    // 1. Must work: a read in an allowed range.
    let mut readable_holding: Option<u16> = None;
    let mut readable_coil: Option<u16> = None;
    for r in &rules {
        let u = r
            .unit_ids
            .as_ref()
            .and_then(|u| u.first().copied())
            .unwrap_or(unit);
        for (fc, t, op) in [
            (3u8, 3usize, Op::ReadHolding as fn(u16) -> Op),
            (4, 2, Op::ReadInput),
            (1, 0, Op::ReadCoils),
            (2, 1, Op::ReadDiscrete),
        ] {
            if r.functions().contains(&fc) {
                if let Some(start) = table_set(r, TABLES[t]).merged().first().map(|x| x.start) {
                    if fc == 3 && readable_holding.is_none() && u == unit {
                        readable_holding = Some(start);
                    }
                    if fc == 1 && readable_coil.is_none() && u == unit {
                        readable_coil = Some(start);
                    }
                    if !tests.iter().any(|x: &PlannedTest| x.name == "allowed-read") {
                        tests.push(PlannedTest {
                            name: "allowed-read",
                            expect_allow: true,
                            unit: u,
                            op: op(start),
                            why: format!("rule {} allows it", r.id),
                        });
                    }
                }
            }
        }
    }

    // 2. Must fail: a write where no rule allows one.
    let write_addr = readable_holding.unwrap_or(0);
    if !allowed(&rules, unit, 6, Some(3), write_addr) {
        let op = if readable_holding.is_some() {
            Op::WriteSameValue(write_addr)
        } else {
            Op::MaskWriteNoop(write_addr)
        };
        let (fc, why) = match op {
            Op::WriteSameValue(_) => (6, "no rule allows FC 6 here"),
            _ => (22, "no rule allows a write here"),
        };
        if fc == 6 || !allowed(&rules, unit, 22, Some(3), write_addr) {
            tests.push(PlannedTest {
                name: "write-denied",
                expect_allow: false,
                unit,
                op,
                why: why.to_owned(),
            });
        }
    }
    if let Some(c) = readable_coil {
        if !allowed(&rules, unit, 5, Some(0), c) {
            tests.push(PlannedTest {
                name: "coil-write-denied",
                expect_allow: false,
                unit,
                op: Op::WriteSameCoil(c),
                why: "no rule allows FC 5 here".to_owned(),
            });
        }
    }

    // 3. Must fail: a read just outside every allowed range of a readable table.
    'outer: for (fc, t, op) in [
        (3u8, 3usize, Op::ReadHolding as fn(u16) -> Op),
        (4, 2, Op::ReadInput),
        (1, 0, Op::ReadCoils),
        (2, 1, Op::ReadDiscrete),
    ] {
        for r in &rules {
            if !r.functions().contains(&fc) || !unit_ok(r, unit) {
                continue;
            }
            for x in table_set(r, TABLES[t]).merged() {
                let (a, b) = (x.start, x.end);
                for cand in [b.checked_add(1), a.checked_sub(1)].into_iter().flatten() {
                    if !allowed(&rules, unit, fc, Some(t), cand) {
                        tests.push(PlannedTest {
                            name: "out-of-range-read",
                            expect_allow: false,
                            unit,
                            op: op(cand),
                            why: format!("outside the ranges of rule {}", r.id),
                        });
                        break 'outer;
                    }
                }
            }
        }
    }

    // 4. Must fail: a unit no applicable rule names (only when every rule names its units).
    if !rules.is_empty() && rules.iter().all(|r| r.unit_ids.is_some()) {
        let used: Vec<u8> = rules
            .iter()
            .flat_map(|r| r.unit_ids.iter().flatten().copied())
            .collect();
        if let Some(other) = (1..=247u8).rev().find(|u| !used.contains(u)) {
            let op = tests
                .iter()
                .find(|t| t.expect_allow)
                .map_or(Op::ReadHolding(0), |t| t.op);
            tests.push(PlannedTest {
                name: "unknown-unit",
                expect_allow: false,
                unit: other,
                op,
                why: format!("no rule names unit {other}"),
            });
        }
    }

    // 5. Must fail: a function no rule allows (read device identification, harmless).
    if !allowed(&rules, unit, 43, None, 0) {
        tests.push(PlannedTest {
            name: "function-denied",
            expect_allow: false,
            unit,
            op: Op::ReadDeviceId,
            why: "no rule allows FC 43".to_owned(),
        });
    }

    // A source no rule covers: everything is denied, even a plain read.
    if rules.is_empty() {
        tests.insert(
            0,
            PlannedTest {
                name: "unlisted-source-read",
                expect_allow: false,
                unit,
                op: Op::ReadHolding(0),
                why: format!("no rule of {} covers source {src}", conduit.id),
            },
        );
    }
    tests
}

/// Options of a probe run.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Conduit id.
    pub conduit: String,
    /// Bind the client socket to this address (the source to test).
    pub from: Option<IpAddr>,
    /// Connect here instead of the gateway's listen address.
    pub connect: Option<SocketAddr>,
    /// Timeout for connecting and for each reply.
    pub timeout: Duration,
    /// Modbus/TCP Security: required when the conduit's gateway has a `tls:` listener.
    pub tls: Option<ProbeTls>,
}

/// How one exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A normal response; for reads of one register/bit, its value.
    Normal(Option<u16>),
    /// An exception response.
    Exception(u8),
    /// Nothing within the timeout (deny: drop).
    Timeout,
    /// The peer closed the connection (deny: close).
    Closed,
    /// Anything else (refused, malformed reply).
    Error(String),
}

impl Reply {
    fn describe(&self) -> String {
        match self {
            Self::Normal(Some(v)) => format!("normal response (value {v})"),
            Self::Normal(None) => "normal response".to_owned(),
            Self::Exception(c) => format!(
                "exception 0x{c:02X} ({})",
                zonegate_modbus::ExceptionCode::from_u8(*c).as_str()
            ),
            Self::Timeout => "no response before the timeout (dropped)".to_owned(),
            Self::Closed => "connection closed by the gateway".to_owned(),
            Self::Error(e) => format!("error: {e}"),
        }
    }

    fn is_deny(&self) -> bool {
        matches!(self, Self::Exception(_) | Self::Timeout | Self::Closed)
    }
}

/// A minimal blocking Modbus TCP (or Modbus/TCP Security, or RTU over TCP) client with
/// timeouts.
pub struct Client {
    stream: Option<Stream>,
    target: SocketAddr,
    from: Option<IpAddr>,
    timeout: Duration,
    tid: u16,
    tls: Option<(std::sync::Arc<rustls::ClientConfig>, String)>,
    /// RTU frames (address, PDU, CRC) instead of MBAP: a serial-to-Ethernet converter.
    rtu: bool,
}

impl Client {
    /// A plaintext client; connects lazily.
    pub fn new(target: SocketAddr, from: Option<IpAddr>, timeout: Duration) -> Self {
        Self {
            stream: None,
            target,
            from,
            timeout,
            tid: 0,
            tls: None,
            rtu: false,
        }
    }

    /// A client of a serial-to-Ethernet converter (`rtu+tcp://`): RTU frames with CRC in the
    /// TCP stream, one request at a time; connects lazily.
    pub fn new_rtu_over_tcp(target: SocketAddr, from: Option<IpAddr>, timeout: Duration) -> Self {
        Self {
            rtu: true,
            ..Self::new(target, from, timeout)
        }
    }

    /// A Modbus/TCP Security client presenting `tls`'s certificate; connects lazily.
    pub fn new_tls(
        target: SocketAddr,
        from: Option<IpAddr>,
        timeout: Duration,
        tls: &ProbeTls,
    ) -> Result<Self, String> {
        let config = mbaps::config(tls)?;
        Ok(Self {
            tls: Some((config, tls.server_name.clone())),
            ..Self::new(target, from, timeout)
        })
    }

    /// Connects (binding to `from` when given) and returns the local address.
    pub fn connect(&mut self) -> Result<SocketAddr, String> {
        let domain = socket2::Domain::for_address(self.target);
        let sock =
            socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
                .map_err(|e| format!("cannot create a socket: {e}"))?;
        if let Some(ip) = self.from {
            sock.bind(&SocketAddr::new(ip, 0).into())
                .map_err(|e| format!("cannot bind the source address {ip}: {e}"))?;
        }
        sock.connect_timeout(&self.target.into(), self.timeout)
            .map_err(|e| format!("cannot connect to {}: {e}", self.target))?;
        let stream: TcpStream = sock.into();
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| format!("cannot set socket options: {e}"))?;
        let local = stream
            .local_addr()
            .map_err(|e| format!("cannot read the local address: {e}"))?;
        self.stream = Some(match &self.tls {
            Some((config, name)) => mbaps::connect(config, name, stream)?,
            None => Stream::Plain(stream),
        });
        Ok(local)
    }

    /// Sends one request and waits for its reply. Reconnects first when the last exchange
    /// closed the connection.
    pub fn exchange(&mut self, unit: u8, request: &Request<'_>) -> Reply {
        let pdu = match self.exchange_pdu(unit, request) {
            Ok(pdu) => pdu,
            Err(reply) => return reply,
        };
        match Response::parse_for(&pdu, request) {
            Ok(Response::Exception { code, .. }) => Reply::Exception(code.to_u8()),
            Ok(Response::ReadHoldingRegisters(v) | Response::ReadInputRegisters(v)) => {
                Reply::Normal(v.get(0))
            }
            Ok(Response::ReadCoils(v) | Response::ReadDiscreteInputs(v)) => {
                Reply::Normal(v.get(0).map(u16::from))
            }
            Ok(_) => Reply::Normal(None),
            Err(e) => Reply::Error(format!("invalid reply: {e}")),
        }
    }

    /// Sends one request and returns the response PDU as received (unchecked: the caller
    /// parses it for its request), or how the exchange failed.
    pub fn exchange_pdu(&mut self, unit: u8, request: &Request<'_>) -> Result<Vec<u8>, Reply> {
        if self.stream.is_none() {
            if let Err(e) = self.connect() {
                return Err(Reply::Error(e));
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Reply::Error("not connected".into()));
        };
        self.tid = self.tid.wrapping_add(1);
        let tid = self.tid;
        let mut pdu = [0u8; 253];
        let n = match request.encode(&mut pdu) {
            Ok(n) => n,
            Err(e) => return Err(Reply::Error(format!("cannot encode the request: {e}"))),
        };
        let mut adu = [0u8; 260];
        let len = match pdu
            .get(..n)
            .ok_or_else(|| "encoder overran".to_owned())
            .and_then(|p| {
                if self.rtu {
                    rtu::encode_adu(UnitId::new(unit), p, &mut adu).map_err(|e| e.to_string())
                } else {
                    tcp::encode_adu(tid, UnitId::new(unit), p, &mut adu).map_err(|e| e.to_string())
                }
            }) {
            Ok(l) => l,
            Err(e) => return Err(Reply::Error(format!("cannot frame the request: {e}"))),
        };
        if let Err(e) = stream.write_all(adu.get(..len).unwrap_or(&[])) {
            self.stream = None;
            return Err(Reply::Error(format!("cannot send: {e}")));
        }
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 600];
        let mut have = 0usize;
        loop {
            if Instant::now() >= deadline {
                // A dropped request leaves the stream out of step: start afresh next time.
                self.stream = None;
                return Err(Reply::Timeout);
            }
            let Some(space) = buf.get_mut(have..) else {
                self.stream = None;
                return Err(Reply::Error("reply too long".into()));
            };
            match stream.read(space) {
                Ok(0) => {
                    self.stream = None;
                    return Err(Reply::Closed);
                }
                Ok(k) => have += k,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    self.stream = None;
                    return Err(Reply::Timeout);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    self.stream = None;
                    return Err(Reply::Closed);
                }
                Err(e) => {
                    self.stream = None;
                    return Err(Reply::Error(format!("cannot receive: {e}")));
                }
            }
            let data = buf.get(..have).unwrap_or(&[]);
            if self.rtu {
                match rtu::decode_response(data, request) {
                    Ok(None) => continue,
                    Err(e) => {
                        self.stream = None;
                        return Err(Reply::Error(format!("broken reply frame: {e}")));
                    }
                    Ok(Some(adu)) if adu.address.get() != unit => {
                        self.stream = None;
                        return Err(Reply::Error(format!(
                            "reply from unit {} to a request for unit {unit}",
                            adu.address.get()
                        )));
                    }
                    Ok(Some(adu)) => return Ok(adu.pdu.to_vec()),
                }
            }
            match tcp::decode_adu(data) {
                Ok(None) => continue,
                Err(e) => {
                    self.stream = None;
                    return Err(Reply::Error(format!("broken reply frame: {e}")));
                }
                Ok(Some(adu)) => {
                    if adu.header.transaction_id != tid {
                        self.stream = None;
                        return Err(Reply::Error(format!(
                            "reply transaction id {} does not match {tid}",
                            adu.header.transaction_id
                        )));
                    }
                    return Ok(adu.pdu.to_vec());
                }
            }
        }
    }
}

fn single(address: u16) -> AddressRange {
    AddressRange::single(address)
}

fn run_one(client: &mut Client, t: &PlannedTest) -> (String, bool) {
    let u = t.unit;
    match t.op {
        Op::ReadHolding(a) => judge(
            t,
            &client.exchange(u, &Request::ReadHoldingRegisters(single(a))),
        ),
        Op::ReadInput(a) => judge(
            t,
            &client.exchange(u, &Request::ReadInputRegisters(single(a))),
        ),
        Op::ReadCoils(a) => judge(t, &client.exchange(u, &Request::ReadCoils(single(a)))),
        Op::ReadDiscrete(a) => judge(
            t,
            &client.exchange(u, &Request::ReadDiscreteInputs(single(a))),
        ),
        Op::ReadDeviceId => judge(
            t,
            &client.exchange(
                u,
                &Request::ReadDeviceIdentification {
                    read_code: zonegate_modbus::ReadDeviceIdCode::Basic,
                    object_id: 0,
                },
            ),
        ),
        Op::MaskWriteNoop(a) => judge(
            t,
            &client.exchange(
                u,
                &Request::MaskWriteRegister {
                    address: a,
                    and_mask: 0xFFFF,
                    or_mask: 0x0000,
                },
            ),
        ),
        Op::WriteSameValue(a) => {
            let Reply::Normal(Some(old)) =
                client.exchange(u, &Request::ReadHoldingRegisters(single(a)))
            else {
                return (
                    "could not read the register first; write not attempted".into(),
                    false,
                );
            };
            let reply = client.exchange(
                u,
                &Request::WriteSingleRegister {
                    address: a,
                    value: old,
                },
            );
            let (mut outcome, pass) = judge(t, &reply);
            if matches!(reply, Reply::Normal(_)) && !t.expect_allow {
                // Permitted although it must not be: make sure nothing changed.
                match client.exchange(u, &Request::ReadHoldingRegisters(single(a))) {
                    Reply::Normal(Some(now)) if now == old => {
                        outcome.push_str(&format!("; value still {old}"));
                    }
                    _ => {
                        let back = client.exchange(
                            u,
                            &Request::WriteSingleRegister {
                                address: a,
                                value: old,
                            },
                        );
                        outcome.push_str(&format!(
                            "; wrote the old value {old} back: {}",
                            back.describe()
                        ));
                    }
                }
            }
            (outcome, pass)
        }
        Op::WriteSameCoil(a) => {
            let Reply::Normal(Some(old)) = client.exchange(u, &Request::ReadCoils(single(a)))
            else {
                return (
                    "could not read the coil first; write not attempted".into(),
                    false,
                );
            };
            let reply = client.exchange(
                u,
                &Request::WriteSingleCoil {
                    address: a,
                    value: old != 0,
                },
            );
            let (mut outcome, pass) = judge(t, &reply);
            if matches!(reply, Reply::Normal(_)) && !t.expect_allow {
                match client.exchange(u, &Request::ReadCoils(single(a))) {
                    Reply::Normal(Some(now)) if now == old => {
                        outcome.push_str(&format!("; coil still {old}"));
                    }
                    _ => {
                        let back = client.exchange(
                            u,
                            &Request::WriteSingleCoil {
                                address: a,
                                value: old != 0,
                            },
                        );
                        outcome.push_str(&format!(
                            "; wrote the old state {old} back: {}",
                            back.describe()
                        ));
                    }
                }
            }
            (outcome, pass)
        }
    }
}

fn judge(t: &PlannedTest, reply: &Reply) -> (String, bool) {
    let pass = if t.expect_allow {
        matches!(reply, Reply::Normal(_))
    } else {
        reply.is_deny()
    };
    (reply.describe(), pass)
}

/// Runs the probe against the conduit's gateway. `Err` when the conduit or its gateway is missing
/// or the gateway cannot be reached at all.
pub fn run(site: &Site, opts: &ProbeOptions) -> Result<ProbeRun, String> {
    let conduit = site
        .conduit(&opts.conduit)
        .ok_or_else(|| format!("no conduit {} in {}", opts.conduit, site.file))?;
    let gateway = conduit
        .gateway
        .as_ref()
        .ok_or_else(|| format!("conduit {} has no gateway to probe", conduit.id))?;
    if let Some(line) = &gateway.listen_serial {
        return Err(format!(
            "conduit {} listens on the serial line {}: probe speaks Modbus/TCP only",
            conduit.id,
            line.url()
        ));
    }
    let mut target = opts.connect.unwrap_or(gateway.listen);
    if target.ip().is_unspecified() {
        let lo: IpAddr = if target.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        target.set_ip(lo);
    }
    let started = now_utc();
    let listens_tls = gateway.tls.is_some();
    let (mut client, identity) = match (&opts.tls, listens_tls) {
        (None, false) => (Client::new(target, opts.from, opts.timeout), None),
        (Some(tls), true) => {
            let identity = match &tls.identity {
                Some((cert, _)) => {
                    let peer = mbaps::identity_of(cert)?;
                    let (role, no_role) = match peer.role {
                        Ok(r) => (Some(r), None),
                        Err(why) => (None, Some(why.as_str().to_owned())),
                    };
                    Some(ProbeIdentity {
                        subject: peer.subject,
                        role,
                        no_role,
                    })
                }
                None => None,
            };
            let client = Client::new_tls(target, opts.from, opts.timeout, tls)?;
            (client, identity)
        }
        (None, true) => {
            return Err(format!(
                "conduit {} listens with Modbus/TCP Security (tls:): give the client certificate \
                 to probe as (--cert, --key) and the CA of the gateway's certificate (--ca)",
                conduit.id
            ))
        }
        (Some(_), false) => {
            return Err(format!(
                "conduit {} listens in plaintext (no tls: block); --cert/--key/--ca apply only \
                 to a Modbus/TCP Security listener",
                conduit.id
            ))
        }
    };
    let local = client.connect()?;
    let src = opts.from.unwrap_or(local.ip());
    let role = identity.as_ref().and_then(|i| i.role.as_deref());
    let tests = plan(site, conduit, src, role);
    let mut results = Vec::new();
    for t in &tests {
        let (outcome, pass) = run_one(&mut client, t);
        results.push(ProbeResult {
            name: t.name.to_owned(),
            expect: if t.expect_allow { "allow" } else { "deny" }.to_owned(),
            request: t.describe(),
            outcome: format!("{outcome} [{}]", t.why),
            pass,
        });
    }
    // Over TLS, the listener must also refuse a client that presents no certificate:
    // the first allowed test again, from a client without one.
    let first_read = tests.iter().find(|t| {
        t.expect_allow
            && matches!(
                t.op,
                Op::ReadHolding(_) | Op::ReadInput(_) | Op::ReadCoils(_) | Op::ReadDiscrete(_)
            )
    });
    if let (Some(tls), Some(first)) = (&opts.tls, first_read) {
        let anonymous = ProbeTls {
            identity: None,
            ..tls.clone()
        };
        let mut bare = Client::new_tls(target, opts.from, opts.timeout, &anonymous)?;
        let (outcome, answered) = match bare.connect() {
            Ok(_) => run_one(&mut bare, first),
            Err(e) => (Reply::Error(e).describe(), false),
        };
        results.push(ProbeResult {
            name: "no-client-certificate".to_owned(),
            expect: "deny".to_owned(),
            request: format!("{} without a client certificate", first.describe()),
            outcome: format!("{outcome} [mutual TLS is required: R-06, R-10]"),
            pass: !answered,
        });
    }
    let passed = results.iter().filter(|r| r.pass).count();
    let mut notes = Vec::new();
    if !gateway.enforce() {
        notes.push(format!(
            "the gateway of {} is in monitor mode: it forwards what it would deny, so the must-fail tests are expected to FAIL until it enforces",
            conduit.id
        ));
    }
    if results.is_empty() {
        notes.push("no test could be derived from the rules for this source".to_owned());
    }
    if let Some(i) = &identity {
        notes.push(match (&i.role, &i.no_role) {
            (Some(r), _) => format!("over Modbus/TCP Security as {} (role {r})", i.subject),
            (None, why) => format!(
                "over Modbus/TCP Security as {} with the null role ({}): rules with roles: never match it",
                i.subject,
                why.as_deref().unwrap_or("no role")
            ),
        });
    }
    Ok(ProbeRun {
        tls: identity,
        notes,
        conduit: conduit.id.clone(),
        gateway: target.to_string(),
        source: src.to_string(),
        started,
        failed: results.len() - passed,
        passed,
        tests: results,
    })
}

/// Text lines: `PASS allowed-read  unit 1 FC 3 ... -> normal response`.
pub fn render_text(run: &ProbeRun) -> String {
    let mut s = format!(
        "zonegate probe: conduit {} via {} from {} ({})\n",
        run.conduit, run.gateway, run.source, run.started
    );
    for t in &run.tests {
        s.push_str(&format!(
            "{} {:<22} expect {:<5} {} -> {}\n",
            if t.pass { "PASS" } else { "FAIL" },
            t.name,
            t.expect,
            t.request,
            t.outcome
        ));
    }
    for n in &run.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s.push_str(&format!("{} passed, {} failed\n", run.passed, run.failed));
    s
}

/// Reads probe results written by `zonegate probe --out` (one run, or a JSON array of runs).
pub fn read_results(text: &str) -> Result<Vec<ProbeRun>, String> {
    if let Ok(one) = serde_json::from_str::<ProbeRun>(text) {
        return Ok(vec![one]);
    }
    serde_json::from_str::<Vec<ProbeRun>>(text)
        .map_err(|e| format!("not zonegate probe results: {e}"))
}
