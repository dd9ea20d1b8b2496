//! zonegate-policy: the zone/conduit model file and the compiled, pure decision engine.
//!
//! ```text
//!   model.yaml --load_str/load_file--> Model --Policy::compile--> Policy
//!      (every error at once,            (keeps all prose,            |
//!       file:line:col: key.path)         parsed enforcement parts)   v
//!                         Transaction --ConduitPolicy::decide(&RateLimiter, now)--> Verdict
//! ```
//!
//! # Loading
//! [`load_file`] / [`load_str`] read the YAML model of docs/DESIGN.md strictly: an unknown key is an
//! error, and every error is reported at once with file, line, column and key path, e.g.
//! `model.yaml:14:7: conduits[0].rules[1].holding: "0-70000": address 70000 is above 65535`.
//!
//! Parser choice: we build a positioned tree from yaml-rust2's marked event stream (see the
//! `yaml` module) and decode it with a hand-written strict decoder that collects all errors
//! (linkerd's habit), instead of serde's first-error-wins derive. `serde_yaml` is unmaintained
//! and loses positions; yaml-rust2 is maintained, pure Rust, YAML 1.2, and gives line and column
//! for every event, which also lets us reject duplicate keys and bound alias expansion.
//!
//! YAML anchors, aliases and merge keys (`<<: *gateway-defaults`) work; top-level keys that
//! start with `x-` are extension fields that may hold such anchors and are otherwise ignored.
//!
//! A purely descriptive IEC 62443-3-2 zone document (assets as strings, directions as prose, no
//! gateway, no rules) loads. Descriptive keys (`description`, `notes`, `owner`, `rationale`, ...)
//! are accepted where documented and kept in the [`Model`].
//!
//! # Rule syntax
//! ```yaml
//! rules:
//!   - id: ews-setpoints              # unique in the conduit
//!     from: [Z2-OPS, EWS-01, 10.9.0.0/24, "fd00::7"]  # zone ids, asset ids, CIDRs, addresses
//!     unit_ids: [1, "10-20"]         # absent = every unit id
//!     roles: [operator]              # optional: TLS roles; absent = any
//!     functions:                     # names, numbers, classes read | write | diagnostics
//!       - write_single_register
//!       - 16
//!       - "diagnostics:0,10-18"      # FC 8 sub-functions (a name or number, then `:` list)
//!       - read_device_identification # = 43:14 (FC 43 MEI type 14)
//!       - {function: 8, sub_functions: [0, 11]}  # mapping form; here `diagnostics` = FC 8
//!     holding: 100-109               # or 100, "0x100-0x1FF", or a list of those
//!     coils: [0-15, 32]
//!     values: {min: 180, max: 240}   # every written value (coils write 0/1); a negative
//!                                    # min reads registers as INT16: {min: -50, max: 50}
//!     file: ["4:0-99", 6-7]          # FC 20/21 file records: file[:records]; records 0-9999
//!     rate: 2/s                      # N/s, N/min, N/h: token bucket per rule and source
//!     justification: "why"
//! ```
//! A bare `diagnostics` is the class (7, 8, 11, 12, 17, 43); with a sub-function list it names
//! FC 8. FC 8 or 43 without a list allows every sub-function / MEI type. `from`, `functions`
//! and `id` are required (an "any source" rule must say `0.0.0.0/0` and `::/0`); a rule without
//! `unit_ids` covers every unit id, including 0 (broadcast on a serial line).
//!
//! A class grants only its codes that act on something the rule bounds (issue 14.6): `read`
//! = FC 1 with `coils`, 2 with `discrete`, 3 and 24 with `holding`, 4 with `input`; `write` =
//! FC 5 and 15 with `coils`, 6, 16, 22, 23 with `holding`, 21 with `file`; `diagnostics` is
//! table-less and granted whole. A code named on its own is always granted as named.
//!
//! Every address a request touches must lie in the rule's ranges for that table (FC 23: both its
//! read and its write range); a table the rule gives no range allows no address. FC 20/21 must
//! keep every sub-request (file, first record .. last record) inside one `file` entry when the
//! rule has `file`; named without it they may touch any file record. FC 24 is checked at its
//! FIFO pointer address only (the queue behind it is the device's, up to 31 registers). Other
//! functions that touch no table (diagnostics, FC 43, user-defined codes) are allowed by
//! function alone. Under a `values` bound, FC 22 mask write is allowed only when
//! its AND mask is 0 (the result is then the OR mask, which is checked); otherwise the result
//! depends on the device's current value and the request is denied with
//! [`Denial::ValueUnverifiable`] (0x03). FC 21 under a `values` bound is denied the same way.
//!
//! # Deciding
//! [`Policy::compile`] resolves sources (zone networks and asset addresses, IPv4 and IPv6,
//! IPv4-mapped IPv6 treated as IPv4) and [`ConduitPolicy::decide`] applies the rules: the first
//! rule that allows wins, none -> deny, with the exception docs/DESIGN.md names (see [`Reason`]).
//! `decide` allocates nothing and depends only on the request, the policy, the limiter state and
//! `now`. A rate-limit token is taken only from the rule that would allow the request, so denied
//! requests never drain a bucket; the [`RateLimiter`] has a fixed number of buckets (see its
//! module docs for the eviction rule) and keeps a rule's buckets across reloads while the
//! conduit id, rule id and rate stay the same.
//!
//! ```
//! use std::time::Instant;
//! use zonegate_policy::{load_str, Denial, Policy, RateLimiter, Reason, Request, Transaction, UnitId};
//!
//! let model = load_str(r#"
//! zones:
//!   - zone_id: Z2-OPS
//!     networks: [10.30.0.0/16]
//! conduits:
//!   - conduit_id: C1
//!     rules:
//!       - id: historian-read
//!         from: [Z2-OPS]
//!         functions: [read]
//!         holding: 0-199
//! "#, "model.yaml")?;
//! let policy = Policy::compile(&model)?;
//! let limiter = RateLimiter::new(&policy);
//! let pdu = [0x03, 0x00, 0xC6, 0x00, 0x04]; // FC 3, start 198, quantity 4: 198..=201
//! let request = Request::parse(&pdu).map_err(|e| e.to_string())?;
//! let tx = Transaction { src: "10.30.0.5".parse()?, unit: UnitId::new(1), request: &request, role: None };
//! let verdict = policy.conduits()[0].decide(&tx, &limiter, Instant::now());
//! assert_eq!(verdict.reason, Reason::Denied(Denial::AddressOutOfRange));
//! assert_eq!(verdict.rule, Some("historian-read"));
//! assert_eq!(verdict.exception().map(|c| c.to_u8()), Some(0x02));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admin;
mod decode;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod load;
mod model;
mod monitor;
mod net;
mod policy;
mod rate;
mod replication;
pub mod role;
mod serial;
mod shadow;
mod syntax;
mod tls;
mod verdict;
mod yaml;

