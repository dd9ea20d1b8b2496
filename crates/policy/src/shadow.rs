//! A conduit's `shadow:` candidate: a model file whose policy for that conduit is decided
//! beside the enforced one (issue 12).
//!
//! [`load_candidate`] is the one loader: the gateway calls it at start and every reload (a
//! candidate that does not load is logged and left out, never failing the reload), and
//! `zonegate check` calls it to say beforehand why a candidate would be left out.
//!
//! A candidate is loaded with the same strict loader as any model and compiled whole; its own
//! `shadow:`, `monitor:` and gateway settings play no part (only the named conduit's rules
//! decide).

use std::fmt;
use std::path::Path;

use crate::{ConduitPolicy, LoadErrors, Policy};

/// A candidate model compiled, with the conduit it stands in for.
#[derive(Debug)]
pub struct Candidate {
    /// The candidate's whole compiled policy.
    pub policy: Policy,
    /// Index of the named conduit in [`Policy::conduits`].
    pub index: usize,
}

impl Candidate {
    /// The candidate's policy for the named conduit.
    pub fn conduit(&self) -> Option<&ConduitPolicy> {
        self.policy.conduits().get(self.index)
    }
}

/// Why a candidate is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CandidateError {
    /// The file cannot be read, or is not a valid model, or does not compile: every problem,
    /// each with the candidate's own file, line and key path ([`LoadErrors::is_unreadable`]
    /// tells the first case).
    Invalid(LoadErrors),
    /// A valid model without a conduit of this id.
    NoConduit(String),
}

impl fmt::Display for CandidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(errors) => errors.fmt(f),
            Self::NoConduit(id) => write!(f, "the candidate has no conduit {id}"),
        }
    }
}

impl std::error::Error for CandidateError {}

/// Loads the candidate model at `path` (already resolved with [`crate::Model::resolve`]),
/// compiles it and picks its conduit `conduit`.
pub fn load_candidate(path: &Path, conduit: &str) -> Result<Candidate, CandidateError> {
    let model = crate::load_file(path).map_err(CandidateError::Invalid)?;
    let policy = Policy::compile(&model).map_err(CandidateError::Invalid)?;
    let index = policy
        .conduits()
        .iter()
        .position(|c| c.id == conduit)
        .ok_or_else(|| CandidateError::NoConduit(conduit.to_owned()))?;
    Ok(Candidate { policy, index })
}
