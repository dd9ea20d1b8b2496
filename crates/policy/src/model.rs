//! The model file's types: zones, assets, conduits, gateway settings, rules and the audit section.
//!
//! A [`Model`] keeps everything the file says, descriptive prose included, so the report tool can
//! print it back; enforcement values (networks, ranges, durations, upstream URLs) are already
//! parsed and checked ("parse, don't validate"). Every element remembers its YAML `line`, `column`
//! and key `path` (e.g. `conduits[0].rules[1]`), and [`KeyLines`] gives the line of each of its keys,
//! so findings can point at the exact line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zonegate_modbus::FunctionCode;

use crate::net::Cidr;

/// A value with the position of its YAML node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl<T> Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Display> fmt::Display for Spanned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// Lines and columns of the keys an element was written with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLines(pub(crate) Vec<(&'static str, u32, u32)>);

impl KeyLines {
    /// The 1-based line of `key` in this element, if the key was written.
    pub fn line(&self, key: &str) -> Option<u32> {
        self.0
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, l, _)| *l)
    }

    /// The (line, column) of `key` in this element, if the key was written.
    pub fn position(&self, key: &str) -> Option<(u32, u32)> {
        self.0
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, l, c)| (*l, *c))
    }
}

macro_rules! line_of {
    ($t:ty) => {
        impl $t {
            /// The line of `key` in this element, or the element's own line when the key is absent.
            pub fn line_of(&self, key: &str) -> u32 {
                self.keys.line(key).unwrap_or(self.line)
            }
        }
    };
}

/// The whole model file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Model {
    /// The file name given to the loader (used in messages).
    pub file: String,
    /// The facility or site the document covers.
    pub facility: Option<String>,
    /// When the risk assessment was made (kept as written).
    pub assessment_date: Option<String>,
    /// The standard followed, e.g. `IEC 62443-3-2:2020`.
    pub standard: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Who owns the document.
    pub owner: Option<String>,
    /// Who made the assessment.
    pub assessor: Option<String>,
    /// Document revision or version, as written.
    pub revision: Option<String>,
    /// The zones, in file order.
    pub zones: Vec<Zone>,
    /// The conduits, in file order.
    pub conduits: Vec<Conduit>,
    /// The `audit:` section, if present.
    pub audit: Option<AuditSection>,
    /// The `replications:` section: one-way replications (data diodes), in file order.
    pub replications: Vec<crate::Replication>,
    /// The `admin:` section (metrics, health, dashboard), if present: off when absent.
    pub admin: Option<crate::AdminSettings>,
    /// The `monitor:` section (the gateway's live monitor), if present.
    pub monitor: Option<crate::MonitorSection>,
    /// Directory of the model file (set by [`crate::load_file`]); relative paths resolve against it.
    pub dir: Option<PathBuf>,
    /// Lines of the top-level keys.
    pub keys: KeyLines,
    pub(crate) sha256: [u8; 32],
}

impl Model {
    /// Hex SHA-256 of the exact bytes of the model file, for the audit genesis record.
    pub fn policy_hash(&self) -> String {
        crate::hex(&self.sha256)
    }

    /// The raw SHA-256 of the model file's bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The zone with this `zone_id`.
    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }

    /// The conduit with this `conduit_id`.
    pub fn conduit(&self, id: &str) -> Option<&Conduit> {
        self.conduits.iter().find(|c| c.id == id)
    }

    /// The replication with this `replication_id`.
    pub fn replication(&self, id: &str) -> Option<&crate::Replication> {
        self.replications.iter().find(|r| r.id == id)
    }

    /// The structured asset with this `id`, with its zone.
    pub fn asset(&self, id: &str) -> Option<(&Zone, &Asset)> {
        self.zones.iter().find_map(|z| {
            z.assets
                .iter()
                .find(|a| a.id.as_deref() == Some(id))
                .map(|a| (z, a))
        })
    }

    /// A path from the model resolved against the model file's directory (unchanged when
    /// absolute or when the model was loaded from a string).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// `upstream` with its TLS files (`ca`, `cert`, `key`) resolved as [`Model::resolve`]
    /// does: what the gateway must open, whatever its current directory.
    pub fn resolve_upstream(&self, upstream: &Upstream) -> Upstream {
        match upstream {
            Upstream::Tls {
                host,
                port,
                ca,
                cert,
                key,
                server_name,
            } => Upstream::Tls {
                host: host.clone(),
                port: *port,
                ca: ca.as_deref().map(|p| self.resolve(p)),
                cert: cert.as_deref().map(|p| self.resolve(p)),
                key: key.as_deref().map(|p| self.resolve(p)),
                server_name: server_name.clone(),
            },
            other => other.clone(),
        }
    }
}

