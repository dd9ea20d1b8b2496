//! The design gate of `run` and `compile`: the same checks as `zonegate check`, applied before a
//! model is enforced or turned into firewall rules.
//!
//! An error finding refuses the model unless the operator names its check id in
//! `--accept-findings` (a deliberate, recorded exception); warnings never refuse but are always
//! shown. `run` hands [`model_gate`] to the gateway so that every reload passes the same gate,
//! and the accepted findings go into the audit trail's `policy_load` / `policy_reload` records.

use std::collections::BTreeSet;
use std::sync::Arc;

use zonegate_gateway::ModelGate;
use zonegate_toolkit::check::{self, Finding, Severity};
use zonegate_toolkit::model::Site;

/// The check ids named in `--accept-findings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Accepted(BTreeSet<&'static str>);

impl Accepted {
    /// From the command line's values (each already checked by [`parse_check_id`]).
    pub(crate) fn new(ids: &[&'static str]) -> Self {
        Self(ids.iter().copied().collect())
    }

    fn contains(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

/// clap value parser of one `--accept-findings` id: it must name a check that exists, so a typo
/// never silently accepts nothing (or the wrong thing).
pub(crate) fn parse_check_id(s: &str) -> Result<&'static str, String> {
    let wanted = s.trim().to_ascii_uppercase();
    match check::info(&wanted) {
        Some(c) => Ok(c.id),
        None => Err(format!(
            "{s:?} is not a check id (ZG-C001 ... ZG-C{:03}; `zonegate check --list` lists them)",
            check::CHECKS.len()
        )),
    }
}

/// What the gate found in one model.
#[derive(Debug, Default)]
pub(crate) struct Review {
    /// Error findings not accepted: the model is refused.
    pub(crate) refused: Vec<Finding>,
    /// Error findings accepted by `--accept-findings`.
    pub(crate) accepted: Vec<Finding>,
    /// Warnings (never refuse).
    pub(crate) warnings: Vec<Finding>,
    /// Accepted ids that matched no finding (a stale override the operator should drop).
    pub(crate) unused: Vec<&'static str>,
}

/// Runs `zonegate check`'s checks on `site` and sorts the findings by what they mean here.
pub(crate) fn review(site: &Site, accepted: &Accepted) -> Review {
    let mut r = Review::default();
    let findings = check::check(site);
    for id in &accepted.0 {
        if !findings
            .iter()
            .any(|f| f.id == *id && f.severity == Severity::Error)
        {
            r.unused.push(id);
        }
    }
    for f in findings {
        match f.severity {
            Severity::Error if accepted.contains(f.id) => r.accepted.push(f),
            Severity::Error => r.refused.push(f),
            Severity::Warning => r.warnings.push(f),
            Severity::Info => {}
        }
    }
    r
}

fn line(prefix: &str, f: &Finding) -> String {
    format!(
        "{}:{}: {prefix}{}[{}] {}: {}",
        f.file,
        f.line,
        f.severity.as_str(),
        f.id,
        f.element,
        f.message
    )
}

impl Review {
    /// True when the model must not be enforced or compiled.
    pub(crate) fn refuses(&self) -> bool {
        !self.refused.is_empty()
    }

    /// Every finding that matters here, one a line, in `zonegate check`'s text format
    /// (accepted ones marked `accepted`), then the stale overrides.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.refused.iter().map(|f| line("", f)).collect();
        out.extend(self.accepted.iter().map(|f| line("accepted ", f)));
        out.extend(self.warnings.iter().map(|f| line("", f)));
        out.extend(self.unused.iter().map(|id| {
            format!("--accept-findings {id}: no error finding has this id (drop the override)")
        }));
        out
    }

    /// Prints [`Review::lines`] to stderr, then what the command does about them.
    pub(crate) fn print(&self, command: &str, file: &str) {
        for l in self.lines() {
            eprintln!("{l}");
        }
        if self.refuses() {
            eprintln!(
                "zonegate {command}: {file}: {} error finding(s) (the checks of `zonegate check`); \
                 refused. Fix the model, or accept a deliberate case by its id: \
                 --accept-findings {}",
                self.refused.len(),
                self.refused_ids().join(",")
            );
        } else if !self.accepted.is_empty() {
            eprintln!(
                "zonegate {command}: {file}: {} error finding(s) accepted by --accept-findings",
                self.accepted.len()
            );
        }
    }

    fn refused_ids(&self) -> Vec<&'static str> {
        let ids: BTreeSet<&'static str> = self.refused.iter().map(|f| f.id).collect();
        ids.into_iter().collect()
    }

