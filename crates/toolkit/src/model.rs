//! The analyses' view of a loaded model: [`zonegate_policy::Model`] itself plus what the
//! compiled policy says each rule allows.
//!
//! There is one model: the policy crate's. [`Site`] owns it (and derefs to it), and adds, per
//! rule, an [`Allowed`] read from the compiled [`zonegate_policy::Policy`] (see
//! [`crate::allowed`]), so that no output lists a function the gateway would deny. The helpers
//! here only borrow: lookups (zone by id, the zone a conduit protects), small facts the checks
//! share (is this zone a SIS, is this conduit cleartext Modbus) and [`RuleView`], a rule with its
//! compiled facts next to it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::Deref;

use serde::Serialize;
use zonegate_modbus::{Access, FunctionCode, Table};
use zonegate_policy as p;
use zonegate_policy::{AddressSet, Cidr, Fr, GatewaySettings, Mode, SecurityLevel, Unsupported};

use crate::allowed::{self, Allowed};

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

    /// Per-FR minimum of two vectors.
    pub fn meet(&self, other: &Self) -> Self {
        let mut out = self.0;
        for (o, b) in out.iter_mut().zip(other.0) {
            *o = (*o).min(b);
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

/// A loaded model with what its compiled rules allow.
#[derive(Debug, Clone)]
pub struct Site {
    model: p::Model,
    /// Per conduit, per rule (model order).
    allowed: Vec<Vec<Allowed>>,
}

impl Deref for Site {
    type Target = p::Model;

    fn deref(&self) -> &p::Model {
        &self.model
    }
}

/// The Modbus tables in the order the toolkit lists them.
pub const TABLES: [Table; 4] = [
    Table::Coils,
    Table::DiscreteInputs,
    Table::InputRegisters,
    Table::HoldingRegisters,
];

/// A rule with what its compiled form allows.
#[derive(Debug, Clone, Copy)]
pub struct RuleView<'a> {
    /// The rule as loaded.
    pub rule: &'a p::Rule,
    /// What the compiled rule allows.
    pub allowed: &'a Allowed,
}

impl<'a> Deref for RuleView<'a> {
    type Target = p::Rule;

    fn deref(&self) -> &p::Rule {
        self.rule
    }
}

impl<'a> RuleView<'a> {
    /// Function codes the compiled rule allows for some request.
    pub fn functions(&self) -> &'a BTreeSet<u8> {
        &self.allowed.functions
    }

    /// The networks the compiled rule's `from` resolved to.
    pub fn sources(&self) -> &'a [Cidr] {
        &self.allowed.sources
    }

    /// True when the compiled rule allows some write-class function.
    pub fn allows_write(&self) -> bool {
        self.allowed.functions.iter().any(|f| is_write(*f))
    }

    /// The function codes the rule's `functions:` names (classes expanded as written, before
    /// the policy decides which of them can ever pass).
    pub fn named_codes(&self) -> BTreeSet<u8> {
        self.rule
            .functions
            .iter()
            .flat_map(|f| f.value.codes().iter().copied())
            .collect()
    }

    /// True when the justification is present and not blank.
    pub fn is_justified(&self) -> bool {
        self.rule
            .justification
            .as_deref()
            .is_some_and(|j| !j.trim().is_empty())
    }
}

/// A rule's address set for a table.
pub fn table_set(r: &p::Rule, t: Table) -> &AddressSet {
    match t {
        Table::Coils => &r.coils,
        Table::DiscreteInputs => &r.discrete,
        Table::InputRegisters => &r.input,
        _ => &r.holding,
    }
}

/// The name of a table as the model file spells it (`coils`, `discrete`, `input`, `holding`).
pub fn table_name(t: Table) -> &'static str {
    t.as_str()
}

