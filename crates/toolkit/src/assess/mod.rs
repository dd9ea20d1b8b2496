//! `zonegate assess`: an assessment of the model against IEC 62443-3-3.
//!
//! For every conduit, each system requirement (SR) and enhancement (RE) of the embedded table
//! ([`crate::requirements`]) gets a [`Status`] with its evidence:
//! - **Met**: proven by the configuration zonegate enforces (e.g. `mode: enforce` -> SR 5.2 RE1);
//! - **Provided**: a built-in property of zonegate when its gateway is in the path (strict parser,
//!   fail-closed forwarding); assumed correct, verify with `zonegate probe`;
//! - **Declared**: stated in the model's prose (controls, security_mode) but not enforced here;
//! - **Assumed**: outside what a zone/conduit model can show (user accounts, backups, power...):
//!   the asset owner must evidence it;
//! - **NotApplicable**; **Gap**: in scope and not met.
//!
//! The achieved level per FR (SL-A) is the highest level L such that every requirement of that
//! FR at or below L is Met, Provided, Assumed or N/A: prose (Declared) never raises SL-A above
//! what enforcement shows. The level the prose would reach is shown beside it as `declared`.
//! Assumed items still count, so SL-A is an upper bound that the listed assumptions must
//! confirm; the report says so. Zones take the lowest SL-A of the conduits that connect them.
//! Gaps at or below the target become threats and countermeasures, which follow the conduit's
//! transport: a serial (RTU, RS-485, radio) conduit gets bus threats, not TCP session ones.
//!
//! The code is split by what a reader looks for:
//! - this file: the result types ([`Assessment`], [`ConduitAssessment`], [`ZoneAssessment`],
//!   [`Item`], [`Status`]; their JSON is their serde form) and [`assess`], which runs the steps;
//! - `facts`: what the model shows about one conduit (gateway in the path, TLS, roles, prose
//!   controls, Purdue levels...), the only input of the verdicts;
//! - `evaluate`: the verdict and evidence for each SR/RE, one arm per requirement;
//! - `score`: SL-A and the declared level per FR, what limits them, the threats of the gaps,
//!   and the per-zone roll-up over its conduits;
//! - `render`: the text and markdown output ([`render_text`], [`render_markdown`]).

use serde::Serialize;

use crate::check;
use crate::model::{Site, SlVector};
use crate::requirements;

mod evaluate;
mod facts;
mod render;
mod score;

pub use render::{render_markdown, render_text};

/// How a requirement stands for one conduit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven by the configuration zonegate enforces.
    Met,
    /// A built-in property of zonegate in the path (assumed correct implementation).
    Provided,
    /// Stated in the model's prose, not verified.
    Declared,
    /// Outside the model: the asset owner must evidence it.
    Assumed,
    /// Does not apply to this conduit.
    NotApplicable,
    /// In scope and not met.
    Gap,
}

impl Status {
    /// Upper-case label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Met => "MET",
            Self::Provided => "PROVIDED",
            Self::Declared => "DECLARED",
            Self::Assumed => "ASSUMED",
            Self::NotApplicable => "N/A",
            Self::Gap => "GAP",
        }
    }
}

/// One requirement's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// "SR 5.2 RE1".
    pub id: String,
    /// FR abbreviation.
    pub fr: &'static str,
    /// Lowest SL at which it applies.
    pub sl: u8,
    /// Title.
    pub title: String,
    /// Verdict.
    pub status: Status,
    /// Why.
    pub evidence: String,
}

/// A threat that a gap leaves open, with what answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Threat {
    /// The threat.
    pub threat: String,
    /// The countermeasure.
    pub countermeasure: String,
    /// Requirements whose gaps raise it.
    pub requirements: Vec<String>,
}

