//! The audit event record: one JSON object per line of the log (docs/DESIGN.md "Event record").
//!
//! Field order in [`Event`] is the order of the keys on the wire, and that order is part of the
//! canonical bytes that get hashed (see [`crate::chain`]). Append new fields only before `prev`,
//! never reorder. Every `Option` field that is `None` is left out of the JSON.
//!
//! The gateway builds an `Event` with a struct literal and `..Event::default()` (or the helpers
//! below) and hands it to [`crate::AuditHandle::append`]; the writer fills `ts` (if unset), `seq`,
//! `prev` and `hash`.
//!
//! Fields of fixed vocabularies (`function`, `access`, `table`, `reason`, `mode`) are
//! `Cow<'static, str>`, and per-conduit and per-session names (`conduit`, `src`, `dst`, `rule`, and a
//! TLS client's `role`, `peer_subject`, `peer_fingerprint`) are `Arc<str>`, so that the gateway
//! builds a request's event without copying strings (`"x".into()` fills any of them).

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest `message` kept in one record (in bytes, cut at a character boundary, `…` appended).
pub const MAX_MESSAGE: usize = 4096;

/// Most written values kept in one record; longer lists are cut and `values_truncated` is set.
///
/// 125 covers every FC 16 request (at most 123 registers); an FC 15 with up to 1968 coils is cut.
pub const MAX_VALUES: usize = 125;

/// What a record is about. Serialized in snake_case (`"request"`, `"policy_load"`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// A Modbus request and the gateway's decision (the default).
    #[default]
    Request,
    /// The reply to an earlier write-class `request` record (`ref_seq` names it).
    Outcome,
    /// The first record of a chain: gateway identity and policy hash; `prev` is all zeros.
    Genesis,
    /// The gateway (and its writer) started.
    Start,
    /// The gateway stopped cleanly.
    Stop,
    /// A policy was loaded (`policy_hash`).
    PolicyLoad,
    /// A policy was reloaded while running (`policy_hash`).
    PolicyReload,
    /// A new policy was rejected (`message` says why); the old one stays in force.
    PolicyRejected,
    /// A signed chain head (`key_id`, `signature`).
    Checkpoint,
    /// The log could not be written (normally seen only via syslog/tracing).
    AuditFailure,
    /// Writing works again after a failure; `lost` and `delayed` count the affected records.
    AuditRecovered,
    /// The log's file system is nearly full (SR 2.9); `message` gives free bytes and threshold.
    StorageLow,
    /// A connection opened or closed (`src`, `dst`, `message`).
    Connection,
    /// A monitor alert (`reason`, `message`).
    Alert,
    /// Records were dropped before they reached the writer (queue full): `lost` says how
    /// many, `first_ts`/`last_ts` when.
    AuditLost,
    /// Retention removed the oldest segment `file`, whose last record was `last_seq` with hash
    /// `last_hash`: the verifier accepts a log whose first kept record follows it.
    SegmentRemoved,
    /// Periodic counters of a long-running agent (the replication's transmit side): `count`
    /// is the main counter, `message` has them all as `name=value` pairs.
    Counters,
    /// A request as a `shadow:` candidate model would decide it, recorded when the candidate
    /// would deny it (`decision: would_deny`, the candidate's `reason` and `rule`; `message`
    /// names the candidate file and what the enforced policy did).
    Shadow,
    /// A kind written by a newer version: kept as a valid record.
    #[serde(other)]
    Unknown,
}

impl Kind {
    /// Every kind this version writes (not [`Kind::Unknown`]).
    pub const ALL: &'static [Self] = &[
        Self::Request,
        Self::Outcome,
        Self::Genesis,
        Self::Start,
        Self::Stop,
        Self::PolicyLoad,
        Self::PolicyReload,
        Self::PolicyRejected,
        Self::Checkpoint,
        Self::AuditFailure,
        Self::AuditRecovered,
        Self::StorageLow,
        Self::Connection,
        Self::Alert,
        Self::AuditLost,
        Self::SegmentRemoved,
        Self::Counters,
        Self::Shadow,
    ];

    /// The snake_case name used in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Outcome => "outcome",
            Self::Genesis => "genesis",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::PolicyLoad => "policy_load",
            Self::PolicyReload => "policy_reload",
            Self::PolicyRejected => "policy_rejected",
            Self::Checkpoint => "checkpoint",
            Self::AuditFailure => "audit_failure",
            Self::AuditRecovered => "audit_recovered",
            Self::StorageLow => "storage_low",
            Self::Connection => "connection",
            Self::Alert => "alert",
            Self::AuditLost => "audit_lost",
            Self::SegmentRemoved => "segment_removed",
            Self::Counters => "counters",
            Self::Shadow => "shadow",
            Self::Unknown => "unknown",
        }
    }

    /// Parses the snake_case name (`None` when unknown).
    pub fn from_name(name: &str) -> Option<Self> {
        serde_json::from_value::<Self>(serde_json::Value::String(name.to_owned()))
            .ok()
            .filter(|k| *k != Self::Unknown)
    }
}