/// A security zone (IEC 62443-3-2 ZCR 3).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Zone {
    /// `zone_id`, unique in the model.
    pub id: String,
    /// Short name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Who owns the zone.
    pub owner: Option<String>,
    /// Why the zone is drawn this way.
    pub rationale: Option<String>,
    /// Where it is.
    pub location: Option<String>,
    /// Purdue level: a number, a span such as `1-2`, or `3.5` for a DMZ.
    pub purdue_level: Option<PurdueLevel>,
    /// Target security level (SL-T).
    pub security_level_target: Option<SecurityLevel>,
    /// Criticality as written (`high`, `safety`, ...).
    pub criticality: Option<String>,
    /// Assets, descriptive strings or structured.
    pub assets: Vec<Asset>,
    /// Security requirements as written.
    pub security_requirements: Vec<String>,
    /// Conduit ids the zone may use; `Some([])` is an air-gapped zone, `None` means not stated.
    pub allowed_conduits: Option<Vec<Spanned<String>>>,
    /// Addresses that belong to the zone.
    pub networks: Vec<Spanned<Cidr>>,
    /// Serial lines of the zone (`serial: [/dev/ttyY]`): requests arriving on a gateway's
    /// serial listener on one of them come from this zone.
    pub serial: Vec<PathBuf>,
    /// ZCR 6 documentation: the zone's logical boundary, as written.
    pub logical_boundary: Option<String>,
    /// ZCR 6 documentation: the zone's physical boundary, as written.
    pub physical_boundary: Option<String>,
    /// ZCR 6 documentation: logical access points.
    pub access_points: Vec<String>,
    /// ZCR 6 documentation: data flows in and out of the zone.
    pub data_flows: Vec<String>,
    /// ZCR 6 documentation: assumptions and external dependencies.
    pub assumptions: Vec<String>,
    /// 1-based line of the zone's mapping.
    pub line: u32,
    /// 1-based column of the zone's mapping.
    pub column: u32,
    /// Key path, e.g. `zones[2]`.
    pub path: String,
    /// Lines of the zone's keys.
    pub keys: KeyLines,
}
line_of!(Zone);

/// Purdue reference model level: a single level (`2`, `3.5`) or a span (`1-2`), in tenths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PurdueLevel {
    low_tenths: u8,
    high_tenths: u8,
}

impl PurdueLevel {
    /// A level span in tenths of a level (`35` = 3.5); `low <= high`.
    pub fn from_tenths(low: u8, high: u8) -> Option<Self> {
        (low <= high && high <= 50).then_some(Self {
            low_tenths: low,
            high_tenths: high,
        })
    }

    /// Lowest level of the span.
    pub fn low(&self) -> f32 {
        f32::from(self.low_tenths) / 10.0
    }

    /// Highest level of the span.
    pub fn high(&self) -> f32 {
        f32::from(self.high_tenths) / 10.0
    }

    /// Lowest level in tenths.
    pub fn low_tenths(&self) -> u8 {
        self.low_tenths
    }

    /// Highest level in tenths.
    pub fn high_tenths(&self) -> u8 {
        self.high_tenths
    }

    /// True for level 3.5, the industrial DMZ.
    pub fn is_dmz(&self) -> bool {
        self.low_tenths == 35 && self.high_tenths == 35
    }
}

impl fmt::Display for PurdueLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn one(f: &mut fmt::Formatter<'_>, t: u8) -> fmt::Result {
            if t % 10 == 0 {
                write!(f, "{}", t / 10)
            } else {
                write!(f, "{}.{}", t / 10, t % 10)
            }
        }
        one(f, self.low_tenths)?;
        if self.high_tenths != self.low_tenths {
            f.write_str("-")?;
            one(f, self.high_tenths)?;
        }
        Ok(())
    }
}

