//! The compiled policy and the pure decision function.
//!
//! [`Policy::compile`] turns a loaded [`Model`] into per-conduit rule lists with everything
//! resolved ahead of time: `from` entries become address networks (zone `networks` plus the
//! zone's asset addresses, asset addresses, CIDRs), function selectors become a 128-bit set plus
//! FC 8 / FC 43 sub-function lists, unit ids a 256-bit set, address ranges sorted merged lists.
//!
//! [`ConduitPolicy::decide`] walks the rules in order; the first rule that allows wins, and
//! none -> deny. When no rule allows, the verdict names the step the best rule got furthest
//! in, which gives docs/DESIGN.md's exception codes: source, unit, role or function unmatched ->
//! 0x01; function allowed but an address outside -> 0x02; a written value out of bounds ->
//! 0x03; rate limit -> 0x06. `decide` allocates nothing and reads only its arguments.

use std::net::IpAddr;
use std::time::Instant;

use zonegate_modbus::{Request, Table, UnitId};

use crate::error::{LoadError, LoadErrorKind, LoadErrors};
use crate::model::{
    AddressSet, FileRange, FunctionSelector, GatewaySettings, Model, Rate, Rule, SourceTarget,
    U16Range, ValueBounds,
};
use crate::net::{canonical_ip, Cidr};
use crate::rate::RateLimiter;
use crate::verdict::{Denial, Verdict};

/// One request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Transaction<'a> {
    /// The client's address (IPv4-mapped IPv6 is treated as IPv4).
    pub src: IpAddr,
    /// The unit id of the request (MBAP unit id or RTU address).
    pub unit: UnitId,
    /// The parsed request.
    pub request: &'a Request<'a>,
    /// The client's TLS role (Modbus/TCP Security), if any.
    pub role: Option<&'a str>,
}

/// A set of function codes 0-127 with FC 8 / FC 43 sub-function refinements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FunctionSet {
    /// Codes allowed whatever their sub-function.
    all: u128,
    /// FC 8 sub-functions allowed when FC 8 is not in `all`.
    diag: Vec<U16Range>,
    /// FC 43 MEI types allowed when FC 43 is not in `all`.
    mei: Vec<U16Range>,
}

impl FunctionSet {
    /// Adds a selector. A class adds only the codes `bound` accepts (the codes that act on a
    /// table the rule gives ranges for); a code named on its own is always added.
    fn add(&mut self, sel: &FunctionSelector, bound: impl Fn(u8) -> bool) {
        match sel {
            FunctionSelector::Function {
                code,
                sub_functions: Some(list),
            } if *code == 8 || *code == 43 => {
                let target = if *code == 8 {
                    &mut self.diag
                } else {
                    &mut self.mei
                };
                target.extend_from_slice(list);
            }
            FunctionSelector::Class(class) => {
                for &c in class.codes() {
                    if c < 128 && bound(c) {
                        self.all |= 1u128 << c;
                    }
                }
            }
            other => {
                for &c in other.codes() {
                    if c < 128 {
                        self.all |= 1u128 << c;
                    }
                }
            }
        }
    }

    fn allows(&self, code: u8, sub: Option<u16>) -> bool {
        if code >= 128 {
            return false;
        }
        if self.all & (1u128 << code) != 0 {
            return true;
        }
        let list = match code {
            8 => &self.diag,
            43 => &self.mei,
            _ => return false,
        };
        sub.is_some_and(|s| list.iter().any(|r| r.contains(s)))
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    id: String,
    key: u64,
    sources: Vec<Cidr>,
    units: Option<[u64; 4]>,
    roles: Option<Vec<String>>,
    functions: FunctionSet,
    coils: AddressSet,
    discrete: AddressSet,
    input: AddressSet,
    holding: AddressSet,
    /// `None`: FC 20/21, when named, may touch any file record.
    file: Option<Vec<FileRange>>,
    values: Option<ValueBounds>,
    rate: Option<Rate>,
    line: u32,
}

/// What a function code of a class acts on, which decides whether a class grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Table(Table),
    File,
    /// Diagnostics, FC 43, and so on: nothing a range could bound.
    Nothing,
}

