//! The toolkit's own view of a zone/conduit model: what check, report, assess, compile and probe
//! need, with the YAML line of every element.
//!
//! The model file is loaded by `zonegate-policy` (see [`crate::load`]); this module holds a plain,
//! owned copy shaped for the analyses so that they do not depend on every detail of the loader's
//! types. [`crate::adapter`] fills it from a loaded `zonegate_policy::Model`. Tests may also build a
//! [`Site`] by hand.
//!
//! Value types come from the policy and codec crates rather than being redefined here: networks
//! are [`zonegate_policy::Cidr`], Purdue levels [`zonegate_policy::PurdueLevel`], FR names
//! [`zonegate_policy::Fr`], function names and classes from `zonegate_policy::function_name` and
//! the codec's `FunctionCode::access`. [`SlVector`] stays: it is what the analyses compute with.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;
use zonegate_modbus::{Access, FunctionCode};
use zonegate_policy::{Cidr, Fr, PurdueLevel, SecurityLevel};

/// A security level per foundational requirement (0 = none / not reached, 1..=4), indexed in
/// [`Fr::ALL`] order.
///
/// The toolkit computes with these (achieved levels, per-FR maxima); [`SlVector::from_policy`]
/// fills one from the model's [`zonegate_policy::SecurityLevel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlVector(pub [u8; 7]);

impl SlVector {
    /// The model's level, with FRs a per-FR vector leaves out at 0.
    pub fn from_policy(l: &SecurityLevel) -> Self {
        Self(Fr::ALL.map(|fr| l.get(fr).unwrap_or(0)))
    }

    /// The same level for every FR.
    pub fn uniform(level: u8) -> Self {
        Self([level; 7])
    }

    /// The highest level over the FRs.
    pub fn max(&self) -> u8 {
        self.0.iter().copied().max().unwrap_or(0)
    }

    /// Per-FR maximum of two vectors.
    pub fn join(&self, other: &Self) -> Self {
        let mut out = self.0;
        for (o, b) in out.iter_mut().zip(other.0) {
            *o = (*o).max(b);
        }
        Self(out)
    }

    /// True when every FR has the same level.
    pub fn is_uniform(&self) -> bool {
        self.0.iter().all(|l| *l == self.0[0])
    }

    /// "SL 2" when uniform, else "IAC 3, UC 3, SI 3, DC 2, RDF 3, TRE 2, RA 3".
    pub fn display(&self) -> String {
        if self.is_uniform() {
            format!("SL {}", self.0[0])
        } else {
            Fr::ALL
                .iter()
                .zip(self.0)
                .map(|(fr, l)| format!("{fr} {l}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// A whole model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Site {
    /// The file name as given (used in findings and SARIF).
    pub file: String,
    /// `facility`.
    pub facility: Option<String>,
    /// `assessment_date`.
    pub assessment_date: Option<String>,
    /// `standard`.
    pub standard: Option<String>,
    /// `zones[]`, in file order.
    pub zones: Vec<Zone>,
    /// `conduits[]`, in file order.
    pub conduits: Vec<Conduit>,
    /// `audit`, when present.
    pub audit: Option<Audit>,
    /// `replications` (one-way, see [`crate::replication`]).
    #[serde(skip)]
    pub replications: Vec<zonegate_policy::Replication>,
}

/// One zone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Zone {
    /// `zone_id`.
    pub id: String,
    /// YAML line of the zone.
    pub line: u32,
    /// `name`.
    pub name: Option<String>,
    /// `purdue_level`, when given.
    #[serde(serialize_with = "purdue_as_span")]
    pub purdue: Option<PurdueLevel>,
    /// `security_level_target`, when given.
    pub sl_t: Option<SlVector>,
    /// `criticality` as written.
    pub criticality: Option<String>,
    /// `networks`, each with its line.
    #[serde(serialize_with = "networks_as_text")]
    pub networks: Vec<(Cidr, u32)>,
    /// `assets`.
    pub assets: Vec<Asset>,
    /// `allowed_conduits`: `None` when the key is absent.
    pub allowed_conduits: Option<Vec<(String, u32)>>,
    /// `security_requirements` as written.
    pub security_requirements: Vec<String>,
}

/// Serializes `purdue` as `{"lo": 1.0, "hi": 2.0}` (or null).
fn purdue_as_span<S: serde::Serializer>(p: &Option<PurdueLevel>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Span {
        lo: f32,
        hi: f32,
    }
    p.map(|p| Span {
        lo: p.low(),
        hi: p.high(),
    })
    .serialize(s)
}

/// Serializes `networks` as `[["10.20.0.0/16", 12], ...]`.
fn networks_as_text<S: serde::Serializer>(v: &[(Cidr, u32)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(c, line)| (c.to_string(), *line)))
}

/// One asset of a zone: a descriptive string, or a structured asset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Asset {
    /// `id` of a structured asset.
    pub id: Option<String>,
    /// The description (a string asset) or the id.
    pub label: String,
    /// YAML line.
    pub line: u32,
    /// `address`.
    pub address: Option<IpAddr>,
    /// `unit_ids`.
    pub unit_ids: Vec<u8>,
    /// `kind` as written (plc, rtu, hmi, ews, historian, sis, server, other).
    pub kind: Option<String>,
}

/// One entry of `protocols_allowed`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Protocol {
    /// `protocol`.
    pub protocol: String,
    /// `port`.
    pub port: Option<u16>,
    /// `direction` prose.
    pub direction: Option<String>,
    /// `security_mode` prose.
    pub security_mode: Option<String>,
    /// YAML line.
    pub line: u32,
}