/// The seven foundational requirements of IEC 62443-3-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fr {
    /// FR 1 identification and authentication control.
    Iac,
    /// FR 2 use control.
    Uc,
    /// FR 3 system integrity.
    Si,
    /// FR 4 data confidentiality.
    Dc,
    /// FR 5 restricted data flow.
    Rdf,
    /// FR 6 timely response to events.
    Tre,
    /// FR 7 resource availability.
    Ra,
}

impl Fr {
    /// All seven, in FR order.
    pub const ALL: [Self; 7] = [
        Self::Iac,
        Self::Uc,
        Self::Si,
        Self::Dc,
        Self::Rdf,
        Self::Tre,
        Self::Ra,
    ];

    /// The abbreviation used in the model: `IAC`, `UC`, `SI`, `DC`, `RDF`, `TRE`, `RA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iac => "IAC",
            Self::Uc => "UC",
            Self::Si => "SI",
            Self::Dc => "DC",
            Self::Rdf => "RDF",
            Self::Tre => "TRE",
            Self::Ra => "RA",
        }
    }

    /// The FR number, 1 to 7.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    /// The full name.
    pub fn title(self) -> &'static str {
        match self {
            Self::Iac => "Identification and authentication control",
            Self::Uc => "Use control",
            Self::Si => "System integrity",
            Self::Dc => "Data confidentiality",
            Self::Rdf => "Restricted data flow",
            Self::Tre => "Timely response to events",
            Self::Ra => "Resource availability",
        }
    }
}

impl fmt::Display for Fr {
    /// The abbreviation ([`Fr::as_str`]); honours width and alignment (`{:>4}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A security level (0-4): one level for every FR, or a per-FR vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityLevel {
    /// `"SL 2"` or `2`: the same level for every FR.
    Uniform(u8),
    /// `{IAC: 2, UC: 2, ...}`: FRs left out are `None`.
    PerFr([Option<u8>; 7]),
}

impl SecurityLevel {
    /// The level for one FR (`None` when a vector leaves it out).
    pub fn get(&self, fr: Fr) -> Option<u8> {
        match self {
            Self::Uniform(l) => Some(*l),
            Self::PerFr(v) => v[fr as usize],
        }
    }

    /// The highest level over all FRs (0 for an empty vector).
    pub fn max(&self) -> u8 {
        match self {
            Self::Uniform(l) => *l,
            Self::PerFr(v) => v.iter().flatten().copied().max().unwrap_or(0),
        }
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uniform(l) => write!(f, "SL {l}"),
            Self::PerFr(v) => {
                f.write_str("{")?;
                let mut first = true;
                for fr in Fr::ALL {
                    if let Some(l) = v[fr as usize] {
                        if !first {
                            f.write_str(", ")?;
                        }
                        first = false;
                        write!(f, "{}: {l}", fr.as_str())?;
                    }
                }
                f.write_str("}")
            }
        }
    }
}

/// What kind of device an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssetKind {
    /// Programmable logic controller.
    Plc,
    /// Remote terminal unit.
    Rtu,
    /// Human-machine interface.
    Hmi,
    /// Engineering workstation.
    Ews,
    /// Process historian.
    Historian,
    /// Safety instrumented system.
    Sis,
    /// Any server.
    Server,
    /// Anything else.
    Other,
}

impl AssetKind {
    /// All kinds.
    pub const ALL: [Self; 8] = [
        Self::Plc,
        Self::Rtu,
        Self::Hmi,
        Self::Ews,
        Self::Historian,
        Self::Sis,
        Self::Server,
        Self::Other,
    ];

    /// The model's spelling: `plc`, `rtu`, `hmi`, `ews`, `historian`, `sis`, `server`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plc => "plc",
            Self::Rtu => "rtu",
            Self::Hmi => "hmi",
            Self::Ews => "ews",
            Self::Historian => "historian",
            Self::Sis => "sis",
            Self::Server => "server",
            Self::Other => "other",
        }
    }
}

