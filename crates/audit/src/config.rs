//! Writer configuration: [`AuditConfig`], [`SyncMode`], [`OnFailure`], [`SyslogConfig`].
//!
//! The gateway maps the model's `audit:` section onto these; every field has a sensible
//! default (`AuditConfig::default()` writes JSON lines to stdout).

use std::path::PathBuf;
use std::time::Duration;

/// When records reach stable storage (`audit.sync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncMode {
    /// Every record is fsynced before its ticket resolves (group commit: one fsync per batch).
    Every,
    /// Records appended with `durable = true` (write-class requests) are fsynced before their
    /// ticket resolves, with group commit; other records are written and synced later.
    #[default]
    Writes,
    /// No record waits for fsync; the writer fsyncs every [`AuditConfig::batch_interval`].
    Batch,
}

impl SyncMode {
    /// Parses `every` | `writes` | `batch`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "every" => Some(Self::Every),
            "writes" => Some(Self::Writes),
            "batch" => Some(Self::Batch),
            _ => None,
        }
    }
}

/// What the gateway does while the log cannot be written (`audit.on_failure`).
///
/// The audit crate only reports; the gateway applies it using
/// [`crate::AuditHandle::should_block`] / [`crate::AuditHandle::is_healthy`] and ticket results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Write-class requests get exception 0x04; reads go on (default).
    #[default]
    BlockWrites,
    /// Every request gets exception 0x04.
    BlockAll,
    /// Forward everything and raise the alarm.
    Continue,
}

impl OnFailure {
    /// Parses `block_writes` | `block_all` | `continue`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "block_writes" => Some(Self::BlockWrites),
            "block_all" => Some(Self::BlockAll),
            "continue" => Some(Self::Continue),
            _ => None,
        }
    }

    /// Whether a request must be refused (exception 0x04) while the log cannot be written.
    /// The one place this decision is made: the handle and the gateway both ask it.
    pub fn blocks(self, write_class: bool) -> bool {
        match self {
            Self::BlockAll => true,
            Self::BlockWrites => write_class,
            Self::Continue => false,
        }
    }
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyslogTransport {
    /// RFC 5426: one message per datagram.
    #[default]
    Udp,
    /// RFC 6587 octet counting (`LEN SP MSG`).
    Tcp,
    /// RFC 5425: octet counting inside TLS (rustls, trust anchors from `ca_file`).
    Tls,
}

impl SyslogTransport {
    /// Parses `udp` | `tcp` | `tls`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "udp" => Some(Self::Udp),
            "tcp" => Some(Self::Tcp),
            "tls" => Some(Self::Tls),
            _ => None,
        }
    }
}

/// SIEM export over syslog (`audit.syslog`). See [`crate::syslog`] for the message format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyslogConfig {
    /// Transport.
    pub transport: SyslogTransport,
    /// Collector `host:port` (name resolved when connecting).
    pub address: String,
    /// PEM file with the CA certificates that may sign the collector's certificate (TLS).
    pub ca_file: Option<PathBuf>,
    /// Name to check in the collector's certificate (TLS); default: host part of `address`.
    pub server_name: Option<String>,
    /// PEM certificate chain the gateway presents when the collector asks for one (mutual TLS).
    /// Needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Syslog facility number (default 13, "log audit").
    pub facility: u8,
    /// APP-NAME (default `zonegate`).
    pub app_name: String,
    /// HOSTNAME field; default: the gateway identity of the `AuditConfig`.
    pub hostname: Option<String>,
    /// Bounded export queue length; records beyond it are dropped and counted.
    pub queue: usize,
}

impl SyslogConfig {
    /// A config for `transport` to `address` with defaults elsewhere.
    pub fn new(transport: SyslogTransport, address: impl Into<String>) -> Self {
        Self {
            transport,
            address: address.into(),
            ca_file: None,
            server_name: None,
            client_cert: None,
            client_key: None,
            facility: 13,
            app_name: "zonegate".into(),
            hostname: None,
            queue: 4096,
        }
    }
}