/// The docs/DESIGN.md name of a function code (the policy's / codec's names), `fc<N>` for others.
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
    /// Wraps a loaded model and reads what each of its rules allows from the compiled policy.
    pub fn new(model: p::Model) -> Self {
        let allowed = (0..model.conduits.len())
            .map(|ci| {
                (0..model.conduits[ci].rules.len())
                    .map(|ri| allowed::analyse(&model, ci, ri))
                    .collect()
            })
            .collect();
        Self { model, allowed }
    }

    /// The loaded model.
    pub fn model(&self) -> &p::Model {
        &self.model
    }

    /// The rules of a conduit of this model, each with its compiled facts.
    pub fn rules<'a>(&'a self, c: &'a p::Conduit) -> Vec<RuleView<'a>> {
        let ci = self.model.conduits.iter().position(|x| std::ptr::eq(x, c));
        match ci.and_then(|ci| self.allowed.get(ci)) {
            Some(list) => c
                .rules
                .iter()
                .zip(list)
                .map(|(rule, allowed)| RuleView { rule, allowed })
                .collect(),
            None => Vec::new(),
        }
    }

    /// The index of the zone with this id.
    pub fn zone_index(&self, id: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.id == id)
    }

    /// Finds a structured asset by id: (zone index, asset index).
    pub fn asset_index(&self, id: &str) -> Option<(usize, usize)> {
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
        if let Some((z, a)) = self.asset_index(name) {
            return Source::Asset(z, a);
        }
        match name.parse::<Cidr>() {
            Ok(c) => Source::Cidr(c),
            Err(_) => Source::Unknown,
        }
    }

    /// A zone's address blocks: its networks, plus the addresses of its assets that lie outside
    /// them (as the policy resolves a zone used as a rule source).
    pub fn zone_blocks(&self, zone: usize) -> Vec<Cidr> {
        let z = &self.zones[zone];
        let mut out: Vec<Cidr> = z.networks.iter().map(|n| n.value).collect();
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
            let in_net = z.networks.iter().any(|c| c.contains(addr));
            let is_asset = z.assets.iter().any(|a| a.address == Some(addr));
            if in_net || is_asset {
                out.push(i);
            }
        }
        out
    }

    /// The zones a conduit connects that exist, as indexes (duplicates removed, file order).
    pub fn conduit_zones(&self, c: &p::Conduit) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for id in &c.connects {
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
    pub fn target_zone(&self, c: &p::Conduit) -> Option<usize> {
        let zones = self.conduit_zones(c);
        if let Some(ip) = c.gateway.as_ref().and_then(|g| upstream_ip(&g.upstream)) {
            // A zone whose networks hold the address wins over one that merely lists it.
            let by_net = zones
                .iter()
                .copied()
                .find(|z| self.zones[*z].networks.iter().any(|n| n.contains(ip)));
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
            let lvl = self.zones[z].purdue_level.map_or(f32::MAX, |p| p.low());
            let better = match best {
                None => true,
                Some(b) => lvl <= self.zones[b].purdue_level.map_or(f32::MAX, |p| p.low()),
            };
            if better {
                best = Some(z);
            }
        }
        best
    }

    /// The zones a rule's sources belong to (a CIDR belongs to every zone whose networks
    /// overlap it).
    pub fn source_zones(&self, rule: &p::Rule) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for s in &rule.from {
            match self.resolve(&s.text) {
                Source::Zone(z) | Source::Asset(z, _) => {
                    out.insert(z);
                }
                Source::Cidr(c) => {
                    for (i, z) in self.zones.iter().enumerate() {
                        if z.networks.iter().any(|n| n.overlaps(&c)) {
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
    pub fn conduit_target(&self, c: &p::Conduit) -> Option<SlVector> {
        if let Some(sl) = c.sl() {
            return Some(sl);
        }
        self.zones_target(c)
    }

    /// Per-FR maximum of the SL-T of the zones a conduit connects.
    pub fn zones_target(&self, c: &p::Conduit) -> Option<SlVector> {
        let mut out: Option<SlVector> = None;
        for z in self.conduit_zones(c) {
            if let Some(t) = self.zones[z].sl_t() {
                out = Some(match out {
                    None => t,
                    Some(o) => o.join(&t),
                });
            }
        }
        out
    }
}

/// The upstream IP address when the host is a literal address.
pub fn upstream_ip(u: &p::Upstream) -> Option<IpAddr> {
    u.host_port().and_then(|(h, _)| h.parse().ok())
}

/// True when the upstream link is cleartext Modbus (TCP or RTU).
pub fn upstream_is_plaintext(u: &p::Upstream) -> bool {
    !matches!(u, p::Upstream::Tls { .. })
}

/// True for a serial (RTU) upstream: a serial line, or an RTU bus behind an RTU-over-TCP
/// converter (`rtu+tcp://`).
pub fn upstream_is_serial(u: &p::Upstream) -> bool {
    u.is_bus()
}

/// `tcp://10.0.0.1:502`, `tls://host:802`, `rtu:///dev/ttyUSB0`: the upstream without its
/// options.
pub fn upstream_short(u: &p::Upstream) -> String {
    match u {
        p::Upstream::Rtu { path, .. } => format!("rtu://{}", path.display()),
        other => match other.host_port() {
            Some((h, port)) => {
                let scheme = match other {
                    p::Upstream::Tls { .. } => "tls",
                    p::Upstream::RtuTcp { .. } => "rtu+tcp",
                    _ => "tcp",
                };
                if h.contains(':') {
                    format!("{scheme}://[{h}]:{port}")
                } else {
                    format!("{scheme}://{h}:{port}")
                }
            }
            None => other.to_string(),
        },
    }
}

/// Facts about a gateway block the analyses share.
pub trait GatewayExt {
    /// True for `mode: enforce`.
    fn enforce(&self) -> bool;
    /// Whether this build's `zonegate run` can run this gateway (the policy crate's one
    /// decision, [`GatewaySettings::runnable`]).
    fn runnable_now(&self) -> Result<(), Unsupported>;
    /// True when the gateway is in enforce mode AND this build can run it: the only case in
    /// which a report may credit zonegate's enforcement.
    fn enforced(&self) -> bool {
        self.enforce() && self.runnable_now().is_ok()
    }
}

impl GatewayExt for GatewaySettings {
    fn enforce(&self) -> bool {
        self.mode == Mode::Enforce
    }

    fn runnable_now(&self) -> Result<(), Unsupported> {
        self.runnable()
    }
}

/// Facts about a zone the analyses share.
pub trait ZoneExt {
    /// `security_level_target` as a vector.
    fn sl_t(&self) -> Option<SlVector>;
    /// True for a zone holding a safety instrumented system: an asset of kind `sis`, or a
    /// criticality that names safety / SIS / SIL.
    fn is_sis(&self) -> bool;
    /// Name for humans: "Z1-CTRL (HVAC control)".
    fn title(&self) -> String;
}

impl ZoneExt for p::Zone {
    fn sl_t(&self) -> Option<SlVector> {
        self.security_level_target
            .as_ref()
            .map(SlVector::from_policy)
    }

    fn is_sis(&self) -> bool {
        let kind = self
            .assets
            .iter()
            .any(|a| a.kind == Some(p::AssetKind::Sis));
        let crit = self.criticality.as_deref().is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c.contains("safety") || c.contains("sis") || c.contains("sil")
        });
        kind || crit
    }

    fn title(&self) -> String {
        match &self.name {
            Some(n) => format!("{} ({n})", self.id),
            None => self.id.clone(),
        }
    }
}

/// How an asset is named in findings and reports: a descriptive asset by its name or
/// description, a structured one by its id.
pub fn asset_label(a: &p::Asset) -> String {
    if a.descriptive {
        a.name
            .clone()
            .or_else(|| a.description.clone())
            .unwrap_or_else(|| a.label().to_owned())
    } else {
        a.label().to_owned()
    }
}

/// The first port of a `protocols_allowed` entry.
pub fn protocol_port(p: &p::ProtocolAllowance) -> Option<u16> {
    p.ports.first().copied()
}

/// Facts about a conduit the analyses share.
pub trait ConduitExt {
    /// `security_level` as a vector.
    fn sl(&self) -> Option<SlVector>;
    /// True when the conduit carries Modbus (declared in `protocols_allowed` or a gateway).
    fn carries_modbus(&self) -> bool;
    /// The cleartext Modbus interfaces of the conduit, described for a finding, each with its
    /// line.
    fn plaintext_modbus(&self) -> Vec<(String, u32)>;
    /// True when every Modbus interface of the conduit is protected by TLS (mbaps).
    fn modbus_is_secure(&self) -> bool {
        self.carries_modbus() && self.plaintext_modbus().is_empty()
    }
    /// True when the conduit is protected by TLS with client certificates (roles).
    fn has_client_auth(&self) -> bool;
    /// True when the conduit is a serial line (an RTU upstream, or a protocol entry that names
    /// RTU, RS-485 or a serial line).
    fn is_serial(&self) -> bool;
    /// True when zonegate enforces the conduit with this build: a gateway in enforce mode that
    /// `zonegate run` can start.
    fn enforced(&self) -> bool;
}

impl ConduitExt for p::Conduit {
    fn sl(&self) -> Option<SlVector> {
        self.security_level.as_ref().map(SlVector::from_policy)
    }

    fn carries_modbus(&self) -> bool {
        self.gateway.is_some()
            || self.protocols_allowed.iter().any(|p| {
                p.protocol.to_ascii_lowercase().contains("modbus") || protocol_port(p) == Some(502)
            })
    }

    fn plaintext_modbus(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        if let Some(g) = &self.gateway {
            // A listener without a `tls:` block is Modbus TCP in clear; with one it is
            // Modbus/TCP Security with mutual TLS (issue 10).
            if let Some(line) = &g.listen_serial {
                out.push((
                    format!(
                        "gateway serial listener {} is Modbus RTU in clear",
                        line.url()
                    ),
                    g.line,
                ));
            } else if g.tls.is_none() {
                out.push((
                    format!("gateway listener {} is Modbus TCP without TLS", g.listen),
                    g.line,
                ));
            }
            // Behind a `tls:` listener the gateway is the boundary of the device's zone: a
            // tcp:// upstream is the device's own segment, not the conduit (issue 10: a TLS
            // listener meets SR 3.1/4.1 for the conduit).
            if g.tls.is_none() && upstream_is_plaintext(&g.upstream) {
                out.push((
                    format!(
                        "gateway upstream {} is cleartext Modbus",
                        upstream_short(&g.upstream)
                    ),
                    g.line,
                ));
            }
        }
        for p in &self.protocols_allowed {
            if protocol_is_plaintext_modbus(p) {
                let port = protocol_port(p)
                    .map(|n| format!(" port {n}"))
                    .unwrap_or_default();
                out.push((format!("protocols_allowed: {}{port}", p.protocol), p.line));
            }
        }
        out
    }

    fn has_client_auth(&self) -> bool {
        match &self.gateway {
            // A `tls:` listener always requires a client certificate chaining to `client_ca`
            // (there is no key to make it optional): SR 1.2 for that conduit.
            Some(g) => g.tls.is_some(),
            None => {
                self.carries_modbus()
                    && self.protocols_allowed.iter().all(|p| {
                        !is_modbus_protocol(p) || {
                            let s = lower(&p.security_mode);
                            !protocol_is_plaintext_modbus(p)
                                && (s.contains("mutual") || s.contains("role"))
                        }
                    })
            }
        }
    }

    fn is_serial(&self) -> bool {
        let gw = self
            .gateway
            .as_ref()
            .is_some_and(|g| upstream_is_serial(&g.upstream) || g.listen_serial.is_some());
        let prose = self.protocols_allowed.iter().any(|p| {
            let t = p.protocol.to_ascii_lowercase();
            t.contains("rtu") || t.contains("rs-485") || t.contains("rs485") || t.contains("serial")
        });
        gw || prose
    }

    fn enforced(&self) -> bool {
        self.gateway.as_ref().is_some_and(GatewayExt::enforced)
    }
}

fn lower(s: &Option<String>) -> String {
    s.as_deref().unwrap_or("").to_ascii_lowercase()
}

fn is_modbus_protocol(p: &p::ProtocolAllowance) -> bool {
    let port = protocol_port(p);
    p.protocol.to_ascii_lowercase().contains("modbus") || port == Some(502) || port == Some(802)
}

/// True when a `protocols_allowed` entry is Modbus without TLS: its security mode says plaintext
/// (or none), or it is Modbus / port 502 and nothing names TLS, mbaps, Modbus Security or port 802.
pub fn protocol_is_plaintext_modbus(p: &p::ProtocolAllowance) -> bool {
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
    !(secure(&proto) || secure(&mode) || protocol_port(p) == Some(802))
}