/// Assessment of one conduit.
#[derive(Debug, Clone, Serialize)]
pub struct ConduitAssessment {
    /// Conduit id.
    pub id: String,
    /// Zones it connects.
    pub connects: Vec<String>,
    /// Target per FR (the conduit's SL, else the highest SL-T of its zones); None = unknown.
    pub target: Option<SlVector>,
    /// Achieved per FR, by enforcement (Declared items do not count).
    pub achieved: SlVector,
    /// What the model's prose would reach per FR if every Declared item held (never used as
    /// SL-A).
    pub declared: SlVector,
    /// For each FR below target: the gaps and prose-only (Declared) items that hold it down.
    pub limited_by: Vec<(&'static str, Vec<String>)>,
    /// Every requirement with its verdict.
    pub items: Vec<Item>,
    /// Threats and countermeasures from the gaps at or below the target.
    pub threats: Vec<Threat>,
    /// Cleartext Modbus interfaces of the conduit.
    pub plaintext_interfaces: Vec<String>,
}

/// Assessment of one zone.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneAssessment {
    /// Zone id.
    pub id: String,
    /// SL-T.
    pub target: Option<SlVector>,
    /// Lowest SL-A over the zone's conduits (None for a zone without conduits).
    pub achieved: Option<SlVector>,
    /// Lowest declared level over the zone's conduits (prose counted; never the SL-A).
    pub declared: Option<SlVector>,
    /// Conduits that connect it.
    pub conduits: Vec<String>,
    /// FRs where SL-A < SL-T.
    pub shortfalls: Vec<String>,
    /// Requirements met (MET or PROVIDED) on every conduit of the zone.
    pub meets: Vec<String>,
    /// Requirements only declared in prose on some conduit of the zone (and otherwise met).
    pub declared_only: Vec<String>,
    /// Requirements required at the zone's SL-T that are a GAP on some conduit of the zone.
    pub gaps: Vec<String>,
}

/// The whole assessment.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// `facility`.
    pub facility: String,
    /// The model file.
    pub model_file: String,
    /// Where the requirements table comes from and its status.
    pub table_source: String,
    /// How many requirements the table holds.
    pub table_size: usize,
    /// Per conduit.
    pub conduits: Vec<ConduitAssessment>,
    /// Per zone.
    pub zones: Vec<ZoneAssessment>,
    /// Design-check errors (they weaken every conclusion).
    pub check_errors: usize,
}

/// The source note printed with every assessment.
pub const TABLE_SOURCE: &str = "IEC 62443-3-3:2013 SR/RE to SL mapping from a secondary source (Nemo10982/IEC62443DSL SecurityRequirements.java, transcribing Annex B); NOT confirmed against the purchased standard";

/// Assesses a whole model.
pub fn assess(site: &Site) -> Result<Assessment, requirements::TableError> {
    let table = requirements::table()?;
    let findings = check::check(site);
    let check_errors = check::counts(&findings).0;
    let mut conduits = Vec::new();
    for c in &site.conduits {
        let f = facts::facts(site, c, &findings);
        let target = site.conduit_target(c);
        let mut items = Vec::new();
        for req in &table {
            let (status, evidence) = evaluate::evaluate(&f, req);
            items.push(Item {
                id: req.id.clone(),
                fr: req.fr_name(),
                sl: req.sl,
                title: req.title.clone(),
                status,
                evidence,
            });
        }
        conduits.push(score::conduit(c, target, items, &table));
    }
    let zones = score::zones(site, &conduits, &table);
    Ok(Assessment {
        facility: site
            .facility
            .clone()
            .unwrap_or_else(|| "(facility not stated)".into()),
        model_file: site.file.clone(),
        table_source: TABLE_SOURCE.to_owned(),
        table_size: table.len(),
        conduits,
        zones,
        check_errors,
    })
}

/// True when some zone or conduit falls short of its target on some FR.
pub fn has_shortfall(a: &Assessment) -> bool {
    a.zones.iter().any(|z| !z.shortfalls.is_empty())
        || a.conduits.iter().any(|c| !c.limited_by.is_empty())
}