    /// What the audit trail records with the policy: every accepted finding, then the number
    /// of warnings (their text is in `zonegate check`).
    pub(crate) fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .accepted
            .iter()
            .map(|f| {
                format!(
                    "accepted finding {} ({}) on {}: {}",
                    f.id, f.check, f.element, f.message
                )
            })
            .collect();
        if !self.warnings.is_empty() {
            let ids: BTreeSet<&str> = self.warnings.iter().map(|f| f.id).collect();
            notes.push(format!(
                "{} design warning(s): {}",
                self.warnings.len(),
                ids.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        notes
    }
}

/// The gate the gateway applies at start and at every reload: `Err` carries every refusing
/// finding, one a line.
pub(crate) fn model_gate(accepted: Accepted) -> ModelGate {
    Arc::new(move |model| {
        let review = review(
            &zonegate_toolkit::model::Site::new(model.clone()),
            &accepted,
        );
        if review.refuses() {
            let mut why = format!(
                "{} error finding(s) (the checks of `zonegate check`)",
                review.refused.len()
            );
            for f in &review.refused {
                why.push('\n');
                why.push_str(&line("", f));
            }
            Err(why)
        } else {
            Ok(review.notes())
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ANY_SOURCE_WRITE: &str = "zones:\n  - zone_id: Z2\n    purdue_level: 2\n    security_level_target: SL 1\n    networks: [10.0.2.0/24]\n    allowed_conduits: [C1]\n  - zone_id: Z1\n    purdue_level: 1\n    security_level_target: SL 1\n    networks: [10.0.1.0/24]\n    allowed_conduits: [C1]\nconduits:\n  - conduit_id: C1\n    connects: [Z2, Z1]\n    security_level: SL 1\n    gateway:\n      listen: 127.0.0.1:0\n      upstream: tcp://10.0.1.10:502\n    rules:\n      - id: anyone-writes\n        from: [0.0.0.0/0]\n        functions: [write_multiple_registers]\n        holding: 0-9\n";

    fn site() -> (Site, zonegate_policy::Model) {
        let site = zonegate_toolkit::load_str(ANY_SOURCE_WRITE, "m.yaml").unwrap();
        let model = (*site).clone();
        (site, model)
    }

    #[test]
    fn an_any_source_write_rule_is_refused() {
        let (site, _) = site();
        let r = review(&site, &Accepted::default());
        assert!(r.refuses());
        assert!(r.refused.iter().any(|f| f.id == "ZG-C017"), "{r:?}");
        assert!(r.lines().iter().any(|l| l.contains("error[ZG-C017]")));
    }

    #[test]
    fn accepting_every_refused_id_lets_it_through_and_names_them() {
        let (site, _) = site();
        let ids: Vec<&'static str> = review(&site, &Accepted::default())
            .refused
            .iter()
            .map(|f| f.id)
            .collect();
        let r = review(&site, &Accepted::new(&ids));
        assert!(!r.refuses(), "{r:?}");
        assert!(r
            .notes()
            .iter()
            .any(|n| n.starts_with("accepted finding ZG-C017 (any-source-rule)")));
    }

    #[test]
    fn accepting_one_id_does_not_accept_the_others() {
        let (site, _) = site();
        let all = review(&site, &Accepted::default());
        let r = review(&site, &Accepted::new(&["ZG-C017"]));
        assert_eq!(r.refused.len() + r.accepted.len(), all.refused.len());
        assert!(r.refused.iter().all(|f| f.id != "ZG-C017"));
    }

    #[test]
    fn a_stale_override_is_reported() {
        let (site, _) = site();
        let r = review(&site, &Accepted::new(&["ZG-C009"]));
        assert_eq!(r.unused, vec!["ZG-C009"]);
        assert!(r.lines().iter().any(|l| l.contains("drop the override")));
    }

    #[test]
    fn check_ids_are_validated() {
        assert_eq!(parse_check_id("zg-c017"), Ok("ZG-C017"));
        assert!(parse_check_id("ZG-C999").is_err());
        assert!(parse_check_id("C017").is_err());
    }

    #[test]
    fn the_gate_refuses_with_every_finding_and_passes_when_accepted() {
        let (_, model) = site();
        let why = model_gate(Accepted::default())(&model).unwrap_err();
        assert!(why.contains("error[ZG-C017]"), "{why}");
        let (site, _) = site();
        let ids: Vec<&'static str> = review(&site, &Accepted::default())
            .refused
            .iter()
            .map(|f| f.id)
            .collect();
        let notes = model_gate(Accepted::new(&ids))(&model).unwrap();
        assert!(notes.iter().any(|n| n.contains("ZG-C017")), "{notes:?}");
    }
}