/// Where a gateway forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scheme", rename_all = "lowercase")]
pub enum Upstream {
    /// Modbus TCP.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Modbus/TCP Security (TLS).
    Tls {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Modbus RTU on a serial line.
    Rtu {
        /// Serial device path.
        path: String,
    },
}

impl Upstream {
    /// True when the upstream link is cleartext Modbus (TCP or RTU).
    pub fn is_plaintext(&self) -> bool {
        !matches!(self, Self::Tls { .. })
    }

    /// The upstream IP address when the host is a literal address.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Tcp { host, .. } | Self::Tls { host, .. } => host.parse().ok(),
            Self::Rtu { .. } => None,
        }
    }

    /// `tcp://10.0.0.1:502`-style text.
    pub fn display(&self) -> String {
        match self {
            Self::Tcp { host, port } => format!("tcp://{}:{port}", bracket(host)),
            Self::Tls { host, port } => format!("tls://{}:{port}", bracket(host)),
            Self::Rtu { path } => format!("rtu://{path}"),
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The `gateway:` block of a conduit.
#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    /// YAML line.
    pub line: u32,
    /// `listen` address.
    pub listen: std::net::SocketAddr,
    /// `upstream`.
    pub upstream: Upstream,
    /// True for `mode: enforce`, false for `monitor`.
    pub enforce: bool,
    /// `deny` action as text: exception | drop | close.
    pub deny: String,
    /// True when clients must connect with TLS (Modbus/TCP Security on the listener).
    pub tls_listener: bool,
    /// True when the listener authenticates clients by certificate (and maps roles).
    pub client_auth: bool,
    /// `max_connections`.
    pub max_connections: Option<usize>,
    /// `request_timeout` in milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// `idle_timeout` in milliseconds.
    pub idle_timeout_ms: Option<u64>,
}

/// Modbus tables, in the order of [`Rule::tables`].
pub const TABLES: [&str; 4] = ["coils", "discrete", "input", "holding"];

/// One gateway rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    /// `id`.
    pub id: String,
    /// YAML line.
    pub line: u32,
    /// `from` entries (zone ids, asset ids or CIDRs), each with its line.
    pub from: Vec<(String, u32)>,
    /// `unit_ids`: `None` = any unit.
    pub unit_ids: Option<Vec<u8>>,
    /// Function codes allowed (classes and names expanded).
    pub functions: BTreeSet<u8>,
    /// Inclusive address ranges per table, in [`TABLES`] order.
    pub tables: [Vec<(u16, u16)>; 4],
    /// `values: {min, max}`.
    pub values: Option<(i64, i64)>,
    /// `rate` as written ("2/s").
    pub rate: Option<String>,
    /// TLS roles the rule requires (empty = any).
    pub roles: Vec<String>,
    /// `justification`.
    pub justification: Option<String>,
}

