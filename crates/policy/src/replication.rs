//! The model's `replications:` section: one-way replication of Modbus data (a software data
//! diode, issue 13).
//!
//! ```yaml
//! replications:
//!   - replication_id: R1-HIST
//!     connects: [Z3-OPS, Z4-DMZ]            # from, to: data flows only this way
//!     source: tcp://10.30.1.10:502           # the device read on the transmit side
//!     blocks:
//!       - {unit: 1, table: holding, range: 0-99, period: 1s}
//!     transmit: {to: 172.16.1.100:5450, key: diode.key, repeat: 2, refresh: 30s}
//!     receive: {bind: 172.16.1.100:5450, key: diode.key, serve: 172.16.1.100:502, max_age: 5s}
//! ```
//!
//! A replication is a conduit of its own: it carries no request from the receive side, so it
//! has no rules. The transmit side reads `blocks` from `source` as a Modbus master and sends
//! each snapshot over UDP to `transmit.to`; the receive side verifies what arrives on
//! `receive.bind` and serves the replica, read-only, on `receive.serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::decode::{join, parsed, seq, text, uint, Cx, Fields};
use crate::model::{KeyLines, Spanned, U16Range, Upstream};
use crate::syntax;
use crate::yaml::{Node, Value};

/// The data table a block reads (FC 1, 2, 3 or 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ReplicaTable {
    /// Coils, read with FC 1.
    Coils,
    /// Discrete inputs, read with FC 2.
    Discrete,
    /// Input registers, read with FC 4.
    Input,
    /// Holding registers, read with FC 3.
    Holding,
}

impl ReplicaTable {
    /// Every table, in wire-code order.
    pub const ALL: [Self; 4] = [Self::Coils, Self::Discrete, Self::Input, Self::Holding];

    /// The model's spelling: `coils`, `discrete`, `input`, `holding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coils => "coils",
            Self::Discrete => "discrete",
            Self::Input => "input",
            Self::Holding => "holding",
        }
    }

    /// True for the bit tables (coils, discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Self::Coils | Self::Discrete)
    }

    /// The read function code for this table.
    pub fn read_function(self) -> u8 {
        match self {
            Self::Coils => 1,
            Self::Discrete => 2,
            Self::Holding => 3,
            Self::Input => 4,
        }
    }

    /// The table a read function code reads.
    pub fn of_function(fc: u8) -> Option<Self> {
        match fc {
            1 => Some(Self::Coils),
            2 => Some(Self::Discrete),
            3 => Some(Self::Holding),
            4 => Some(Self::Input),
            _ => None,
        }
    }
}

/// How datagrams are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplicationAuth {
    /// HMAC-SHA256 under a shared secret key file (the default). Both sides hold the secret.
    HmacSha256,
    /// Ed25519: the transmit side holds the secret key, the receive side only the public key,
    /// so a compromised receive side cannot forge data.
    Ed25519,
}

impl ReplicationAuth {
    /// `hmac-sha256` or `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// One block of a device read on a period.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicationBlock {
    /// The block id carried in every datagram: its index in `blocks`.
    pub id: u16,
    /// Modbus unit id on the source, and on the replica.
    pub unit: u8,
    /// Table read.
    pub table: ReplicaTable,
    /// Zero-based addresses read, inclusive (the same addresses on the replica).
    pub range: U16Range,
    /// How often the block is read.
    pub period: Duration,
    /// 1-based line.
    pub line: u32,
    /// Key path, e.g. `replications[0].blocks[1]`.
    pub path: String,
}

impl ReplicationBlock {
    /// Number of registers or bits in the block.
    pub fn count(&self) -> u32 {
        u32::from(self.range.end) - u32::from(self.range.start) + 1
    }
}

/// The `transmit:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransmitSettings {
    /// Where datagrams go (the receive side's `bind`).
    pub to: SocketAddr,
    /// Local address the UDP socket binds (default: any address, port chosen by the system).
    pub bind: Option<SocketAddr>,
    /// Secret key file: the HMAC key, or the Ed25519 secret key.
    pub key: PathBuf,
    /// Times each datagram is sent (default 2): nothing can ask for a resend.
    pub repeat: u8,
    /// Interval of a full image resend, changed or not (default 30 s).
    pub refresh: Duration,
    /// Give up on one read after this long (default 2 s).
    pub request_timeout: Duration,
    /// The transmit side's own audit chain (default `<replication_id>-transmit.log` beside
    /// the model file).
    pub audit: Option<PathBuf>,
    /// Interval of the transmit side's `counters` record (default 60 s).
    pub counters: Duration,
    /// 1-based line.
    pub line: u32,
}

