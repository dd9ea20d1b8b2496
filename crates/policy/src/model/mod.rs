//! The model file's types: zones, assets, conduits, gateway settings, rules and the audit section.
//!
//! A [`Model`] keeps everything the file says, descriptive prose included, so the report tool can
//! print it back; enforcement values (networks, ranges, durations, upstream URLs) are already
//! parsed and checked ("parse, don't validate"). Every element remembers its YAML `line`, `column`
//! and key `path` (e.g. `conduits[0].rules[1]`), and [`KeyLines`] gives the line of each of its keys,
//! so findings can point at the exact line.
//!
//! The code is split by what a reader looks for:
//! - this file: the positions ([`Spanned`], [`KeyLines`]), the whole [`Model`] with its lookups,
//!   and the [`Word`] spelling of the model's enums;
//! - `site`: zones, assets, Purdue levels, FRs and security levels;
//! - `conduit`: conduits and their `gateway:` settings (mode, deny action);
//! - `upstream`: the upstream URL forms and what this build can forward to;
//! - `rules`: allow rules and their parts (ranges, function selectors, sources, values, rates);
//! - `audit`: the `audit:` section and its syslog copy.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};

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

mod audit;
mod conduit;
mod rules;
mod site;
mod upstream;

pub use audit::{AuditOnFailure, AuditSection, AuditSync, SyslogSection, SyslogTransport};
pub use conduit::{Conduit, DenyAction, GatewaySettings, Mode, ProtocolAllowance};
pub use rules::{
    function_code, function_name, AddressSet, FileRange, FunctionClass, FunctionSelector, Rate,
    Rule, Source, SourceTarget, U16Range, ValueBounds,
};
pub use site::{Asset, AssetKind, Fr, PurdueLevel, SecurityLevel, Zone};
pub use upstream::{Parity, Unsupported, Upstream};

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
