//! [`AuditError`]: everything the audit crate can report, cheap to clone (one failed batch
//! resolves many tickets with the same error).

use std::fmt;
use std::path::PathBuf;

/// An audit failure. Messages say what went wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// Writing or syncing the log failed (disk full, permissions, I/O error).
    /// The writer keeps retrying; see [`crate::AuditHandle::is_healthy`].
    Unavailable(String),
    /// The writer has stopped (after `shutdown`) or is gone.
    Closed,
    /// The writer's queue stayed full for too long; the record was not queued.
    Overloaded,
    /// Bad configuration.
    Config(String),
    /// A key file could not be read, written or parsed.
    Key(String),
    /// The existing log cannot be continued: its last complete record is not valid.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// Reading a log file failed.
    Io(String),
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "audit log unavailable: {m}"),
            Self::Closed => f.write_str("audit writer is stopped"),
            Self::Overloaded => f.write_str("audit writer queue is full"),
            Self::Config(m) => write!(f, "audit configuration: {m}"),
            Self::Key(m) => write!(f, "audit key: {m}"),
            Self::Corrupt {
                path,
                line,
                message,
            } => write!(
                f,
                "{}:{line}: cannot continue the audit chain: {message}",
                path.display()
            ),
            Self::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for AuditError {}