/// An asset in a zone: a descriptive string or a structured entry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Asset {
    /// `id` of a structured asset (rules and checks refer to it); `None` for a string asset.
    pub id: Option<String>,
    /// Name; for a string asset, the string itself.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Why it is here.
    pub rationale: Option<String>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Product model.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// Where it is.
    pub location: Option<String>,
    /// Criticality as written.
    pub criticality: Option<String>,
    /// IP address (IPv4-mapped IPv6 is stored as IPv4).
    pub address: Option<IpAddr>,
    /// Modbus unit ids served at that address.
    pub unit_ids: Vec<u8>,
    /// Device kind.
    pub kind: Option<AssetKind>,
    /// True when the asset was written as a plain string.
    pub descriptive: bool,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Key path, e.g. `zones[0].assets[1]`.
    pub path: String,
    /// Lines of the asset's keys.
    pub keys: KeyLines,
}
line_of!(Asset);

impl Asset {
    /// A label for messages: the id, else the name.
    pub fn label(&self) -> &str {
        self.id
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or("(unnamed asset)")
    }
}

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

/// What this build of the gateway cannot do yet (see [`GatewaySettings::runnable`]).
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
    /// [`GatewaySettings::runnable`]).
    pub fn runnable(&self) -> Result<(), Unsupported> {
        match self {
            // Modbus RTU: the gateway is the bus master (gateway/src/bus.rs).
            Self::Tcp { .. } | Self::Tls { .. } | Self::Rtu { .. } | Self::RtuTcp { .. } => Ok(()),
        }
    }
}

/// An inclusive range of 16-bit numbers (addresses, sub-functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct U16Range {
    /// First value.
    pub start: u16,
    /// Last value (inclusive), `>= start`.
    pub end: u16,
}

impl U16Range {
    /// True when `v` is inside.
    pub fn contains(&self, v: u16) -> bool {
        self.start <= v && v <= self.end
    }
}

impl fmt::Display for U16Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// The addresses a rule allows in one table: the ranges as written, plus a merged form for
/// lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    written: Vec<U16Range>,
    merged: Vec<U16Range>,
}

impl AddressSet {
    /// A set from ranges (any order, overlaps allowed).
    pub fn new(ranges: Vec<U16Range>) -> Self {
        let mut sorted = ranges.clone();
        sorted.sort();
        let mut merged: Vec<U16Range> = Vec::with_capacity(sorted.len());
        for r in sorted {
            match merged.last_mut() {
                Some(last) if u32::from(r.start) <= u32::from(last.end) + 1 => {
                    last.end = last.end.max(r.end);
                }
                _ => merged.push(r),
            }
        }
        Self {
            written: ranges,
            merged,
        }
    }

    /// The ranges as written.
    pub fn ranges(&self) -> &[U16Range] {
        &self.written
    }

    /// Sorted, disjoint, non-adjacent ranges covering the same addresses.
    pub fn merged(&self) -> &[U16Range] {
        &self.merged
    }

    /// True when no address is allowed.
    pub fn is_empty(&self) -> bool {
        self.merged.is_empty()
    }

    /// True when every address in `first..=last` is in the set (`false` when `last < first`).
    pub fn contains_span(&self, first: u16, last: u16) -> bool {
        if last < first {
            return false;
        }
        // The merged ranges are disjoint and non-adjacent, so one range must hold the whole span.
        let i = self.merged.partition_point(|r| r.end < first);
        self.merged
            .get(i)
            .is_some_and(|r| r.start <= first && last <= r.end)
    }

    /// True when `addr` is in the set.
    pub fn contains(&self, addr: u16) -> bool {
        self.contains_span(addr, addr)
    }

    /// How many addresses the set holds.
    pub fn len(&self) -> u32 {
        self.merged
            .iter()
            .map(|r| u32::from(r.end) - u32::from(r.start) + 1)
            .sum()
    }
}