impl TransmitSettings {
    /// Default `repeat`.
    pub const DEFAULT_REPEAT: u8 = 2;
    /// Default `refresh`.
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);
    /// Default `request_timeout`.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default `counters`.
    pub const DEFAULT_COUNTERS: Duration = Duration::from_secs(60);
}

/// The `receive:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveSettings {
    /// Where datagrams arrive.
    pub bind: SocketAddr,
    /// Key file: the HMAC key, or the Ed25519 public key.
    pub key: PathBuf,
    /// Where the read-only Modbus TCP replica listens.
    pub serve: SocketAddr,
    /// A block not refreshed for this long answers 0x0B (default: three times the block's
    /// period, and at least 1 s).
    pub max_age: Option<Duration>,
    /// The receive side's own audit chain (default `<replication_id>-receive.log` beside the
    /// model file).
    pub audit: Option<PathBuf>,
    /// Most replica client connections at once (default 64).
    pub max_connections: usize,
    /// Modbus/TCP Security: the replica speaks mutual TLS, with the keys of a gateway's
    /// `tls:` block (`None`: plaintext Modbus/TCP).
    pub tls: Option<crate::TlsListener>,
    /// The file the last accepted epoch and sequence number are kept in, so that a datagram
    /// replayed after a restart of the receive side is still rejected (default
    /// `<replication_id>-receive.state` beside the model file).
    pub state: Option<PathBuf>,
    /// 1-based line.
    pub line: u32,
}

impl ReceiveSettings {
    /// Default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

    /// The `max_age` in force for a block read every `period`.
    pub fn max_age_for(&self, period: Duration) -> Duration {
        self.max_age
            .unwrap_or_else(|| (period * 3).max(Duration::from_secs(1)))
    }
}

/// One entry of `replications:`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Replication {
    /// `replication_id`, unique in the model.
    pub id: String,
    /// Short name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `[from, to]`: data flows only from the first zone to the second.
    pub connects: Vec<Spanned<String>>,
    /// The device read on the transmit side.
    pub source: Upstream,
    /// `serial:`, the bus options of an `rtu://` or `rtu+tcp://` source: the keys of a
    /// gateway's `serial:` block (`None`: their defaults). Line settings are in the URL.
    pub serial: Option<crate::SerialOptions>,
    /// The blocks read and replicated.
    pub blocks: Vec<ReplicationBlock>,
    /// `hmac-sha256` (default) or `ed25519`.
    pub auth: ReplicationAuth,
    /// The transmit side.
    pub transmit: TransmitSettings,
    /// The receive side.
    pub receive: ReceiveSettings,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Key path, e.g. `replications[0]`.
    pub path: String,
    /// Lines of its keys.
    pub keys: KeyLines,
}

impl Replication {
    /// The zone data comes from.
    pub fn from_zone(&self) -> Option<&str> {
        self.connects.first().map(|s| s.value.as_str())
    }

    /// The zone data goes to.
    pub fn to_zone(&self) -> Option<&str> {
        self.connects.get(1).map(|s| s.value.as_str())
    }

    /// Whether this build's transmit agent can read `source`: `tcp://`, `tls://` (through
    /// the gateway's TLS client settings), `rtu://` and `rtu+tcp://` (through the gateway's
    /// RTU master); every upstream kind of the model today. Deliberately not
    /// [`Upstream::runnable`]: that is the gateway's answer, and the transmit agent needs its
    /// own link for each kind (`zonegate_replicate::link`), so the two may differ.
    pub fn source_runnable(&self) -> Result<(), crate::Unsupported> {
        match &self.source {
            Upstream::Tcp { .. }
            | Upstream::Tls { .. }
            | Upstream::Rtu { .. }
            | Upstream::RtuTcp { .. } => Ok(()),
            // No catch-all: a new upstream kind must be decided here (its own link in
            // zonegate_replicate::link, or a refusal with ZG-C041).
        }
    }

    /// The line of `key`, or the replication's own line.
    pub fn line_of(&self, key: &str) -> u32 {
        self.keys.line(key).unwrap_or(self.line)
    }
}

/// Most blocks in one replication (block ids are 16-bit; a design document, not a data dump).
pub(crate) const MAX_BLOCKS: usize = 4096;
/// Most `repeat`.
pub(crate) const MAX_REPEAT: u64 = 10;

