//! Where a gateway forwards: the [`Upstream`] URL forms (`tcp://`, `tls://`, `rtu://`,
//! `rtu+tcp://`) with the serial [`Parity`], and what this build can forward to
//! ([`Upstream::runnable`], [`Unsupported`]).
//!
//! Separate because the URL forms and their display round-trip are one concern that grows with
//! each transport.

use std::fmt;
use std::path::PathBuf;

/// Serial parity for an RTU upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    /// No parity (the spec then asks for 2 stop bits).
    None,
    /// Even parity (the Modbus default).
    Even,
    /// Odd parity.
    Odd,
}

impl Parity {
    /// `none` | `even` | `odd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Even => "even",
            Self::Odd => "odd",
        }
    }
}

/// Where a gateway forwards allowed requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upstream {
    /// `tcp://host:port` (port defaults to 502).
    Tcp {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `tls://host:port?ca=..&cert=..&key=..&server_name=..` (Modbus/TCP Security, port
    /// defaults to 802).
    Tls {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// CA bundle to verify the device's certificate.
        ca: Option<PathBuf>,
        /// Client certificate the gateway presents.
        cert: Option<PathBuf>,
        /// Private key of `cert`.
        key: Option<PathBuf>,
        /// Name to verify in the device certificate (defaults to `host`).
        server_name: Option<String>,
    },
    /// `rtu:///dev/ttyUSB0?baud=19200&parity=even&data_bits=8&stop_bits=1`.
    Rtu {
        /// Serial device path.
        path: PathBuf,
        /// Baud rate (default 19200).
        baud: u32,
        /// Parity (default even).
        parity: Parity,
        /// Data bits, 7 or 8 (default 8).
        data_bits: u8,
        /// Stop bits, 1 or 2 (default 1).
        stop_bits: u8,
    },
    /// `rtu+tcp://host:port`: raw RTU frames (with CRC) inside a TCP stream, what most
    /// serial-to-Ethernet converters speak; the converter is one bus. Port defaults to 502.
    RtuTcp {
        /// Host name or address of the converter (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl Upstream {
    /// Host and TCP port for `tcp://` and `tls://`; `None` for a serial line.
    pub fn host_port(&self) -> Option<(&str, u16)> {
        match self {
            Self::Tcp { host, port }
            | Self::Tls { host, port, .. }
            | Self::RtuTcp { host, port } => Some((host, *port)),
            Self::Rtu { .. } => None,
        }
    }

    /// True for a Modbus RTU bus (`rtu://` serial line or `rtu+tcp://` converter): one
    /// transaction on the wire at a time, shared by every conduit that names it.
    pub fn is_bus(&self) -> bool {
        matches!(self, Self::Rtu { .. } | Self::RtuTcp { .. })
    }
}

impl fmt::Display for Upstream {
    /// The canonical URL form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn host(f: &mut fmt::Formatter<'_>, h: &str) -> fmt::Result {
            if h.contains(':') {
                write!(f, "[{h}]")
            } else {
                f.write_str(h)
            }
        }
        match self {
            Self::Tcp { host: h, port } => {
                f.write_str("tcp://")?;
                host(f, h)?;
                write!(f, ":{port}")
            }
            Self::Tls {
                host: h,
                port,
                ca,
                cert,
                key,
                server_name,
            } => {
                f.write_str("tls://")?;
                host(f, h)?;
                write!(f, ":{port}")?;
                let mut sep = '?';
                for (k, v) in [
                    ("ca", ca.as_ref().map(|p| p.display().to_string())),
                    ("cert", cert.as_ref().map(|p| p.display().to_string())),
                    ("key", key.as_ref().map(|p| p.display().to_string())),
                    ("server_name", server_name.clone()),
                ] {
                    if let Some(v) = v {
                        write!(f, "{sep}{k}={v}")?;
                        sep = '&';
                    }
                }
                Ok(())
            }
            Self::Rtu {
                path,
                baud,
                parity,
                data_bits,
                stop_bits,
            } => write!(
                f,
                "rtu://{}?baud={baud}&parity={}&data_bits={data_bits}&stop_bits={stop_bits}",
                path.display(),
                parity.as_str()
            ),
            Self::RtuTcp { host: h, port } => {
                f.write_str("rtu+tcp://")?;
                host(f, h)?;
                write!(f, ":{port}")
            }
        }
    }
}

/// What this build of the gateway cannot do yet (see
/// [`GatewaySettings::runnable`](super::GatewaySettings::runnable)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The missing feature, for a person: "upstream rtu:///dev/ttyUSB0 (Modbus RTU, rtu://)".
    pub what: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not supported by this build yet", self.what)
    }
}

impl Upstream {
    /// Whether this build's gateway can forward to this upstream (see
    /// [`GatewaySettings::runnable`](super::GatewaySettings::runnable)).
    pub fn runnable(&self) -> Result<(), Unsupported> {
        match self {
            // Modbus RTU: the gateway is the bus master (gateway/src/bus.rs).
            Self::Tcp { .. } | Self::Tls { .. } | Self::Rtu { .. } | Self::RtuTcp { .. } => Ok(()),
        }
    }
}
