//! The top-level `audit:` section ([`AuditSection`]): sync and failure policies, and the syslog
//! copy ([`SyslogSection`], [`SyslogTransport`]).
//!
//! Separate because the audit settings are read by the audit writer only, not by the policy.

use std::path::PathBuf;

use super::KeyLines;

/// `audit.sync`: when records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditSync {
    /// Every record, durable before the request goes on.
    Every,
    /// Write-class requests durable before forwarding; others batched (default).
    Writes,
    /// Group commit for all.
    Batch,
}

impl AuditSync {
    /// `every` | `writes` | `batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Every => "every",
            Self::Writes => "writes",
            Self::Batch => "batch",
        }
    }
}

/// `audit.on_failure`: what the gateway does when the log cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditOnFailure {
    /// Deny write-class requests, keep reads flowing (default).
    BlockWrites,
    /// Deny everything.
    BlockAll,
    /// Keep forwarding (risky: unaudited commands).
    Continue,
}

impl AuditOnFailure {
    /// `block_writes` | `block_all` | `continue`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlockWrites => "block_writes",
            Self::BlockAll => "block_all",
            Self::Continue => "continue",
        }
    }
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyslogTransport {
    /// RFC 5426.
    Udp,
    /// RFC 6587.
    Tcp,
    /// RFC 5425.
    Tls,
}

impl SyslogTransport {
    /// `udp` | `tcp` | `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// `audit.syslog`: a copy of each record to a syslog collector (RFC 5424).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyslogSection {
    /// udp (default), tcp or tls.
    pub transport: SyslogTransport,
    /// `host:port` of the collector.
    pub address: String,
    /// CA bundle for tls.
    pub ca: Option<PathBuf>,
    /// Client certificate for tls.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
    /// APP-NAME (default `zonegate`).
    pub app_name: String,
    /// Facility number 0-23 (default 16, `local0`); names such as `local3` or `auth` accepted.
    pub facility: u8,
    /// HOSTNAME to send (default: the machine's).
    pub hostname: Option<String>,
    /// 1-based line.
    pub line: u32,
}

/// The top-level `audit:` section, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditSection {
    /// Log file as written; `None` = stdout. Relative paths are relative to the model file:
    /// use [`Model::resolve`](super::Model::resolve).
    pub path: Option<PathBuf>,
    /// Sync policy (default `writes`).
    pub sync: AuditSync,
    /// Failure policy (default `block_writes`).
    pub on_failure: AuditOnFailure,
    /// Rotate the file past this many bytes (`64MiB`).
    pub rotate_size: Option<u64>,
    /// Write a checkpoint record every N records.
    pub checkpoint_every: Option<u64>,
    /// Key file to sign checkpoints.
    pub signing_key: Option<PathBuf>,
    /// Syslog copy.
    pub syslog: Option<SyslogSection>,
    /// `aggregate_interval`: repeated denials of one source and reason within it become one
    /// record with a `count` (default 10 s in the writer when `None`; `0s`: every denial in
    /// full, except while storage is low).
    pub aggregate_interval: Option<std::time::Duration>,
    /// `max_bytes`: retention, delete the oldest segments while the log is larger (default:
    /// keep everything).
    pub max_bytes: Option<u64>,
    /// `max_segments`: retention, keep at most this many rotated segments (default: all).
    pub max_segments: Option<u64>,
    /// 1-based line.
    pub line: u32,
    /// Lines of its keys.
    pub keys: KeyLines,
}
