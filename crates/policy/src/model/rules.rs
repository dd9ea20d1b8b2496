//! A conduit's allow [`Rule`]s and what they are made of: address ranges ([`U16Range`],
//! [`AddressSet`], [`FileRange`]), function selectors ([`FunctionClass`], [`FunctionSelector`],
//! [`function_name`], [`function_code`]), sources ([`Source`], [`SourceTarget`]), value bounds
//! and rates.
//!
//! Separate because this is the part the policy compiler reads: everything a rule can say.

use std::fmt;
use std::time::Duration;

use zonegate_modbus::FunctionCode;

use crate::net::Cidr;

use super::{KeyLines, Spanned, Word};

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