/// The target of the class members (docs/DESIGN.md function table). FC 24 reads the FIFO whose
/// pointer is a holding register; FC 23 reads and writes holding registers.
fn class_target(code: u8) -> Target {
    match code {
        1 | 5 | 15 => Target::Table(Table::Coils),
        2 => Target::Table(Table::DiscreteInputs),
        4 => Target::Table(Table::InputRegisters),
        3 | 6 | 16 | 22 | 23 | 24 => Target::Table(Table::HoldingRegisters),
        20 | 21 => Target::File,
        _ => Target::Nothing,
    }
}

impl CompiledRule {
    /// The rule id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The networks the rule's `from` resolved to.
    pub fn sources(&self) -> &[Cidr] {
        &self.sources
    }

    /// The rule's line in the model file.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The rule's rate limit.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// The key of this rule's buckets in a [`RateLimiter`] (stable across reloads while the
    /// conduit id, rule id and rate stay the same).
    pub fn rate_key(&self) -> u64 {
        self.key
    }

    /// True when the rule allows function `code` for some sub-function (what a report lists:
    /// the codes of the compiled rule, after class expansion).
    pub fn allows_function(&self, code: u8) -> bool {
        code < 128
            && (self.functions.all & (1u128 << code) != 0
                || (code == 8 && !self.functions.diag.is_empty())
                || (code == 43 && !self.functions.mei.is_empty()))
    }

    /// The `file:` ranges of the rule (`None` when it has none).
    pub fn file_ranges(&self) -> Option<&[FileRange]> {
        self.file.as_deref()
    }

    /// True when the rule's `from` networks contain `src` (IPv4-mapped IPv6 as IPv4).
    pub fn matches_source(&self, src: IpAddr) -> bool {
        let src = canonical_ip(src);
        self.sources.iter().any(|c| c.contains(src))
    }

    /// The allowed addresses of a table (`None` for a table this crate does not know, which
    /// then allows nothing).
    fn table(&self, t: Table) -> Option<&AddressSet> {
        match t {
            Table::Coils => Some(&self.coils),
            Table::DiscreteInputs => Some(&self.discrete),
            Table::InputRegisters => Some(&self.input),
            Table::HoldingRegisters => Some(&self.holding),
            _ => None,
        }
    }

    fn unit_ok(&self, unit: u8) -> bool {
        self.units
            .is_none_or(|set| set[usize::from(unit >> 6)] & (1u64 << (unit & 63)) != 0)
    }

    fn role_ok(&self, role: Option<&str>) -> bool {
        match (&self.roles, role) {
            (None, _) => true,
            (Some(list), Some(r)) => list.iter().any(|x| x == r),
            (Some(_), None) => false,
        }
    }

    fn addresses_ok(&self, req: &Request<'_>) -> bool {
        req.ranges().all(|(t, r)| {
            self.table(t)
                .is_some_and(|set| set.contains_span(r.start(), r.last()))
        }) && self.file_records_ok(req)
    }

    /// FC 20/21: every sub-request's file and records must lie in one `file:` range (when
    /// the rule has them; FC 20/21 named without `file:` may touch any record).
    fn file_records_ok(&self, req: &Request<'_>) -> bool {
        let Some(ranges) = &self.file else {
            return true;
        };
        let inside = |file: u16, first: u16, count: usize| {
            let Some(last) = u16::try_from(usize::from(first) + count.max(1) - 1).ok() else {
                return false;
            };
            ranges.iter().any(|r| r.contains_span(file, first, last))
        };
        match req {
            Request::ReadFileRecord(subs) => subs
                .iter()
                .all(|s| inside(s.file_number, s.record_number, usize::from(s.record_length))),
            Request::WriteFileRecord(records) => records
                .iter()
                .all(|r| inside(r.file_number, r.record_number, r.values.len())),
            _ => true,
        }
    }

    fn values_ok(&self, req: &Request<'_>) -> Result<(), Denial> {
        let Some(b) = self.values else {
            return Ok(());
        };
        if let Some(w) = req.written() {
            return if w.iter().all(|v| b.contains(v)) {
                Ok(())
            } else {
                Err(Denial::ValueOutOfBounds)
            };
        }
        match *req {
            // result = (current AND and_mask) OR (or_mask AND NOT and_mask): known only when
            // the AND mask is 0, when it is the OR mask.
            Request::MaskWriteRegister {
                and_mask, or_mask, ..
            } => {
                if and_mask == 0 {
                    if b.contains(or_mask) {
                        Ok(())
                    } else {
                        Err(Denial::ValueOutOfBounds)
                    }
                } else {
                    Err(Denial::ValueUnverifiable)
                }
            }
            Request::WriteFileRecord(_) => Err(Denial::ValueUnverifiable),
            _ => Ok(()),
        }
    }
}