impl Rule {
    /// True when the rule allows any write-class function.
    pub fn allows_write(&self) -> bool {
        self.functions.iter().any(|f| is_write(*f))
    }

    /// True when the justification is present and not blank.
    pub fn is_justified(&self) -> bool {
        self.justification
            .as_deref()
            .is_some_and(|j| !j.trim().is_empty())
    }
}

/// One conduit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Conduit {
    /// `conduit_id`.
    pub id: String,
    /// YAML line.
    pub line: u32,
    /// `name`.
    pub name: Option<String>,
    /// `connects` zone ids, each with its line.
    pub connects: Vec<(String, u32)>,
    /// `security_level`.
    pub sl: Option<SlVector>,
    /// `protocols_allowed`.
    pub protocols: Vec<Protocol>,
    /// `controls` prose.
    pub controls: Vec<String>,
    /// `gateway`, when zonegate enforces the conduit.
    pub gateway: Option<Gateway>,
    /// `rules`.
    pub rules: Vec<Rule>,
}

/// The `audit:` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    /// YAML line.
    pub line: u32,
    /// `path` (None = stdout).
    pub path: Option<String>,
    /// `sync` as text.
    pub sync: Option<String>,
    /// `on_failure` as text.
    pub on_failure: Option<String>,
    /// True when a signing key for checkpoints is configured.
    pub signing: bool,
    /// True when records are forwarded to a central syslog/SIEM.
    pub syslog: bool,
    /// True when rotation by size is configured.
    pub rotation: bool,
}

/// The DESIGN.md name of a function code (the policy's / codec's names), `fc<N>` for others.
pub fn fc_name(fc: u8) -> String {
    match zonegate_policy::function_name(fc) {
        Some(n) => n.to_owned(),
        None if fc == 90 => "fc90 (Schneider UMAS)".to_owned(),
        None => format!("fc{fc}"),
    }
}

/// True for a write-class function code (the codec's [`Access`] of the code).
pub fn is_write(fc: u8) -> bool {
    FunctionCode::new(fc).access() == Access::Write
}

/// Function codes that need a written justification (reconnaissance, file and programming access).
pub const SENSITIVE_FCS: [u8; 6] = [8, 17, 20, 21, 43, 90];

/// The table indexes (into [`TABLES`]) a function code touches.
pub fn fc_tables(fc: u8) -> &'static [usize] {
    match fc {
        1 | 5 | 15 => &[0],
        2 => &[1],
        4 => &[2],
        3 | 6 | 16 | 22 | 23 | 24 => &[3],
        _ => &[],
    }
}

/// What a `from` entry (or any name) refers to.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A zone (index into `zones`).
    Zone(usize),
    /// An asset: (zone index, asset index).
    Asset(usize, usize),
    /// A CIDR block.
    Cidr(Cidr),
    /// Nothing the model defines.
    Unknown,
}

