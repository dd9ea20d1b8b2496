//! The transmit side's access to the device, as a Modbus master.
//!
//! [`DeviceLink`] is an enum over the upstream kinds of the model: `tcp://` (Modbus/TCP) and
//! `tls://` (Modbus/TCP Security, with the gateway's own TLS client settings from
//! `zonegate_gateway::mbaps`: the device certificate must chain to `ca` and carry
//! `server_name`, and the agent presents `cert`). The transmit agent only calls
//! [`DeviceLink::call`], so a bus is one more variant with its own `call`: `rtu:///dev/ttyX`
//! (a serial line) and `rtu+tcp://host:port` (an RTU-over-TCP converter) go through the
//! gateway's own RTU master (`zonegate_gateway::rtu_master`, a port on the same bus task a
//! conduit uses: one RTU implementation, and a line shared with a conduit is shared round
//! robin). Line settings come from the URL (`baud`, `parity`, `data_bits`, `stop_bits`, as for
//! the gateway); the bus options from the replication's `serial:` block (the keys of a
//! gateway's `serial:`: `retries`, `turnaround`, `char_timeout`, `rs485`, `echo`, ...).
//! Every byte is framed and parsed by `zonegate-modbus`.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zonegate_audit::AuditHandle;
use zonegate_gateway::mbaps::DeviceTls;
use zonegate_gateway::rtu_master::RtuMaster;
use zonegate_modbus::{tcp, Request, Response, TcpDeframer, UnitId, MAX_TCP_ADU_LEN};
use zonegate_policy::{SerialOptions, Upstream};

/// Why a read got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError {
    /// The device could not be reached.
    Connect(String),
    /// The connection failed while in use.
    Io(String),
    /// No answer within the request timeout.
    Timeout,
    /// The device answered with bytes that are not a valid response to the request.
    Protocol(String),
    /// The device answered with a Modbus exception.
    Exception(u8),
    /// This build cannot use that upstream kind yet.
    Unsupported(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect to the device: {e}"),
            Self::Io(e) => write!(f, "connection to the device failed: {e}"),
            Self::Timeout => f.write_str("the device did not answer in time"),
            Self::Protocol(e) => write!(f, "invalid response from the device: {e}"),
            Self::Exception(c) => write!(f, "the device answered exception 0x{c:02X}"),
            Self::Unsupported(e) => f.write_str(e),
        }
    }
}

/// A byte stream to the device: plaintext TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A Modbus/TCP connection to the device (in clear, or inside TLS), opened on first use and
/// after every failure.
pub struct TcpLink {
    address: String,
    /// `Some` for `tls://`: the handshake after every TCP connect.
    tls: Option<DeviceTls>,
    stream: Option<Box<dyn Io>>,
    deframer: TcpDeframer,
    tid: u16,
    connect_timeout: Duration,
}

impl fmt::Debug for TcpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpLink")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .field("connected", &self.stream.is_some())
            .finish()
    }
}

/// How the transmit side reaches the device.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceLink {
    /// `tcp://host:port`.
    Tcp(TcpLink),
    /// `tls://host:port?ca=..&cert=..&key=..&server_name=..` (Modbus/TCP Security).
    Tls(TcpLink),
    /// `rtu:///dev/ttyX?..` or `rtu+tcp://host:port`: a port on the gateway's RTU bus.
    Rtu(RtuLink),
}

/// A master's place on an RTU bus (opened on first use, inside the runtime).
pub struct RtuLink {
    upstream: Upstream,
    serial: Option<SerialOptions>,
    label: String,
    owner: String,
    audit: Option<AuditHandle>,
    master: Option<RtuMaster>,
    tid: u16,
    connect_timeout: Duration,
}

impl fmt::Debug for RtuLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtuLink")
            .field("upstream", &self.label)
            .field("open", &self.master.is_some())
            .finish_non_exhaustive()
    }
}

fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl DeviceLink {
    /// The link for a model upstream (TLS files already resolved against the model's folder,
    /// `Model::resolve_upstream`); `Err` for kinds this build's transmit agent cannot use yet
    /// (`rtu://`) and for TLS files that cannot be used.
    pub fn for_upstream(upstream: &Upstream) -> Result<Self, LinkError> {
        Self::for_source(upstream, None)
    }

    /// The same, with the `serial:` bus options of an RTU source (ignored for TCP kinds).
    pub fn for_source(
        upstream: &Upstream,
        serial: Option<&SerialOptions>,
    ) -> Result<Self, LinkError> {
        let link = |address, tls| TcpLink {
            address,
            tls,
            stream: None,
            deframer: TcpDeframer::new(),
            tid: 0,
            connect_timeout: Duration::from_secs(3),
        };
        match upstream {
            Upstream::Tcp { host, port } => Ok(Self::Tcp(link(address(host, *port), None))),
            Upstream::Tls { host, port, .. } => {
                let tls = DeviceTls::for_upstream(upstream).map_err(LinkError::Unsupported)?;
                Ok(Self::Tls(link(address(host, *port), Some(tls))))
            }
            Upstream::Rtu { .. } | Upstream::RtuTcp { .. } => Ok(Self::Rtu(RtuLink {
                label: upstream.to_string(),
                upstream: upstream.clone(),
                serial: serial.cloned(),
                owner: "replication".into(),
                audit: None,
                master: None,
                tid: 0,
                connect_timeout: Duration::from_secs(3),
            })),
            other => Err(LinkError::Unsupported(format!(
                "replication source {other} is not supported by this build"
            ))),
        }
    }

    /// Bus faults and line outages of an RTU link are recorded to `audit` (the transmit
    /// side's chain) as `conduit: owner` (the replication id); no-op for TCP links.
    pub fn set_audit(&mut self, owner: &str, audit: AuditHandle) {
        if let Self::Rtu(l) = self {
            l.owner = owner.to_owned();
            l.audit = Some(audit);
            // Reopened with the chain on the next call.
            l.master = None;
        }
    }

    /// The device, for records: `host:port`, or the `rtu://`/`rtu+tcp://` URL of a bus.
    pub fn label(&self) -> &str {
        match self {
            Self::Tcp(l) | Self::Tls(l) => &l.address,
            Self::Rtu(l) => &l.label,
        }
    }

    /// Sends `request` to `unit` and returns the response PDU, checked against the request
    /// (`Response::parse_for`); an exception response is `Err(Exception)`.
    pub async fn call(
        &mut self,
        unit: UnitId,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, LinkError> {
        match self {
            Self::Tcp(l) | Self::Tls(l) => {
                let r = tokio::time::timeout(timeout, l.call(unit, request)).await;
                let r = r.unwrap_or(Err(LinkError::Timeout));
                if r.is_err() && !matches!(r, Err(LinkError::Exception(_))) {
                    // Whatever was in flight may still arrive: never reuse the connection.
                    l.stream = None;
                }
                r
            }
            Self::Rtu(l) => l.call(unit, request, timeout).await,
        }
    }
}

impl RtuLink {
    async fn call(
        &mut self,
        unit: UnitId,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, LinkError> {
        if self.master.is_none() {
            let m = RtuMaster::open(
                &self.upstream,
                self.serial.as_ref(),
                &self.owner,
                timeout,
                self.connect_timeout,
                self.audit.clone(),
            )
            .ok_or_else(|| LinkError::Unsupported(format!("{} is not a bus", self.label)))?;
            self.master = Some(m);
        }
        let Some(master) = self.master.as_mut() else {
            return Err(LinkError::Io("no bus port".into()));
        };
        self.tid = self.tid.wrapping_add(1);
        let tid = self.tid;
        let mut pdu = [0u8; 253];
        let n = request
            .encode(&mut pdu)
            .map_err(|e| LinkError::Protocol(format!("cannot encode the request: {e:?}")))?;
        let mut adu = [0u8; MAX_TCP_ADU_LEN];
        let len = tcp::encode_adu(tid, unit, &pdu[..n], &mut adu)
            .map_err(|e| LinkError::Protocol(format!("cannot frame the request: {e:?}")))?;
        // The bus answers every request itself (0x0B at the latest); this bound is a safety net.
        let within = master.answer_within();
        let label = &self.label;
        let r = tokio::time::timeout(within, async {
            let mut bytes = master
                .exchange(&adu[..len])
                .await
                .map_err(|e| LinkError::Io(e.to_string()))?;
            let mut deframer = TcpDeframer::new();
            // Bounded: each round consumes one answer of the bus; stale ones are few.
            for _ in 0..16 {
                let mut rest: &[u8] = &bytes;
                while !rest.is_empty() {
                    let taken = deframer.feed(rest);
                    if taken == 0 {
                        break;
                    }
                    rest = &rest[taken..];
                    while let Some(adu) = deframer
                        .next_adu()
                        .map_err(|e| LinkError::Protocol(format!("{e:?}")))?
                    {
                        if adu.transaction_id() != tid {
                            // An answer to a request we gave up on: not ours.
                            continue;
                        }
                        let response = Response::parse_for(adu.pdu, request)
                            .map_err(|e| LinkError::Protocol(format!("{e:?}")))?;
                        return match response {
                            // The bus's own answers for a line down / no answer.
                            Response::Exception { code, .. } if code.to_u8() == 0x0A => {
                                Err(LinkError::Connect(format!("{label}: line down")))
                            }
                            Response::Exception { code, .. } if code.to_u8() == 0x0B => {
                                Err(LinkError::Timeout)
                            }
                            Response::Exception { code, .. } => {
                                Err(LinkError::Exception(code.to_u8()))
                            }
                            _ => Ok(adu.pdu.to_vec()),
                        };
                    }
                }
                bytes = master
                    .read_more()
                    .await
                    .map_err(|e| LinkError::Io(e.to_string()))?;
            }
            Err(LinkError::Protocol(
                "no answer with our transaction id".into(),
            ))
        })
        .await;
        let r = r.unwrap_or(Err(LinkError::Timeout));
        if matches!(
            r,
            Err(LinkError::Timeout | LinkError::Io(_) | LinkError::Protocol(_))
        ) {
            // Whatever is still queued or in flight must not be taken for a later answer.
            self.master = None;
        }
        r
    }
}

impl TcpLink {
    async fn call(&mut self, unit: UnitId, request: &Request<'_>) -> Result<Vec<u8>, LinkError> {
        if self.stream.is_none() {
            let started = tokio::time::Instant::now();
            let s = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
                .await
                .map_err(|_| LinkError::Connect(format!("{}: timed out", self.address)))?
                .map_err(|e| LinkError::Connect(format!("{}: {e}", self.address)))?;
            let _ = s.set_nodelay(true);
            let stream: Box<dyn Io> = match &self.tls {
                None => Box::new(s),
                Some(tls) => {
                    // One bound for connect and handshake together, as the gateway does.
                    let left = self.connect_timeout.saturating_sub(started.elapsed());
                    let t = tls
                        .connect(s, left)
                        .await
                        .map_err(|e| LinkError::Connect(format!("{}: {e}", self.address)))?;
                    Box::new(t)
                }
            };
            self.stream = Some(stream);
            self.deframer.reset();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(LinkError::Io("no connection".into()));
        };
        self.tid = self.tid.wrapping_add(1);
        let tid = self.tid;
        let mut pdu = [0u8; 253];
        let n = request
            .encode(&mut pdu)
            .map_err(|e| LinkError::Protocol(format!("cannot encode the request: {e:?}")))?;
        let mut adu = [0u8; MAX_TCP_ADU_LEN];
        let len = tcp::encode_adu(tid, unit, &pdu[..n], &mut adu)
            .map_err(|e| LinkError::Protocol(format!("cannot frame the request: {e:?}")))?;
        stream
            .write_all(&adu[..len])
            .await
            .map_err(|e| LinkError::Io(e.to_string()))?;
        // A TLS stream holds the record until flushed.
        stream
            .flush()
            .await
            .map_err(|e| LinkError::Io(e.to_string()))?;
        let mut buf = [0u8; 512];
        let mut unfed: Vec<u8> = Vec::new();
        loop {
            match self.deframer.next_adu() {
                Ok(Some(adu)) => {
                    if adu.transaction_id() != tid || adu.unit_id() != unit {
                        // A stale answer of an earlier request: not ours, skip it.
                        continue;
                    }
                    let response = Response::parse_for(adu.pdu, request)
                        .map_err(|e| LinkError::Protocol(format!("{e:?}")))?;
                    if let Response::Exception { code, .. } = response {
                        return Err(LinkError::Exception(code.to_u8()));
                    }
                    return Ok(adu.pdu.to_vec());
                }
                Ok(None) => {}
                Err(e) => return Err(LinkError::Protocol(format!("{e:?}"))),
            }
            if !unfed.is_empty() {
                let taken = self.deframer.feed(&unfed);
                if taken == 0 {
                    return Err(LinkError::Protocol(
                        "the deframer takes no more bytes".into(),
                    ));
                }
                unfed.drain(..taken);
                continue;
            }
            let got = stream
                .read(&mut buf)
                .await
                .map_err(|e| LinkError::Io(e.to_string()))?;
            if got == 0 {
                return Err(LinkError::Io("the device closed the connection".into()));
            }
            unfed.extend_from_slice(&buf[..got]);
        }
    }
}