/// The compiled policy of one conduit.
#[derive(Debug, Clone)]
pub struct ConduitPolicy {
    /// The conduit id.
    pub id: String,
    /// The gateway settings, when zonegate enforces this conduit.
    pub gateway: Option<GatewaySettings>,
    rules: Vec<CompiledRule>,
}

/// How far a rule got before it failed: a later step makes a more specific reason.
fn depth(d: Denial) -> u8 {
    match d {
        Denial::NoRuleForSource => 0,
        Denial::NoRuleForUnit => 1,
        Denial::RoleNotAllowed => 2,
        Denial::NoRuleForFunction => 3,
        Denial::AddressOutOfRange => 4,
        Denial::ValueOutOfBounds | Denial::ValueUnverifiable => 5,
        Denial::RateLimited => 7,
    }
}

/// The depth of a `role_not_allowed` from a rule that would have allowed the request (function,
/// addresses and values) for another role: "your role may not do this" is the most useful
/// answer, more than why some other rule did not fit. Below `rate_limited`, since the rate is
/// only ever charged to a rule whose role fits.
const ROLE_ONLY_DEPTH: u8 = 6;

/// Keeps the denial of the rule that got furthest (the first such rule on a tie).
fn note<'p>(best: &mut Option<(Denial, u8, &'p str)>, denial: Denial, rule: &'p CompiledRule) {
    note_at(best, denial, depth(denial), rule);
}

fn note_at<'p>(
    best: &mut Option<(Denial, u8, &'p str)>,
    denial: Denial,
    at: u8,
    rule: &'p CompiledRule,
) {
    if best.is_none_or(|(_, d, _)| at > d) {
        *best = Some((denial, at, rule.id.as_str()));
    }
}

impl ConduitPolicy {
    /// The compiled rules, in order.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// True when some rule of the conduit names `src` in its `from`: a connection from any
    /// other address can only ever be denied (`no_rule_for_source`), so the gateway refuses
    /// it at accept instead of letting it hold one of the conduit's connection slots.
    /// Pure and allocation-free.
    pub fn may_match_source(&self, src: IpAddr) -> bool {
        let src = canonical_ip(src);
        self.rules
            .iter()
            .any(|r| r.sources.iter().any(|c| c.contains(src)))
    }