impl fmt::Display for AddressSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.written.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The file records a rule allows to FC 20 (read file record) and FC 21 (write file record):
/// `file: [4, "5-6:0-99"]` is file 4 (every record) and files 5-6, records 0-99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRange {
    /// File numbers (1-65535).
    pub files: U16Range,
    /// Record numbers (0-9999, the protocol's limit; all of them when not written).
    pub records: U16Range,
}

impl FileRange {
    /// The highest record number the protocol allows (0x270F).
    pub const MAX_RECORD: u16 = 9999;

    /// True when records `first..=last` of `file` are inside.
    pub fn contains_span(&self, file: u16, first: u16, last: u16) -> bool {
        first <= last
            && self.files.contains(file)
            && self.records.start <= first
            && last <= self.records.end
    }
}

impl fmt::Display for FileRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.records
            == (U16Range {
                start: 0,
                end: Self::MAX_RECORD,
            })
        {
            write!(f, "{}", self.files)
        } else {
            write!(f, "{}:{}", self.files, self.records)
        }
    }
}

/// A class of function codes (docs/DESIGN.md): `read`, `write`, `diagnostics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FunctionClass {
    /// 1, 2, 3, 4, 24.
    Read,
    /// 5, 6, 15, 16, 21, 22, 23.
    Write,
    /// 7, 8, 11, 12, 17, 43.
    Diagnostics,
}

impl FunctionClass {
    /// `read` | `write` | `diagnostics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Diagnostics => "diagnostics",
        }
    }

    /// The function codes in the class. A compiled rule grants only those of them that act
    /// on a table (or `file:` range) the rule bounds; see the crate docs.
    pub fn codes(self) -> &'static [u8] {
        match self {
            Self::Read => &[1, 2, 3, 4, 24],
            Self::Write => &[5, 6, 15, 16, 21, 22, 23],
            Self::Diagnostics => &[7, 8, 11, 12, 17, 43],
        }
    }

    /// The class of a function code (`None` for user-defined and unknown codes, and 20, which
    /// reads file records and is in no class).
    pub fn of(code: u8) -> Option<Self> {
        Self::ALL_WORDS
            .iter()
            .copied()
            .find(|c| c.codes().contains(&code))
    }
}

/// The model name of a public function code (docs/DESIGN.md names, from the codec's table:
/// [`zonegate_modbus::FunctionCode::name`]).
pub fn function_name(code: u8) -> Option<&'static str> {
    FunctionCode::new(code).name()
}

/// The public function code with this model name ([`zonegate_modbus::FunctionCode::from_name`]).
/// The policy-only aliases (classes, `read_device_identification`) are handled by the selector
/// parser, not here.
pub fn function_code(name: &str) -> Option<u8> {
    FunctionCode::from_name(name).map(FunctionCode::get)
}

/// One entry of a rule's `functions:`.
///
/// Syntax (documented in the crate docs):
/// - a class: `read`, `write`, `diagnostics`;
/// - a function by name (`write_single_register`) or number (`6`);
/// - a function with sub-functions, for FC 8 (diagnostics sub-function) and FC 43 (MEI type)
///   only: `8:0`, `diagnostics:4`, `8:10-18`, `43:14`, `encapsulated_interface:0x0E`, or the
///   alias `read_device_identification` (= `43:14`); or the mapping form
///   `{function: 8, sub_functions: [0, 10-18]}`.
///
/// FC 8 or 43 without sub-functions selects all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FunctionSelector {
    /// Every function code of a class.
    Class(FunctionClass),
    /// One function code, optionally limited to some sub-functions / MEI types.
    Function {
        /// The function code.
        code: u8,
        /// `None` = all sub-functions; `Some` = only these.
        sub_functions: Option<Vec<U16Range>>,
    },
}

impl FunctionSelector {
    /// True when the selector allows `code` with sub-function `sub` (FC 8 sub-function or
    /// FC 43 MEI type; `None` for other functions).
    pub fn selects(&self, code: u8, sub: Option<u16>) -> bool {
        match self {
            Self::Class(c) => c.codes().contains(&code),
            Self::Function {
                code: c,
                sub_functions,
            } => {
                *c == code
                    && match (sub_functions, sub) {
                        (None, _) => true,
                        (Some(list), Some(s)) => list.iter().any(|r| r.contains(s)),
                        (Some(_), None) => false,
                    }
            }
        }
    }