pub use admin::AdminSettings;
pub use error::{LoadError, LoadErrorKind, LoadErrors};
pub use load::{load_bytes, load_file, load_file_text, load_str, MAX_MODEL_BYTES};
pub use model::{
    function_code, function_name, AddressSet, Asset, AssetKind, AuditOnFailure, AuditSection,
    AuditSync, Conduit, DenyAction, FileRange, Fr, FunctionClass, FunctionSelector,
    GatewaySettings, KeyLines, Mode, Model, Parity, ProtocolAllowance, PurdueLevel, Rate, Rule,
    SecurityLevel, Source, SourceTarget, Spanned, SyslogSection, SyslogTransport, U16Range,
    Unsupported, Upstream, ValueBounds, Zone,
};
pub use monitor::{
    MonitorSection, MonitorThresholds, DEFAULT_MONITOR_QUEUE, DETECTOR_KINDS, MAX_MONITOR_QUEUE,
};
pub use net::{canonical_ip, Cidr};
pub use policy::{CompiledRule, ConduitPolicy, Policy, Transaction};
pub use rate::{RateLimiter, DEFAULT_BUCKETS};
pub use replication::{
    ReceiveSettings, ReplicaTable, Replication, ReplicationAuth, ReplicationBlock, TransmitSettings,
};
pub use serial::{line_source, LineTiming, SerialLine, SerialOptions};
pub use shadow::{load_candidate, Candidate, CandidateError};
pub use tls::{TlsListener, TlsVersion};
pub use verdict::{Decision, Denial, Reason, Verdict};
pub use zonegate_modbus::{ExceptionCode, Request, UnitId};

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}