/// The gateway's decision about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forwarded.
    Allow,
    /// Refused (enforce mode).
    Deny,
    /// Would have been refused; forwarded because the conduit is in monitor mode.
    WouldDeny,
}

impl Decision {
    /// `"allow"`, `"deny"` or `"would_deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::WouldDeny => "would_deny",
        }
    }

    /// Parses `allow`, `deny` or `would_deny`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            "would_deny" => Some(Self::WouldDeny),
            _ => None,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One audit record. See the module docs for how fields are filled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Time of the event, RFC 3339 UTC with microseconds (`2026-11-22T03:04:05.123456Z`).
    /// Set by `append` from the system clock when left `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// Position in the chain, from 0 (the genesis record); set by the writer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What the record is about.
    #[serde(default)]
    pub kind: Kind,
    /// Conduit id from the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conduit: Option<Arc<str>>,
    /// Client address (`ip:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<Arc<str>>,
    /// Upstream device (`ip:port`, serial path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<Arc<str>>,
    /// Modbus unit id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<u8>,
    /// MBAP transaction id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<u16>,
    /// Function code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fc: Option<u8>,
    /// Function name (`write_multiple_registers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<Cow<'static, str>>,
    /// `read` | `write` | `diagnostics` | `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Cow<'static, str>>,
    /// `coils` | `discrete` | `input` | `holding`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<Cow<'static, str>>,
    /// First (zero-based) address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u16>,
    /// Number of items addressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u16>,
    /// Written values (coils as 0/1), at most [`MAX_VALUES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<u16>>,
    /// `true` when `values` was cut to [`MAX_VALUES`]; left out when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub values_truncated: bool,
    /// `allow` | `deny` | `would_deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Stable snake_case reason from the policy (`no_rule_for_function`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'static, str>>,
    /// Id of the rule that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    /// `enforce` | `monitor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Cow<'static, str>>,
    /// Modbus exception code sent to the client or received from the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<u8>,
    /// Time from request to reply, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Modbus/TCP Security role of the client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Arc<str>>,
    /// For `outcome`: seq of the `request` record it completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ref_seq: Option<u64>,
    /// Gateway identity (genesis, start, stop records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Hex SHA-256 of the policy in force (genesis, start, policy_load/reload records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// Free text for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `audit_recovered`: records that were dropped during the outage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// For `audit_recovered`: records written late (after this record), whose tickets failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delayed: Option<u64>,
    /// For `checkpoint`: id of the signing key (first 16 hex digits of SHA-256 of the public key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// For `checkpoint`: hex Ed25519 signature (see [`crate::keys::checkpoint_message`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Gateway-wide id of one client request, shared by its `request` and `outcome` records
    /// (an `outcome` names its `request` by `ref_seq` too; `request_id` also joins a request
    /// whose record could not be made durable with what happened to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
    /// For an aggregated record (repeated denials of one source and reason, refused
    /// connections): how many events it stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For an aggregated record and `audit_lost`: when the first of the events it stands for
    /// happened (`ts` is when the record was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_ts: Option<String>,
    /// For an aggregated record and `audit_lost`: when the last of them happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<String>,
    /// For `segment_removed`: file name of the removed segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// For `segment_removed`: seq of the removed segment's last record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// For `segment_removed`: hash of the removed segment's last record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
    /// When the event happened (a request's arrival), if not now: `ts` is made from it when
    /// `ts` is unset. Not serialized; the gateway sets it so that `ts` is the arrival time,
    /// not the time the record was queued.
    #[serde(skip)]
    pub at: Option<std::time::SystemTime>,
    /// Modbus/TCP Security: subject of the client's leaf certificate (RFC 4514 form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_subject: Option<Arc<str>>,
    /// Modbus/TCP Security: lowercase hex SHA-256 of the client's leaf certificate (DER).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_fingerprint: Option<Arc<str>>,
    /// Hash of the previous record (64 zeros for the first); set by the writer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// Hex SHA-256 of this record's canonical bytes; set by the writer. Always the last key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl Event {
    /// An empty record of the given kind.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// A lifecycle/notice record (`start`, `stop`, `policy_rejected`, ...) with a message.
    pub fn notice(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: Some(message.into()),
            ..Self::default()
        }
    }

    /// The `outcome` record of a write-class request whose `request` record got `ref_seq`:
    /// `exception` is the device's (or the gateway's 0x0A/0x0B) exception code, if any.
    pub fn outcome(ref_seq: u64, exception: Option<u8>, latency_us: u64) -> Self {
        Self {
            kind: Kind::Outcome,
            ref_seq: Some(ref_seq),
            exception,
            latency_us: Some(latency_us),
            ..Self::default()
        }
    }

    /// Sets `values` from any iterator, keeping at most [`MAX_VALUES`] and flagging the cut.
    pub fn set_values<I: IntoIterator<Item = u16>>(&mut self, values: I) {
        let mut out = Vec::new();
        let mut truncated = false;
        for v in values {
            if out.len() == MAX_VALUES {
                truncated = true;
                break;
            }
            out.push(v);
        }
        self.values = Some(out);
        self.values_truncated = truncated;
    }

    /// Builder form of [`Event::set_values`].
    #[must_use]
    pub fn with_values<I: IntoIterator<Item = u16>>(mut self, values: I) -> Self {
        self.set_values(values);
        self
    }

    /// Cuts `values` to [`MAX_VALUES`] and `message` to [`MAX_MESSAGE`] bytes.
    pub(crate) fn bound_values(&mut self) {
        if let Some(m) = &mut self.message {
            if m.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
                m.push('…');
            }
        }
        if let Some(v) = &mut self.values {
            if v.len() > MAX_VALUES {
                v.truncate(MAX_VALUES);
                self.values_truncated = true;
            }
        }
    }

    /// The time as parsed from `ts`, if present and valid.
    pub fn time(&self) -> Option<OffsetDateTime> {
        self.ts.as_deref().and_then(parse_ts)
    }
}