    /// The function codes the selector names.
    pub fn codes(&self) -> &[u8] {
        match self {
            Self::Class(c) => c.codes(),
            Self::Function { code, .. } => std::slice::from_ref(code),
        }
    }
}

impl fmt::Display for FunctionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Class(c) => f.write_str(c.as_str()),
            Self::Function {
                code,
                sub_functions,
            } => {
                match function_name(*code) {
                    Some(n) => f.write_str(n)?,
                    None => write!(f, "{code}")?,
                }
                if let Some(list) = sub_functions {
                    f.write_str(":")?;
                    for (i, r) in list.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write!(f, "{r}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// What a rule's `from:` entry names, resolved at load.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceTarget {
    /// A zone id: its `networks` and its assets' addresses.
    Zone(String),
    /// A structured asset id: its address.
    Asset {
        /// The zone that holds the asset.
        zone: String,
        /// The asset id.
        asset: String,
    },
    /// A CIDR or a single IP address.
    Network(Cidr),
}

/// One entry of a rule's `from:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The entry as written.
    pub text: String,
    /// What it names.
    pub target: SourceTarget,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// `values: {min, max}`: every written value must lie in `[min, max]`.
///
/// Registers are read as unsigned 16-bit values, unless `min` is negative: then they are read
/// as signed (two's complement INT16), so `{min: -50, max: 50}` allows `0xFFCE` (-50). Coils
/// write 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueBounds {
    /// Smallest allowed value (-32768..=65535).
    pub min: i32,
    /// Largest allowed value (`>= min`; at most 32767 when `min` is negative).
    pub max: i32,
}

impl ValueBounds {
    /// True when the bounds read registers as signed INT16.
    pub fn is_signed(&self) -> bool {
        self.min < 0
    }

    /// True when the raw register (or coil 0/1) value `v` is within the bounds.
    pub fn contains(&self, v: u16) -> bool {
        let x = if self.is_signed() {
            i32::from(v as i16)
        } else {
            i32::from(v)
        };
        self.min <= x && x <= self.max
    }
}

/// `rate: N/s` or `N/min`: a token bucket of `count` tokens refilled over `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests allowed per period (also the burst size).
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.per.as_secs();
        let unit = match secs {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => return write!(f, "{}/{}s", self.count, secs),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// An allow rule of a conduit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rule {
    /// Rule id, unique in its conduit; events carry it.
    pub id: String,
    /// Who may send: zone ids, asset ids, CIDRs or addresses.
    pub from: Vec<Source>,
    /// Unit ids the rule covers; `None` = every unit id.
    pub unit_ids: Option<Vec<u8>>,
    /// TLS roles the rule requires; `None` = any (or no) role.
    pub roles: Option<Vec<String>>,
    /// Functions allowed.
    pub functions: Vec<Spanned<FunctionSelector>>,
    /// Allowed coil addresses.
    pub coils: AddressSet,
    /// Allowed discrete input addresses.
    pub discrete: AddressSet,
    /// Allowed input register addresses.
    pub input: AddressSet,
    /// Allowed holding register addresses.
    pub holding: AddressSet,
    /// File records FC 20/21 may touch (`file:`). `None`: the `write` class does not include
    /// FC 21, and FC 20/21 named explicitly may touch any file record.
    pub file: Option<Vec<FileRange>>,
    /// Bounds on every written value.
    pub values: Option<ValueBounds>,
    /// Rate limit per source.
    pub rate: Option<Rate>,
    /// Why the rule exists.
    pub justification: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Who asked for it.
    pub owner: Option<String>,
    /// Why (synonym kept apart from `justification` as written).
    pub rationale: Option<String>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Key path, e.g. `conduits[0].rules[1]`.
    pub path: String,
    /// Lines of the rule's keys.
    pub keys: KeyLines,
}
line_of!(Rule);

/// A model enum written as one of a fixed set of words: the loader parses it by the same
/// spelling its `as_str` gives back, so each word is written once.
pub(crate) trait Word: Copy + 'static {
    /// Every value, in the order an error message lists the words.
    const ALL_WORDS: &'static [Self];
    /// The model's spelling (`as_str`).
    fn word(self) -> &'static str;
}

