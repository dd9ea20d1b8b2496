//! Checks of the files the model names for its gateways' monitor: the `monitor.baseline` JSON
//! (ZG-C042) and each conduit's `shadow:` candidate model (ZG-C043).
//!
//! Separate from the other checks because these read files: only `zonegate check` runs them
//! ([`super::check_with_files`]). The design gate of `run` and of every reload does not, since
//! the gateway never lets these files fail a start or a reload (it logs them and goes on
//! without). Both use the loaders the gateway uses (`Baseline::read_file` of the monitor
//! crate, `load_candidate` of the policy crate), on the paths the gateway opens
//! (`Model::resolve`: relative to the model file's folder).

use zonegate_monitor::{Baseline, BaselineError};
use zonegate_policy::{load_candidate, CandidateError, LoadErrorKind};

use super::{Out, Severity, Subject};

pub(super) fn files(out: &mut Out<'_>) {
    baseline(out);
    shadows(out);
}

fn baseline(out: &mut Out<'_>) {
    let site = out.site;
    // The gateway reads the baseline only when the monitor is on.
    let Some(m) = site.monitor.as_ref().filter(|m| m.enabled) else {
        return;
    };
    let Some(b) = &m.baseline else { return };
    let path = model(site).resolve(&b.value);
    let Err(e) = Baseline::read_file(&path) else {
        return;
    };
    let (what, detail) = match e {
        BaselineError::Unreadable(io) => ("cannot be read", io.to_string()),
        BaselineError::Json(m) => ("is not valid JSON", m),
        BaselineError::Shape(m) => ("is not a baseline", m),
        other => ("is not usable", other.to_string()),
    };
    out.push(
        "ZG-C042",
        Severity::Error,
        Subject::Model,
        "monitor",
        b.line,
        format!(
            "monitor.baseline: {} {what}: {detail}; the gateway would run its monitor without \
             a baseline and the detectors that need one stay silent",
            path.display()
        ),
    );
}

fn shadows(out: &mut Out<'_>) {
    let site = out.site;
    for c in &site.conduits {
        // Without a gateway nothing evaluates the candidate (ZG-C044 says so).
        let (Some(s), Some(_)) = (&c.shadow, &c.gateway) else {
            continue;
        };
        let key = format!("{}.shadow", c.path);
        let path = model(site).resolve(&s.value);
        let Err(e) = load_candidate(&path, &c.id) else {
            continue;
        };
        let consequence = "the gateway would evaluate no candidate for this conduit";
        match e {
            CandidateError::Invalid(errors) if errors.is_unreadable() => {
                let why: Vec<String> = errors
                    .iter()
                    .map(|e| match e.kind {
                        LoadErrorKind::Read => e.message.clone(),
                        _ => format!("line {}: {}", e.line, e.message),
                    })
                    .collect();
                candidate_problem(
                    out,
                    &c.id,
                    s.line,
                    format!(
                        "{key}: candidate {} cannot be read as a model ({}); {consequence}",
                        path.display(),
                        why.join("; ")
                    ),
                );
            }
            CandidateError::Invalid(errors) => {
                candidate_problem(
                    out,
                    &c.id,
                    s.line,
                    format!(
                        "{key}: candidate {} is not a valid model ({} problem(s), each reported \
                         at its line in the candidate); {consequence}",
                        path.display(),
                        errors.len()
                    ),
                );
                // The candidate's own problems, each at its file, line and key.
                for e in errors.iter() {
                    let key = if e.path.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", e.path)
                    };
                    out.push_in(
                        &e.file,
                        "ZG-C043",
                        Severity::Error,
                        Subject::Conduit,
                        &c.id,
                        e.line,
                        format!(
                            "shadow candidate of conduit {} ({} line {}): {key}{}",
                            c.id, site.file, s.line, e.message
                        ),
                    );
                }
            }
            CandidateError::NoConduit(_) => candidate_problem(
                out,
                &c.id,
                s.line,
                format!(
                    "{key}: candidate {} has no conduit {} (the candidate stands in for the \
                     conduit of the same conduit_id); {consequence}",
                    path.display(),
                    c.id
                ),
            ),
            other => candidate_problem(
                out,
                &c.id,
                s.line,
                format!(
                    "{key}: candidate {}: {other}; {consequence}",
                    path.display()
                ),
            ),
        }
    }
}

/// A ZG-C043 finding at the conduit's `shadow:` line.
fn candidate_problem(out: &mut Out<'_>, conduit: &str, line: u32, message: String) {
    out.push(
        "ZG-C043",
        Severity::Error,
        Subject::Conduit,
        conduit,
        line,
        message,
    );
}

/// The loaded model (the [`crate::model::Site`]'s own `resolve` resolves rule sources).
fn model(site: &crate::model::Site) -> &zonegate_policy::Model {
    site
}