/// Configuration of [`crate::AuditLog::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditConfig {
    /// The active log file; `None` writes JSON lines to stdout (no rotation, no fsync).
    pub path: Option<PathBuf>,
    /// When records are fsynced.
    pub sync: SyncMode,
    /// What the gateway should do on failure (reported back by the handle).
    pub on_failure: OnFailure,
    /// Rotate the active file once it reaches this many bytes (default 64 MiB; 0 = never).
    pub rotate_bytes: u64,
    /// With a signing key: write a signed checkpoint after this many records (default 1000).
    pub checkpoint_every: u64,
    /// With a signing key: also write a checkpoint when records have been written and this
    /// much time has passed since the last one, so a quiet log does not stay unsigned for long
    /// (default 60 s; zero = only every `checkpoint_every` records and at shutdown).
    pub checkpoint_interval: Duration,
    /// Secret key file for signed checkpoints (see [`crate::keys`]).
    pub signing_key: Option<PathBuf>,
    /// SIEM export.
    pub syslog: Option<SyslogConfig>,
    /// Gateway identity written into genesis/start/stop records (default: host name).
    pub gateway: String,
    /// Hex SHA-256 of the policy in force, written into genesis and start records.
    pub policy_hash: Option<String>,
    /// fsync interval in `batch` mode (default 200 ms).
    pub batch_interval: Duration,
    /// Writer queue length (default 65536).
    pub queue: usize,
    /// After a batch without durable records, how long the writer lets the next batch gather
    /// before it looks again (default 1 ms; zero = wake up for every record). Saves a thread
    /// wake-up (futex) per record under a steady stream of reads. A durable append (or `sync`,
    /// `shutdown`) ends the wait at once, so group-commit latency is unchanged.
    pub linger: Duration,
    /// How long `append` may wait for room in a full queue before failing with
    /// `Overloaded` (default 2 s).
    pub enqueue_timeout: Duration,
    /// While unhealthy, how often the writer retries on its own (default 1 s).
    pub retry_interval: Duration,
    /// Records kept in memory during an outage and written late on recovery (default 10000).
    pub backlog: usize,
    /// Repeated denials (and refused connections) per (conduit, source IP, kind, reason, decision)
    /// within this interval become the first record in full plus one summary record with
    /// `count` (see [`crate::AuditHandle::record_aggregated`]; default 10 s; zero = write each
    /// in full, except while storage is low).
    pub aggregate_interval: Duration,
    /// Most (source, reason) keys aggregated at once; beyond it events fold into one overflow
    /// key per conduit (default 4096).
    pub aggregate_max_keys: usize,
    /// Queue slots kept free for allowed and durable records: low-priority records (denials,
    /// refused connections) are queued only while more than this many are free (default
    /// `queue / 4`).
    pub queue_reserve: Option<usize>,
    /// Retention: after a rotation, delete the oldest segments while all files of the log
    /// together exceed this many bytes (default 0 = keep everything).
    pub max_bytes: u64,
    /// Retention: after a rotation, delete the oldest segments while there are more than this
    /// many (default 0 = keep everything).
    pub max_segments: usize,
    /// SR 2.9: when the free space of the log's file system falls below this many bytes, raise
    /// an `audit_storage_low` alarm (tracing warn + a `storage_low` record), once per crossing,
    /// and shed denials (only counted, never written in full) while below
    /// (default 256 MiB; 0 = never check). Checked at start and at most every 10 s.
    pub min_free_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: None,
            sync: SyncMode::default(),
            on_failure: OnFailure::default(),
            rotate_bytes: 64 * 1024 * 1024,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            signing_key: None,
            syslog: None,
            gateway: default_gateway_name(),
            policy_hash: None,
            batch_interval: Duration::from_millis(200),
            queue: 65536,
            linger: Duration::from_millis(1),
            enqueue_timeout: Duration::from_secs(2),
            retry_interval: Duration::from_secs(1),
            backlog: 10_000,
            min_free_bytes: 256 * 1024 * 1024,
            aggregate_interval: Duration::from_secs(10),
            aggregate_max_keys: 4096,
            queue_reserve: None,
            max_bytes: 0,
            max_segments: 0,
        }
    }
}

impl AuditConfig {
    /// Defaults, writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::default()
        }
    }
}

fn default_gateway_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "zonegate".into())
}