/// Implements [`Word`] for enums with an inherent `as_str`.
macro_rules! words {
    ($($t:ident: [$($v:ident),+ $(,)?];)+) => {$(
        impl Word for $t {
            const ALL_WORDS: &'static [Self] = &[$(Self::$v),+];
            fn word(self) -> &'static str {
                self.as_str()
            }
        }
    )+};
}

impl Word for AssetKind {
    const ALL_WORDS: &'static [Self] = &Self::ALL;
    fn word(self) -> &'static str {
        self.as_str()
    }
}

words! {
    FunctionClass: [Read, Write, Diagnostics];
    Mode: [Enforce, Monitor];
    DenyAction: [Exception, Drop, Close];
    AuditSync: [Every, Writes, Batch];
    AuditOnFailure: [BlockWrites, BlockAll, Continue];
    SyslogTransport: [Udp, Tcp, Tls];
}

/// `audit.sync`: when records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditSync {
    /// Every record, durable before the request goes on.
    Every,
    /// Write-class requests durable before forwarding; others batched (default).
    Writes,
    /// Group commit for all.
    Batch,
}

impl AuditSync {
    /// `every` | `writes` | `batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Every => "every",
            Self::Writes => "writes",
            Self::Batch => "batch",
        }
    }
}

/// `audit.on_failure`: what the gateway does when the log cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditOnFailure {
    /// Deny write-class requests, keep reads flowing (default).
    BlockWrites,
    /// Deny everything.
    BlockAll,
    /// Keep forwarding (risky: unaudited commands).
    Continue,
}

impl AuditOnFailure {
    /// `block_writes` | `block_all` | `continue`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlockWrites => "block_writes",
            Self::BlockAll => "block_all",
            Self::Continue => "continue",
        }
    }
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyslogTransport {
    /// RFC 5426.
    Udp,
    /// RFC 6587.
    Tcp,
    /// RFC 5425.
    Tls,
}

impl SyslogTransport {
    /// `udp` | `tcp` | `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// `audit.syslog`: a copy of each record to a syslog collector (RFC 5424).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyslogSection {
    /// udp (default), tcp or tls.
    pub transport: SyslogTransport,
    /// `host:port` of the collector.
    pub address: String,
    /// CA bundle for tls.
    pub ca: Option<PathBuf>,
    /// Client certificate for tls.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
    /// APP-NAME (default `zonegate`).
    pub app_name: String,
    /// Facility number 0-23 (default 16, `local0`); names such as `local3` or `auth` accepted.
    pub facility: u8,
    /// HOSTNAME to send (default: the machine's).
    pub hostname: Option<String>,
    /// 1-based line.
    pub line: u32,
}

/// The top-level `audit:` section, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditSection {
    /// Log file as written; `None` = stdout. Relative paths are relative to the model file:
    /// use [`Model::resolve`].
    pub path: Option<PathBuf>,
    /// Sync policy (default `writes`).
    pub sync: AuditSync,
    /// Failure policy (default `block_writes`).
    pub on_failure: AuditOnFailure,
    /// Rotate the file past this many bytes (`64MiB`).
    pub rotate_size: Option<u64>,
    /// Write a checkpoint record every N records.
    pub checkpoint_every: Option<u64>,
    /// Key file to sign checkpoints.
    pub signing_key: Option<PathBuf>,
    /// Syslog copy.
    pub syslog: Option<SyslogSection>,
    /// `aggregate_interval`: repeated denials of one source and reason within it become one
    /// record with a `count` (default 10 s in the writer when `None`; `0s`: every denial in
    /// full, except while storage is low).
    pub aggregate_interval: Option<std::time::Duration>,
    /// `max_bytes`: retention, delete the oldest segments while the log is larger (default:
    /// keep everything).
    pub max_bytes: Option<u64>,
    /// `max_segments`: retention, keep at most this many rotated segments (default: all).
    pub max_segments: Option<u64>,
    /// 1-based line.
    pub line: u32,
    /// Lines of its keys.
    pub keys: KeyLines,
}
