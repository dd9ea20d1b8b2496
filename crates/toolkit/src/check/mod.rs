//! `zonegate check`: machine checks of a zone/conduit design.
//!
//! Every finding has a stable id (`ZG-C001` ...), a severity, the element it concerns and the YAML
//! line. [`CHECKS`] lists every id with what it checks; the ids never change meaning (retire, do not
//! reuse). The checks follow IEC 62443-3-2 (ZCR 3, 5.6, 6.4), the Purdue/DMZ convention and the
//! Modbus flow conventions of `shared/reference/modbus-and-iec62443.md` sections 3.2 and 4.
//!
//! The code is split by what a reader looks for:
//! - this file: the finding types ([`Finding`], [`Severity`], [`Subject`], [`CheckInfo`]) and the
//!   entry points ([`check`], [`check_with_files`], [`run`], [`has_errors`], [`counts`]);
//! - `table`: the check table ([`CHECKS`], [`info`]);
//! - `structure`: ids, references, conduit endpoints, `allowed_conduits`;
//! - `zones`: assets, networks and SIS zones;
//! - `levels`: Purdue reachability, security levels, declared flows and prose writes;
//! - `rules`: the gateway allow rules;
//! - `gateway`: the `gateway:` blocks and the audit section;
//! - `files`: the files the monitor settings name (baseline, shadow candidates), read only by
//!   [`check_with_files`];
//! - `render`: the text, JSON and SARIF output.
//!
//! The replication checks (ZG-C036 ...) live in [`crate::replication`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::Site;

mod files;
mod gateway;
mod levels;
mod render;
mod rules;
mod structure;
mod table;
mod zones;

pub use render::{render_json, render_sarif, render_text};
pub use table::{info, CHECKS};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The design is wrong or unsafe: `check` exits 1.
    Error,
    /// Probably wrong, or a weakness an assessor will flag.
    Warning,
    /// Worth knowing.
    Info,
}

impl Severity {
    /// "error" | "warning" | "info".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }

    /// The SARIF level.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "note",
        }
    }
}

/// Kind of element a finding concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// The model as a whole.
    Model,
    /// A zone.
    Zone,
    /// A conduit.
    Conduit,
    /// An asset.
    Asset,
    /// A gateway rule (`conduit/rule`).
    Rule,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable check id, e.g. `ZG-C009`.
    pub id: &'static str,
    /// Short name of the check.
    pub check: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What kind of element.
    pub subject: Subject,
    /// The element's id (`C1-OPS/historian-read` for a rule).
    pub element: String,
    /// What is wrong and why it matters.
    pub message: String,
    /// The model file.
    pub file: String,
    /// 1-based YAML line.
    pub line: u32,
}

/// Static description of one check.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CheckInfo {
    /// Stable id.
    pub id: &'static str,
    /// Short kebab-case name.
    pub name: &'static str,
    /// Default severity (some checks also emit a lower one, see `description`).
    pub severity: Severity,
    /// What it checks and the basis.
    pub description: &'static str,
}

struct Out<'a> {
    site: &'a Site,
    findings: Vec<Finding>,
}

impl Out<'_> {
    fn push(
        &mut self,
        id: &'static str,
        severity: Severity,
        subject: Subject,
        element: impl Into<String>,
        line: u32,
        message: impl Into<String>,
    ) {
        let file = self.site.file.clone();
        self.push_in(&file, id, severity, subject, element, line, message);
    }

    /// Like [`Out::push`], for a finding in another file than the model (a file it names).
    #[allow(clippy::too_many_arguments)]
    fn push_in(
        &mut self,
        file: &str,
        id: &'static str,
        severity: Severity,
        subject: Subject,
        element: impl Into<String>,
        line: u32,
        message: impl Into<String>,
    ) {
        let check = info(id).map_or("", |c| c.name);
        self.findings.push(Finding {
            id,
            check,
            severity,
            subject,
            element: element.into(),
            message: message.into(),
            file: file.to_owned(),
            line,
        });
    }
}

/// Runs every check. Findings are sorted by line, then id.
pub fn check(site: &Site) -> Vec<Finding> {
    let mut out = Out {
        site,
        findings: Vec::new(),
    };
    structure::duplicates(&mut out);
    structure::references(&mut out);
    structure::endpoints(&mut out);
    structure::allowed_conduits(&mut out);
    zones::assets(&mut out);
    zones::networks(&mut out);
    zones::sis(&mut out);
    levels::purdue(&mut out);
    levels::levels(&mut out);
    rules::rules(&mut out);
    gateway::gateways(&mut out);
    out.findings.extend(crate::replication::findings(site));
    sorted(out.findings, &site.file)
}

/// [`check`], plus the checks that read the files the model names for the monitor (the
/// baseline, ZG-C042; the shadow candidates, ZG-C043): what `zonegate check` runs. The gate of
/// `run` and of every reload runs [`check`] only: the gateway never lets those files refuse a
/// model (it logs them and runs without).
pub fn check_with_files(site: &Site) -> Vec<Finding> {
    let mut out = Out {
        site,
        findings: check(site),
    };
    files::files(&mut out);
    sorted(out.findings, &site.file)
}

/// By line, then id (the model's own findings before those in the files it names).
fn sorted(mut findings: Vec<Finding>, model: &str) -> Vec<Finding> {
    findings.sort_by(|a, b| {
        (a.file != model, &a.file, a.line, a.id, &a.element).cmp(&(
            b.file != model,
            &b.file,
            b.line,
            b.id,
            &b.element,
        ))
    });
    findings
}

/// Runs every check on a model loaded by `zonegate-policy` (what `zonegate run` and `compile`
/// call before they start: refuse on [`has_errors`], print the warnings).
pub fn run(model: &zonegate_policy::Model) -> Vec<Finding> {
    check(&Site::new(model.clone()))
}

/// True when some finding is an error: `check`, `report`, `run` and `compile` refuse then.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// Counts per severity: (errors, warnings, infos).
pub fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    (n(Severity::Error), n(Severity::Warning), n(Severity::Info))
}

/// The items whose id an earlier item already used, each with the line of the latest earlier use.
fn reused<'a, T>(items: impl IntoIterator<Item = (&'a str, u32, T)>) -> Vec<(T, u32)> {
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    items
        .into_iter()
        .filter_map(|(id, line, item)| seen.insert(id, line).map(|first| (item, first)))
        .collect()
}