impl Site {
    /// The index of the zone with this id.
    pub fn zone_index(&self, id: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.id == id)
    }

    /// The zone with this id.
    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }

    /// The conduit with this id.
    pub fn conduit(&self, id: &str) -> Option<&Conduit> {
        self.conduits.iter().find(|c| c.id == id)
    }

    /// Finds a structured asset by id: (zone index, asset index).
    pub fn asset(&self, id: &str) -> Option<(usize, usize)> {
        for (zi, z) in self.zones.iter().enumerate() {
            for (ai, a) in z.assets.iter().enumerate() {
                if a.id.as_deref() == Some(id) {
                    return Some((zi, ai));
                }
            }
        }
        None
    }

    /// Resolves a `from` entry: zone id first, then asset id, then CIDR or address.
    pub fn resolve(&self, name: &str) -> Source {
        if let Some(z) = self.zone_index(name) {
            return Source::Zone(z);
        }
        if let Some((z, a)) = self.asset(name) {
            return Source::Asset(z, a);
        }
        match name.parse::<Cidr>() {
            Ok(c) => Source::Cidr(c),
            Err(_) => Source::Unknown,
        }
    }

    /// The address blocks a `from` entry stands for (a zone: its networks, else its assets'
    /// addresses; an asset: its address; a CIDR: itself).
    pub fn source_blocks(&self, name: &str) -> Vec<Cidr> {
        match self.resolve(name) {
            Source::Zone(z) => self.zone_blocks(z),
            Source::Asset(z, a) => self.zones[z].assets[a]
                .address
                .map(Cidr::host)
                .into_iter()
                .collect(),
            Source::Cidr(c) => vec![c],
            Source::Unknown => Vec::new(),
        }
    }

    /// A zone's address blocks: its networks, plus the addresses of its assets that lie outside
    /// them (as the policy resolves a zone used as a rule source).
    pub fn zone_blocks(&self, zone: usize) -> Vec<Cidr> {
        let z = &self.zones[zone];
        let mut out: Vec<Cidr> = z.networks.iter().map(|(c, _)| *c).collect();
        for a in &z.assets {
            if let Some(ip) = a.address {
                if !out.iter().any(|c| c.contains(ip)) {
                    out.push(Cidr::host(ip));
                }
            }
        }
        out
    }

    /// The zones whose networks contain `addr`, or that hold an asset with that address.
    pub fn zones_of_address(&self, addr: IpAddr) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, z) in self.zones.iter().enumerate() {
            let in_net = z.networks.iter().any(|(c, _)| c.contains(addr));
            let is_asset = z.assets.iter().any(|a| a.address == Some(addr));
            if in_net || is_asset {
                out.push(i);
            }
        }
        out
    }

    /// The zones a conduit connects that exist, as indexes (duplicates removed, file order).
    pub fn conduit_zones(&self, c: &Conduit) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for (id, _) in &c.connects {
            if let Some(i) = self.zone_index(id) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out
    }

    /// The zone a gateway conduit protects (where the devices are): the connected zone holding
    /// the upstream address, else the connected zone holding assets with the rules' unit ids,
    /// else the connected zone with the lowest Purdue level (the last one listed on a tie).
    pub fn target_zone(&self, c: &Conduit) -> Option<usize> {
        let zones = self.conduit_zones(c);
        if let Some(ip) = c.gateway.as_ref().and_then(|g| g.upstream.ip()) {
            // A zone whose networks hold the address wins over one that merely lists it.
            let by_net = zones
                .iter()
                .copied()
                .find(|z| self.zones[*z].networks.iter().any(|(n, _)| n.contains(ip)));
            let by_asset = zones
                .iter()
                .copied()
                .find(|z| self.zones[*z].assets.iter().any(|a| a.address == Some(ip)));
            if let Some(z) = by_net.or(by_asset) {
                return Some(z);
            }
        }
        let units: BTreeSet<u8> = c
            .rules
            .iter()
            .flat_map(|r| r.unit_ids.iter().flatten().copied())
            .collect();
        if !units.is_empty() {
            if let Some(z) = zones.iter().copied().find(|z| {
                self.zones[*z]
                    .assets
                    .iter()
                    .any(|a| a.unit_ids.iter().any(|u| units.contains(u)))
            }) {
                return Some(z);
            }
        }
        let mut best: Option<usize> = None;
        for z in zones {
            let lvl = self.zones[z].purdue.map_or(f32::MAX, |p| p.low());
            let better = match best {
                None => true,
                Some(b) => lvl <= self.zones[b].purdue.map_or(f32::MAX, |p| p.low()),
            };
            if better {
                best = Some(z);
            }
        }
        best
    }

    /// The zones a rule's sources belong to (a CIDR belongs to every zone whose networks
    /// overlap it).
    pub fn source_zones(&self, rule: &Rule) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for (name, _) in &rule.from {
            match self.resolve(name) {
                Source::Zone(z) | Source::Asset(z, _) => {
                    out.insert(z);
                }
                Source::Cidr(c) => {
                    for (i, z) in self.zones.iter().enumerate() {
                        if z.networks.iter().any(|(n, _)| n.overlaps(&c)) {
                            out.insert(i);
                        }
                        if z.assets
                            .iter()
                            .any(|a| a.address.is_some_and(|ip| c.contains(ip)))
                        {
                            out.insert(i);
                        }
                    }
                }
                Source::Unknown => {}
            }
        }
        out
    }

    /// The effective target SL of a conduit: its `security_level`, else the per-FR maximum of
    /// its zones' SL-T.
    pub fn conduit_target(&self, c: &Conduit) -> Option<SlVector> {
        if let Some(sl) = c.sl {
            return Some(sl);
        }
        self.zones_target(c)
    }

    /// Per-FR maximum of the SL-T of the zones a conduit connects.
    pub fn zones_target(&self, c: &Conduit) -> Option<SlVector> {
        let mut out: Option<SlVector> = None;
        for z in self.conduit_zones(c) {
            if let Some(t) = self.zones[z].sl_t {
                out = Some(match out {
                    None => t,
                    Some(o) => o.join(&t),
                });
            }
        }
        out
    }
}

