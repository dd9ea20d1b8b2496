//! A [`Conduit`] and its gateway: the descriptive `protocols_allowed`, and the parsed
//! `gateway:` block ([`GatewaySettings`], its [`Mode`] and [`DenyAction`]).
//!
//! Separate from the rules and the upstream URL so a reader looking for what a conduit's
//! gateway is configured to do finds only that here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{KeyLines, Rule, SecurityLevel, Spanned, Unsupported, Upstream};

/// A conduit (IEC 62443-3-2 ZCR 3.6) and, when it has a `gateway:`, how zonegate enforces it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Conduit {
    /// `conduit_id`, unique in the model.
    pub id: String,
    /// Short name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Why it exists.
    pub rationale: Option<String>,
    /// Zone ids it connects.
    pub connects: Vec<Spanned<String>>,
    /// Its security level.
    pub security_level: Option<SecurityLevel>,
    /// Protocols as the integrator wrote them (prose directions kept).
    pub protocols_allowed: Vec<ProtocolAllowance>,
    /// Controls as written.
    pub controls: Vec<String>,
    /// Present when zonegate enforces this conduit.
    pub gateway: Option<GatewaySettings>,
    /// Allow rules, in order (first rule that allows wins; none -> deny).
    pub rules: Vec<Rule>,
    /// `shadow:` a candidate model file whose policy for this conduit the gateway evaluates
    /// beside the enforced one, recording what it would deny (relative to the model's folder).
    pub shadow: Option<Spanned<PathBuf>>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Key path, e.g. `conduits[1]`.
    pub path: String,
    /// Lines of the conduit's keys.
    pub keys: KeyLines,
}
line_of!(Conduit);

/// One entry of `protocols_allowed`: descriptive.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProtocolAllowance {
    /// Protocol name as written (`Modbus/TCP`, `OPC UA`, ...).
    pub protocol: String,
    /// Port as written (`502`, `"502/tcp"`, `"44818, 2222"`).
    pub port: Option<String>,
    /// The port numbers found in `port`.
    pub ports: Vec<u16>,
    /// Direction, usually prose: `Z3 -> Z2 (read only, FC 3/4 only)`.
    pub direction: Option<String>,
    /// Security mode as written (`plaintext`, `TLS 1.3 mutual auth`, ...).
    pub security_mode: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Why it is allowed.
    pub rationale: Option<String>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Key path.
    pub path: String,
    /// Lines of its keys.
    pub keys: KeyLines,
}
line_of!(ProtocolAllowance);

/// `mode:` of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Deny what the rules do not allow.
    Enforce,
    /// Forward everything; record `would_deny` for what enforce would deny.
    Monitor,
}

impl Mode {
    /// `enforce` | `monitor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Monitor => "monitor",
        }
    }
}

/// `deny:` of a gateway: what a denied client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyAction {
    /// Answer with the Modbus exception code the verdict names.
    Exception,
    /// Send nothing.
    Drop,
    /// Close the client connection.
    Close,
}

impl DenyAction {
    /// `exception` | `drop` | `close`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exception => "exception",
            Self::Drop => "drop",
            Self::Close => "close",
        }
    }
}

/// A conduit's `gateway:` block, parsed and with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewaySettings {
    /// Address the gateway listens on for Modbus TCP clients.
    pub listen: SocketAddr,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// `enforce` (default) or `monitor`.
    pub mode: Mode,
    /// `exception` (default), `drop` or `close`.
    pub deny: DenyAction,
    /// Close a client idle this long (default 30 s).
    pub idle_timeout: Duration,
    /// Answer 0x0B when the device is silent this long (default 2 s).
    pub request_timeout: Duration,
    /// Give up connecting upstream after this long and answer 0x0A (default 3 s).
    pub connect_timeout: Duration,
    /// Most client connections at once (default 64).
    pub max_connections: usize,
    /// Most client connections at once from one source address (default 16), so that one
    /// host, named by a rule or not, cannot take every slot of `max_connections`.
    pub max_connections_per_source: usize,
    /// How long a connection may wait in the listen backlog while `max_connections` are open
    /// (default 5 s): the gateway stops accepting, as haproxy's `maxconn` does, and refuses
    /// (and records) the waiting connections only when no slot freed within this time.
    pub max_connections_wait: Duration,
    /// Most requests of one client connection outstanding at the device at once (default 1).
    /// A client may still pipeline: the gateway queues its requests and forwards them one at a
    /// time, because many PLCs (and pymodbus's server) answer only the first ADU of a segment.
    /// Raise it only for a device known to handle pipelined requests.
    pub max_in_flight: usize,
    // Session data path (lock-out and upstream pool).
    /// Close a client that has made no allowed request after this long idle (default 5 s; the
    /// shorter of this and `idle_timeout` applies). Denied requests never count as activity.
    pub unauthenticated_idle_timeout: Duration,
    /// Most connections the gateway opens to the device at once, shared by all client
    /// sessions of the conduit (default 8; many PLCs accept only 4-16).
    pub max_upstream_connections: usize,
    /// Most requests outstanding on one device connection, from all the client sessions that
    /// share it (default 1: a device connection serves one session at a time, what every
    /// device can take). Above 1 the sessions share the device connections: their requests
    /// are told apart by the gateway's own transaction ids, and those that meet in time go to
    /// the device in one write. Only for a `tcp://` or `tls://` device known to answer
    /// pipelined requests (the Modbus/TCP messaging guide allows it; many PLCs answer only the
    /// first ADU of a segment).
    pub max_upstream_in_flight: usize,
    /// Modbus/TCP Security: the listener speaks mutual TLS (`None`: plaintext Modbus/TCP).
    pub tls: Option<crate::TlsListener>,
    /// The bus options of an `rtu://` or `rtu+tcp://` upstream (`serial:` block; `None`:
    /// defaults, or not a bus).
    pub serial: Option<crate::SerialOptions>,
    /// `listen: rtu:///dev/ttyY?...`: the gateway is a slave on this serial line (then
    /// `listen` is the line's source identity, [`crate::line_source`], port 0: no TCP listener).
    pub listen_serial: Option<crate::SerialLine>,
    /// 1-based line of the `gateway:` mapping.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl GatewaySettings {
    /// Default `idle_timeout`.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default `request_timeout`.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default `connect_timeout`.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
    /// Default `max_connections_per_source`.
    pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 16;
    /// Default `max_connections_wait`.
    pub const DEFAULT_MAX_CONNECTIONS_WAIT: Duration = Duration::from_secs(5);
    /// Default `max_in_flight`: one at a time, what every Modbus device can take.
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 1;
    /// Default `unauthenticated_idle_timeout`.
    pub const DEFAULT_UNAUTHENTICATED_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default `max_upstream_connections`.
    pub const DEFAULT_MAX_UPSTREAM_CONNECTIONS: usize = 8;
    /// Default `max_upstream_in_flight`: device connections are not shared.
    pub const DEFAULT_MAX_UPSTREAM_IN_FLIGHT: usize = 1;

    /// Whether this build's `zonegate run` can enforce this gateway block: `Err` says what it
    /// cannot do yet.
    ///
    /// This is THE one decision of "supported": the gateway refuses to start a conduit for
    /// which it is `Err`, and `check`, `report` and `assess` credit enforcement only where it
    /// is `Ok`, so that no output claims what the running gateway does not do.
    pub fn runnable(&self) -> Result<(), Unsupported> {
        self.upstream.runnable()
    }
}