fn socket_addr(cx: &mut Cx, n: &Node, p: &str) -> Option<SocketAddr> {
    parsed(cx, n, p, |s| {
        s.trim().parse::<SocketAddr>().map_err(|_| {
            format!("`{s}` is not an address:port; write e.g. 172.16.1.100:5450 or [::1]:5450")
        })
    })
}

fn duration(cx: &mut Cx, n: &Node, p: &str) -> Option<Duration> {
    let d = parsed(cx, n, p, syntax::parse_duration)?;
    if d.is_zero() {
        cx.error(n, p, "a duration of 0 is not allowed");
        return None;
    }
    Some(d)
}

fn path(cx: &mut Cx, n: &Node, p: &str) -> Option<PathBuf> {
    let t = text(cx, n, p)?;
    if t.trim().is_empty() {
        cx.error(n, p, "a file path must not be empty");
        return None;
    }
    Some(PathBuf::from(t))
}

fn table(cx: &mut Cx, n: &Node, p: &str) -> Option<ReplicaTable> {
    let t = n.scalar();
    if let Some(v) = t.and_then(|t| ReplicaTable::ALL.into_iter().find(|v| v.as_str() == t)) {
        return Some(v);
    }
    let found = t.map_or_else(|| n.kind().to_owned(), |t| format!("`{t}`"));
    cx.error(
        n,
        p,
        format!("expected one of coils | discrete | input | holding, found {found}"),
    );
    None
}

fn auth(cx: &mut Cx, n: &Node, p: &str) -> Option<ReplicationAuth> {
    match n.scalar() {
        Some("hmac-sha256") => Some(ReplicationAuth::HmacSha256),
        Some("ed25519") => Some(ReplicationAuth::Ed25519),
        t => {
            let found = t.map_or_else(|| n.kind().to_owned(), |t| format!("`{t}`"));
            cx.error(
                n,
                p,
                format!("expected one of hmac-sha256 | ed25519, found {found}"),
            );
            None
        }
    }
}

fn decode_block(cx: &mut Cx, n: &Node, p: &str, id: u16) -> Option<ReplicationBlock> {
    let mut f = Fields::open(cx, n, p, "a block")?;
    let unit = f.req(cx, "unit", |cx, n, p| uint(cx, n, p, 255).map(|v| v as u8));
    let table = f.req(cx, "table", table);
    let range = f.req(cx, "range", |cx, n, p| {
        parsed(cx, n, p, |s| syntax::parse_u16_range(s, "address"))
    });
    let period = f.req(cx, "period", duration);
    f.finish(cx);
    Some(ReplicationBlock {
        id,
        unit: unit?,
        table: table?,
        range: range?,
        period: period?,
        line: n.line,
        path: p.to_owned(),
    })
}

fn decode_transmit(cx: &mut Cx, n: &Node, p: &str) -> Option<TransmitSettings> {
    let mut f = Fields::open(cx, n, p, "a transmit block")?;
    let to = f.req(cx, "to", socket_addr);
    let bind = f.opt(cx, "bind", socket_addr);
    let key = f.req(cx, "key", path);
    let repeat = f.opt(cx, "repeat", |cx, n, p| {
        let v = uint(cx, n, p, MAX_REPEAT)?;
        if v == 0 {
            cx.error(n, p, "must be at least 1");
            return None;
        }
        Some(v as u8)
    });
    let refresh = f.opt(cx, "refresh", duration);
    let request_timeout = f.opt(cx, "request_timeout", duration);
    let audit = f.opt(cx, "audit", path);
    let counters = f.opt(cx, "counters", duration);
    f.finish(cx);
    Some(TransmitSettings {
        to: to?,
        bind,
        key: key?,
        repeat: repeat.unwrap_or(TransmitSettings::DEFAULT_REPEAT),
        refresh: refresh.unwrap_or(TransmitSettings::DEFAULT_REFRESH),
        request_timeout: request_timeout.unwrap_or(TransmitSettings::DEFAULT_REQUEST_TIMEOUT),
        audit,
        counters: counters.unwrap_or(TransmitSettings::DEFAULT_COUNTERS),
        line: n.line,
    })
}

