//! Load errors: every problem in a model file, each with its file, line, column and key path.
//!
//! The loader never stops at the first problem (linkerd's `parse_config` habit): it decodes the
//! whole document, collects every [`LoadError`] and returns them together as [`LoadErrors`],
//! sorted by position, so an integrator fixes a file in one pass.

use std::fmt;

/// What kind of problem a [`LoadError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The file could not be read (missing, unreadable, too large, not UTF-8).
    Read,
    /// The text is not valid YAML (or uses YAML features the model forbids).
    Syntax,
    /// The YAML is fine but the model is not: unknown key, wrong type, bad value, unresolved
    /// reference, duplicate rule id.
    Invalid,
}

/// One problem in a model file.
///
/// Displayed as `file:line:column: key.path: message`, for example
/// `model.yaml:14:7: conduits[0].rules[1].holding: "0-70000": address 70000 is above 65535`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line of the offending key or value.
    pub line: u32,
    /// 1-based column of the offending key or value.
    pub column: u32,
    /// Key path from the document root, e.g. `conduits[0].rules[1].holding`; empty for the root.
    pub path: String,
    /// What went wrong, naming the offending value where there is one.
    pub message: String,
    /// The kind of problem.
    pub kind: LoadErrorKind,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == LoadErrorKind::Read {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// Every error found in one model file (never empty when returned as an `Err`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadErrors {
    errors: Vec<LoadError>,
}

impl LoadErrors {
    /// Wraps a list of errors, sorted by line and column (stable for equal positions).
    pub fn new(mut errors: Vec<LoadError>) -> Self {
        errors.sort_by_key(|e| (e.line, e.column));
        Self { errors }
    }

    /// One error that concerns the whole file: it could not be read.
    pub fn unreadable(file: &str, message: impl Into<String>) -> Self {
        Self::new(vec![LoadError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            path: String::new(),
            message: message.into(),
            kind: LoadErrorKind::Read,
        }])
    }

    /// True when the file could not be read or is not valid YAML (a CLI exits 2 then), as
    /// opposed to a readable model with invalid content.
    pub fn is_unreadable(&self) -> bool {
        self.errors
            .iter()
            .any(|e| matches!(e.kind, LoadErrorKind::Read | LoadErrorKind::Syntax))
    }

    /// The errors, in file order.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when there are none (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterates over the errors in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.errors.iter()
    }
}

impl fmt::Display for LoadErrors {
    /// One error a line, no trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl IntoIterator for LoadErrors {
    type Item = LoadError;
    type IntoIter = std::vec::IntoIter<LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}