    /// Decides one request. First rule that allows wins; none -> deny with the reason of the
    /// rule that got furthest. Consumes a rate-limit token only from the rule that allows.
    /// Allocates nothing; depends only on `tx`, this policy, `limiter` and `now`.
    pub fn decide(&self, tx: &Transaction<'_>, limiter: &RateLimiter, now: Instant) -> Verdict<'_> {
        let src = canonical_ip(tx.src);
        let unit = tx.unit.get();
        let req = tx.request;
        let code = req.function().get();
        let sub = req.sub_function();
        // The furthest failure so far, and its rule.
        let mut best: Option<(Denial, u8, &str)> = None;
        for rule in &self.rules {
            if !rule.sources.iter().any(|c| c.contains(src)) {
                continue;
            }
            if !rule.unit_ok(unit) {
                note(&mut best, Denial::NoRuleForUnit, rule);
                continue;
            }
            if !rule.role_ok(tx.role) {
                // The role is checked before anything else about the request (an unauthorised
                // peer learns nothing of address ranges), but the reason names the role when
                // only the role stood in the way (R-31: exception 01 either way).
                let only_role = rule.functions.allows(code, sub)
                    && rule.addresses_ok(req)
                    && rule.values_ok(req).is_ok();
                let at = if only_role {
                    ROLE_ONLY_DEPTH
                } else {
                    depth(Denial::RoleNotAllowed)
                };
                note_at(&mut best, Denial::RoleNotAllowed, at, rule);
                continue;
            }
            if !rule.functions.allows(code, sub) {
                note(&mut best, Denial::NoRuleForFunction, rule);
                continue;
            }
            if !rule.addresses_ok(req) {
                note(&mut best, Denial::AddressOutOfRange, rule);
                continue;
            }
            if let Err(d) = rule.values_ok(req) {
                note(&mut best, d, rule);
                continue;
            }
            if let Some(rate) = rule.rate {
                if !limiter.try_acquire(rule.key, src, rate, now) {
                    note(&mut best, Denial::RateLimited, rule);
                    continue;
                }
            }
            return Verdict::allow(&rule.id);
        }
        match best {
            Some((d, _, rule)) => Verdict::deny(d, Some(rule)),
            None => Verdict::deny(Denial::NoRuleForSource, None),
        }
    }
}

/// The compiled policy of a whole model.
#[derive(Debug, Clone)]
pub struct Policy {
    conduits: Vec<ConduitPolicy>,
    hash: String,
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl Policy {
    /// Compiles a loaded model. Fails (with every problem) when a rule's source resolves to no
    /// address (a zone with neither `networks` nor asset addresses), when two conduits share an
    /// id, or when two gateways listen on the same address.
    pub fn compile(model: &Model) -> Result<Self, LoadErrors> {
        let mut errors = Vec::new();
        let mut err = |line: u32, column: u32, path: String, message: String| {
            errors.push(LoadError {
                file: model.file.clone(),
                line,
                column,
                path,
                message,
                kind: LoadErrorKind::Invalid,
            });
        };
        let mut conduits = Vec::with_capacity(model.conduits.len());
        for (i, c) in model.conduits.iter().enumerate() {
            if let Some(first) = model.conduits[..i].iter().find(|o| o.id == c.id) {
                let (line, column) = c.keys.position("conduit_id").unwrap_or((c.line, c.column));
                err(
                    line,
                    column,
                    format!("{}.conduit_id", c.path),
                    format!(
                        "conduit id `{}` is already used at line {}",
                        c.id, first.line
                    ),
                );
            }
            if let Some(g) = &c.gateway {
                // Port 0 asks the OS for a free port: two such listeners never clash.
                // A serial listener's port is 0 too, but one line has one slave: its address
                // (the line's identity) must be unique.
                let clash = model.conduits[..i].iter().find(|o| {
                    (g.listen.port() != 0 || g.listen_serial.is_some())
                        && o.gateway.as_ref().is_some_and(|og| og.listen == g.listen)
                });
                if let Some(o) = clash {
                    let what = g.listen_serial.as_ref().map_or_else(
                        || g.listen.to_string(),
                        |l| format!("rtu://{}", l.path.display()),
                    );
                    err(
                        g.line,
                        g.column,
                        format!("{}.gateway.listen", c.path),
                        format!(
                            "{what} is already the listen address of conduit `{}` (line {})",
                            o.id, o.line
                        ),
                    );
                }
            }
            let mut rules = Vec::with_capacity(c.rules.len());
            for r in &c.rules {
                rules.push(compile_rule(model, &c.id, r, &mut err));
            }
            conduits.push(ConduitPolicy {
                id: c.id.clone(),
                // The files a gateway opens (TLS certificates, keys) resolve against the
                // model file's folder here, once, whatever the gateway's current directory.
                gateway: c.gateway.as_ref().map(|g| GatewaySettings {
                    upstream: model.resolve_upstream(&g.upstream),
                    tls: g.tls.as_ref().map(|t| t.resolved(|p| model.resolve(p))),
                    ..g.clone()
                }),
                rules,
            });
        }
        if !errors.is_empty() {
            return Err(LoadErrors::new(errors));
        }
        Ok(Self {
            conduits,
            hash: model.policy_hash(),
        })
    }

    /// Every conduit, in model order (with or without a gateway).
    pub fn conduits(&self) -> &[ConduitPolicy] {
        &self.conduits
    }

    /// The conduit with this id.
    pub fn conduit(&self, id: &str) -> Option<&ConduitPolicy> {
        self.conduits.iter().find(|c| c.id == id)
    }

    /// Hex SHA-256 of the model file the policy was compiled from (for the audit genesis and
    /// `policy_load` records).
    pub fn policy_hash(&self) -> &str {
        &self.hash
    }

    /// True when some rule has a `rate`.
    pub fn has_rate_limits(&self) -> bool {
        self.conduits
            .iter()
            .any(|c| c.rules.iter().any(|r| r.rate.is_some()))
    }
}

fn compile_rule(
    model: &Model,
    conduit: &str,
    r: &Rule,
    err: &mut impl FnMut(u32, u32, String, String),
) -> CompiledRule {
    let mut sources: Vec<Cidr> = Vec::new();
    for (i, s) in r.from.iter().enumerate() {
        let before = sources.len();
        match &s.target {
            SourceTarget::Network(c) => sources.push(*c),
            SourceTarget::Asset { asset, .. } => {
                if let Some(addr) = model.asset(asset).and_then(|(_, a)| a.address) {
                    sources.push(Cidr::host(addr));
                }
            }
            SourceTarget::Zone(z) => {
                if let Some(zone) = model.zone(z) {
                    sources.extend(zone.networks.iter().map(|n| n.value));
                    sources.extend(zone.assets.iter().filter_map(|a| a.address.map(Cidr::host)));
                    // Its serial lines: the source identity of a serial listener's requests.
                    sources.extend(
                        zone.serial
                            .iter()
                            .map(|p| Cidr::host(crate::serial::line_source(p))),
                    );
                }
            }
        }
        if sources.len() == before {
            err(
                s.line,
                s.column,
                format!("{}.from[{i}]", r.path),
                format!(
                    "`{}` resolves to no address (give the zone `networks` or its assets an `address`), so rule `{}` cannot match it",
                    s.text, r.id
                ),
            );
        }
    }
    sources.sort_by_key(|c| (c.addr().is_ipv6(), c.prefix()));
    sources.dedup();
    let units = r.unit_ids.as_ref().map(|ids| {
        let mut set = [0u64; 4];
        for &u in ids {
            set[usize::from(u >> 6)] |= 1u64 << (u & 63);
        }
        set
    });
    // A class grants only the codes that act on something the rule bounds: `[write]` with
    // holding ranges is FC 6, 16, 22, 23 and not FC 21, which touches no table and would
    // otherwise pass every address check (issue 14.6).
    let bound = |code: u8| match class_target(code) {
        Target::Table(t) => match t {
            Table::Coils => !r.coils.is_empty(),
            Table::DiscreteInputs => !r.discrete.is_empty(),
            Table::InputRegisters => !r.input.is_empty(),
            Table::HoldingRegisters => !r.holding.is_empty(),
            _ => false,
        },
        Target::File => r.file.is_some(),
        Target::Nothing => true,
    };
    let mut functions = FunctionSet::default();
    for f in &r.functions {
        functions.add(&f.value, bound);
    }
    let rate_text = r.rate.map(|x| x.to_string()).unwrap_or_default();
    CompiledRule {
        id: r.id.clone(),
        key: fnv1a(&[conduit.as_bytes(), r.id.as_bytes(), rate_text.as_bytes()]),
        sources,
        units,
        roles: r.roles.clone(),
        functions,
        coils: r.coils.clone(),
        discrete: r.discrete.clone(),
        input: r.input.clone(),
        holding: r.holding.clone(),
        file: r.file.clone(),
        values: r.values,
        rate: r.rate,
        line: r.line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_set_sub_functions() {
        let mut s = FunctionSet::default();
        s.add(
            &FunctionSelector::Function {
                code: 8,
                sub_functions: Some(vec![U16Range { start: 0, end: 0 }]),
            },
            |_| true,
        );
        s.add(
            &FunctionSelector::Function {
                code: 3,
                sub_functions: None,
            },
            |_| true,
        );
        assert!(s.allows(8, Some(0)));
        assert!(!s.allows(8, Some(4)));
        assert!(!s.allows(8, None));
        assert!(s.allows(3, None));
        assert!(!s.allows(4, None));
        assert!(!s.allows(200, None));
    }

    #[test]
    fn rate_key_is_stable_and_distinct() {
        assert_eq!(fnv1a(&[b"c", b"r"]), fnv1a(&[b"c", b"r"]));
        assert_ne!(fnv1a(&[b"c", b"r"]), fnv1a(&[b"cr", b""]));
    }
}
