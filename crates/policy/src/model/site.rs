//! The site's structure: [`Zone`]s with their [`Asset`]s and the levels that describe them
//! ([`PurdueLevel`], the IEC 62443-3-3 [`Fr`]s and [`SecurityLevel`] targets, [`AssetKind`]).
//!
//! Separate because these are what the report and assessment read; the enforcement settings
//! live with the conduits.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::net::Cidr;

use super::{KeyLines, Spanned};

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
