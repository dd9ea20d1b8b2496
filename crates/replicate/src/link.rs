//! The transmit side's access to the device, as a Modbus master.
//!
//! [`DeviceLink`] is an enum over the upstream kinds of the model (`tcp://` today); the
//! transmit agent only calls [`DeviceLink::call`], so a TLS or RTU link is one more variant
//! with its own `call`. Every byte is framed and parsed by `zonegate-modbus`.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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

/// A Modbus TCP connection to the device, opened on first use and after every failure.
#[derive(Debug)]
pub struct TcpLink {
    address: String,
    stream: Option<TcpStream>,
    deframer: TcpDeframer,
    tid: u16,
    connect_timeout: Duration,
}

/// How the transmit side reaches the device.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceLink {
    /// `tcp://host:port`.
    Tcp(TcpLink),
}

impl DeviceLink {
    /// The link for a model upstream; `Err` for kinds this build cannot use yet (TLS, RTU).
    pub fn for_upstream(upstream: &Upstream) -> Result<Self, LinkError> {
        upstream
            .runnable()
            .map_err(|u| LinkError::Unsupported(u.to_string()))?;
        match upstream {
            Upstream::Tcp { host, port } => Ok(Self::Tcp(TcpLink {
                address: if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                },
                stream: None,
                deframer: TcpDeframer::new(),
                tid: 0,
                connect_timeout: Duration::from_secs(3),
            })),
            other => Err(LinkError::Unsupported(format!(
                "upstream {other} is not supported for replication by this build yet"
            ))),
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
            Self::Tcp(l) => {
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
            let s = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
                .await
                .map_err(|_| LinkError::Connect(format!("{}: timed out", self.address)))?
                .map_err(|e| LinkError::Connect(format!("{}: {e}", self.address)))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
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