const TS_FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// Formats a time as RFC 3339 UTC with exactly six fraction digits.
pub fn format_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(TS_FORMAT)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

/// The current time in the record format.
///
/// Formatted by hand (one allocation, no format-description interpreter): it runs once per
/// record on the data path.
pub fn now_ts() -> String {
    format_system_time(std::time::SystemTime::now())
}

/// A system time in the record format, formatted by hand like [`now_ts`] (the audit writer
/// turns each request's arrival time into its `ts`). Times before the epoch read as the epoch.
pub fn format_system_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    ts_from_unix(d.as_secs(), d.subsec_micros())
}

/// `secs` since the Unix epoch (UTC) plus `micros` in the record format (years up to 9999).
fn ts_from_unix(secs: u64, micros: u32) -> String {
    // Days to civil date: H. Hinnant's `civil_from_days`, for days >= 0.
    let z = secs / 86_400 + 719_468;
    let rem = secs % 86_400;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + u64::from(month <= 2)).min(9999);
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            // `v % 10` is below 10: the cast cannot truncate.
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    put(20, 6, u64::from(micros.min(999_999)));
    // Every byte is an ASCII digit or separator: valid UTF-8, so this copies once.
    String::from_utf8_lossy(&b).into_owned()
}

/// Parses an RFC 3339 time (any offset, any fraction).
pub fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_fields_are_omitted_and_order_is_fixed() {
        let e = Event {
            ts: Some("2026-01-01T00:00:00.000001Z".into()),
            seq: Some(3),
            conduit: Some("C1".into()),
            decision: Some(Decision::WouldDeny),
            ..Event::default()
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"ts":"2026-01-01T00:00:00.000001Z","seq":3,"kind":"request","conduit":"C1","decision":"would_deny"}"#
        );
    }

    #[test]
    fn values_are_bounded() {
        let e = Event::new(Kind::Request).with_values(0..2000);
        assert_eq!(e.values.as_ref().map(Vec::len), Some(MAX_VALUES));
        assert!(e.values_truncated);
        let e = Event::new(Kind::Request).with_values([1, 2]);
        assert!(!e.values_truncated);
        assert!(!serde_json::to_string(&e).unwrap().contains("truncated"));
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let mut e = Event::notice(Kind::PolicyRejected, "é".repeat(MAX_MESSAGE));
        e.bound_values();
        let m = e.message.unwrap();
        assert!(m.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(m.ends_with('…'));
    }

    #[test]
    fn ts_has_microseconds() {
        let ts = now_ts();
        assert_eq!(ts.len(), "2026-01-01T00:00:00.000000Z".len(), "{ts}");
        assert!(parse_ts(&ts).is_some());
    }

    #[test]
    fn a_system_time_formats_as_the_time_crate_does() {
        for nanos in [0u64, 1_000, 999_999_999, 1_764_000_000_123_456_789] {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
            assert_eq!(format_system_time(t), format_ts(OffsetDateTime::from(t)));
        }
        let before_epoch = std::time::UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(
            format_system_time(before_epoch),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn hand_formatted_ts_matches_the_time_crate() {
        let mut secs: u64 = 0;
        while secs < 253_402_300_799 {
            for micros in [0u32, 1, 999_999, 123_456] {
                let t = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap()).unwrap()
                    + time::Duration::microseconds(i64::from(micros));
                assert_eq!(ts_from_unix(secs, micros), format_ts(t), "{secs} {micros}");
            }
            secs += 86_400 * 13 + 3_607;
        }
        for secs in [951_782_400u64, 951_868_799, 4_107_542_400, 1_709_164_800] {
            let t = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap()).unwrap();
            assert_eq!(ts_from_unix(secs, 0), format_ts(t));
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for &k in Kind::ALL {
            assert_eq!(Kind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(Kind::from_name("nope"), None);
        let e: Event = serde_json::from_str(r#"{"kind":"from_the_future"}"#).unwrap();
        assert_eq!(e.kind, Kind::Unknown);
    }
}
