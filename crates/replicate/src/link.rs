//! The transmit side's access to the device, as a Modbus master.
//!
//! [`DeviceLink`] is an enum over the upstream kinds of the model: `tcp://` (Modbus/TCP) and
//! `tls://` (Modbus/TCP Security, with the gateway's own TLS client settings from
//! `zonegate_gateway::mbaps`: the device certificate must chain to `ca` and carry
//! `server_name`, and the agent presents `cert`). The transmit agent only calls
//! [`DeviceLink::call`], so a serial link is one more variant with its own `call`: `rtu://`
//! joins when the gateway's RTU master can be shared the same way; until then
//! [`DeviceLink::for_upstream`] refuses it with the wording of check ZG-C041
//! (`Replication::source_runnable`). Every byte is framed and parsed by `zonegate-modbus`.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zonegate_gateway::mbaps::DeviceTls;
use zonegate_modbus::{tcp, Request, Response, TcpDeframer, UnitId, MAX_TCP_ADU_LEN};
use zonegate_policy::Upstream;

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
            other => Err(LinkError::Unsupported(format!(
                "replication source {other} (Modbus RTU, rtu://, in the transmit agent) is not \
                 supported by this build yet"
            ))),
        }
    }

    /// The device, for records: `host:port`.
    pub fn label(&self) -> &str {
        match self {
            Self::Tcp(l) | Self::Tls(l) => &l.address,
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
        }
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