impl Zone {
    /// True for a zone holding a safety instrumented system: an asset of kind `sis`, or a
    /// criticality that names safety / SIS / SIL.
    pub fn is_sis(&self) -> bool {
        let kind = self.assets.iter().any(|a| {
            a.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("sis"))
        });
        let crit = self.criticality.as_deref().is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c.contains("safety") || c.contains("sis") || c.contains("sil")
        });
        kind || crit
    }

    /// Name for humans: "Z1-CTRL (HVAC control)".
    pub fn title(&self) -> String {
        match &self.name {
            Some(n) => format!("{} ({n})", self.id),
            None => self.id.clone(),
        }
    }
}

impl Conduit {
    /// True when the conduit carries Modbus (declared in `protocols_allowed` or a gateway).
    pub fn carries_modbus(&self) -> bool {
        self.gateway.is_some()
            || self
                .protocols
                .iter()
                .any(|p| p.protocol.to_ascii_lowercase().contains("modbus") || p.port == Some(502))
    }

    /// The cleartext Modbus interfaces of the conduit, described for a finding ("gateway upstream
    /// tcp://...", "protocols_allowed: Modbus TCP port 502"), each with its line.
    pub fn plaintext_modbus(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        if let Some(g) = &self.gateway {
            if !g.tls_listener {
                out.push((
                    format!("gateway listener {} is Modbus TCP without TLS", g.listen),
                    g.line,
                ));
            }
            if g.upstream.is_plaintext() {
                out.push((
                    format!(
                        "gateway upstream {} is cleartext Modbus",
                        g.upstream.display()
                    ),
                    g.line,
                ));
            }
        }
        for p in &self.protocols {
            if protocol_is_plaintext_modbus(p) {
                let port = p.port.map(|n| format!(" port {n}")).unwrap_or_default();
                out.push((format!("protocols_allowed: {}{port}", p.protocol), p.line));
            }
        }
        out
    }

    /// True when every Modbus interface of the conduit is protected by TLS (mbaps).
    pub fn modbus_is_secure(&self) -> bool {
        self.carries_modbus() && self.plaintext_modbus().is_empty()
    }

    /// True when the conduit is protected by TLS with client certificates (roles).
    pub fn has_client_auth(&self) -> bool {
        match &self.gateway {
            Some(g) => g.tls_listener && g.client_auth,
            None => {
                self.carries_modbus()
                    && self.protocols.iter().all(|p| {
                        !is_modbus_protocol(p) || {
                            let s = lower(&p.security_mode);
                            !protocol_is_plaintext_modbus(p)
                                && (s.contains("mutual") || s.contains("role"))
                        }
                    })
            }
        }
    }
}

fn lower(s: &Option<String>) -> String {
    s.as_deref().unwrap_or("").to_ascii_lowercase()
}

fn is_modbus_protocol(p: &Protocol) -> bool {
    p.protocol.to_ascii_lowercase().contains("modbus") || p.port == Some(502) || p.port == Some(802)
}

/// True when a `protocols_allowed` entry is Modbus without TLS: its security mode says plaintext
/// (or none), or it is Modbus / port 502 and nothing names TLS, mbaps, Modbus Security or port 802.
pub fn protocol_is_plaintext_modbus(p: &Protocol) -> bool {
    if !is_modbus_protocol(p) {
        return false;
    }
    let mode = lower(&p.security_mode);
    if mode.contains("plaintext")
        || mode.contains("cleartext")
        || mode.contains("clear text")
        || mode.trim() == "none"
    {
        return true;
    }
    let proto = p.protocol.to_ascii_lowercase();
    let secure = |s: &str| s.contains("tls") || s.contains("mbaps") || s.contains("security");
    !(secure(&proto) || secure(&mode) || p.port == Some(802))
}