fn decode_receive(cx: &mut Cx, n: &Node, p: &str) -> Option<ReceiveSettings> {
    let mut f = Fields::open(cx, n, p, "a receive block")?;
    let bind = f.req(cx, "bind", socket_addr);
    let key = f.req(cx, "key", path);
    let serve = f.req(cx, "serve", socket_addr);
    let max_age = f.opt(cx, "max_age", duration);
    let audit = f.opt(cx, "audit", path);
    let max_connections = f.opt(cx, "max_connections", |cx, n, p| {
        let v = uint(cx, n, p, 100_000)?;
        if v == 0 {
            cx.error(n, p, "must be at least 1");
            return None;
        }
        Some(v as usize)
    });
    let tls = f.opt(cx, "tls", crate::tls::decode_tls);
    let state = f.opt(cx, "state", path);
    f.finish(cx);
    Some(ReceiveSettings {
        bind: bind?,
        key: key?,
        serve: serve?,
        max_age,
        audit,
        max_connections: max_connections.unwrap_or(ReceiveSettings::DEFAULT_MAX_CONNECTIONS),
        tls,
        state,
        line: n.line,
    })
}

/// Decodes one entry of `replications:`.
pub(crate) fn decode_replication(cx: &mut Cx, n: &Node, p: &str) -> Option<Replication> {
    let mut f = Fields::open(cx, n, p, "a replication")?;
    let id = f.req(cx, "replication_id", text);
    let name = f.opt(cx, "name", text);
    let description = f.opt(cx, "description", text);
    let connects = f.req(cx, "connects", |cx, n, p| {
        let items = seq(cx, n, p, |cx, n, p| {
            text(cx, n, p).map(|value| Spanned {
                value,
                line: n.line,
                column: n.column,
            })
        });
        if items.len() != 2 {
            cx.error(
                n,
                p,
                format!(
                    "a replication connects exactly two zones, [from, to]; found {}",
                    items.len()
                ),
            );
            return None;
        }
        Some(items)
    });
    let source = f.req(cx, "source", |cx, n, p| {
        parsed(cx, n, p, syntax::parse_upstream)
    });
    let blocks = f.req(cx, "blocks", |cx, n, p| {
        if let Value::Seq(items) = &n.value {
            if items.is_empty() {
                cx.error(n, p, "a replication needs at least one block");
                return None;
            }
            if items.len() > MAX_BLOCKS {
                cx.error(
                    n,
                    p,
                    format!("{} blocks; the limit is {MAX_BLOCKS}", items.len()),
                );
                return None;
            }
        }
        let mut next = 0u16;
        Some(seq(cx, n, p, |cx, n, p| {
            let id = next;
            next = next.saturating_add(1);
            decode_block(cx, n, p, id)
        }))
    });
    // The bus options of an RTU source, as a gateway's `serial:` (only where it is a bus).
    let serial = f.opt(cx, "serial", |cx, sn, sp| {
        let s = crate::serial::decode_serial(cx, sn, sp)?;
        if source.as_ref().is_some_and(|u| !u.is_bus()) {
            cx.error(
                sn,
                sp,
                "serial: applies to an rtu:// or rtu+tcp:// source only",
            );
            return None;
        }
        Some(s)
    });
    let auth = f
        .opt(cx, "auth", auth)
        .unwrap_or(ReplicationAuth::HmacSha256);
    let transmit = f.req(cx, "transmit", decode_transmit);
    let receive = f.req(cx, "receive", decode_receive);
    let keys = f.finish(cx);
    let blocks = blocks?;
    // The replica serves one value per address: two blocks must not claim the same one.
    for (i, b) in blocks.iter().enumerate() {
        if let Some(o) = blocks[..i].iter().find(|o| {
            o.unit == b.unit
                && o.table == b.table
                && o.range.start <= b.range.end
                && b.range.start <= o.range.end
        }) {
            cx.error_at(
                b.line,
                1,
                &join(&b.path, "range"),
                format!(
                    "unit {} {} {}-{} overlaps the block at line {}",
                    b.unit,
                    b.table.as_str(),
                    b.range.start,
                    b.range.end,
                    o.line
                ),
            );
        }
    }
    Some(Replication {
        id: id?,
        name,
        description,
        connects: connects?,
        source: source?,
        serial,
        blocks,
        auth,
        transmit: transmit?,
        receive: receive?,
        line: n.line,
        column: n.column,
        path: p.to_owned(),
        keys,
    })
}

/// Decodes `replications:` and checks that ids are unique.
pub(crate) fn decode_replications(cx: &mut Cx, n: &Node, p: &str) -> Option<Vec<Replication>> {
    let all = seq(cx, n, p, decode_replication);
    for (i, r) in all.iter().enumerate() {
        if let Some(first) = all[..i].iter().find(|o| o.id == r.id) {
            cx.error_at(
                r.line_of("replication_id"),
                r.column,
                &join(&r.path, "replication_id"),
                format!(
                    "replication id `{}` is already used by the replication at line {}",
                    r.id, first.line
                ),
            );
        }
    }
    Some(all)
}
