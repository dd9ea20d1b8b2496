//! The verifier behind `zonegate log verify`: walks the chain over one or more files and names
//! the FIRST record that is not what the writer wrote.
//!
//! Checks, per record in chain order:
//! 1. the line ends with a well-formed `hash` member and the hash matches the canonical bytes
//!    (see [`crate::chain`]): catches any edit of any byte;
//! 2. `seq` is the previous `seq` + 1: catches deletion, insertion, reordering;
//! 3. `prev` is the previous record's `hash` (64 zeros for the first record of a chain): catches
//!    a record replaced or re-hashed by someone who does not hold every later record;
//! 4. with a public key: every `checkpoint` has this key's `key_id` and a valid Ed25519 signature
//!    over its chain head (see [`crate::keys`]), and the log ends with a checkpoint (unless
//!    [`VerifyOptions::require_final_checkpoint`] is off): catches a rewritten chain and a cut-off
//!    tail;
//! 5. the first record is the start of a chain (`prev` = 64 zeros, seq 0), or retention removed
//!    what was before it: a later `segment_removed` record names `seq - 1` and this `prev`
//!    ([`Report::retention`] says which). Anything else is [`Problem::NotGenesis`].
//!
//! Lines are read as raw bytes and must be UTF-8: the hash is over the bytes, and a lossy
//! decoding would let different bytes verify as the same text.
//!
//! Files are put in chain order by the `seq` of their first record, so
//! `zonegate log verify zonegate-audit.log*` works whatever order the shell gives. An unterminated
//! last line of the last file is a *torn write* (a crash or power loss during a write): it is
//! reported as a warning, not as tampering. Anywhere else it is a finding.
//!
//! Limits an auditor should know: without a key, someone who can rewrite the whole file can
//! recompute every hash, and anyone can cut off the tail; with a key, a tail cut exactly after an
//! earlier checkpoint is still undetectable from the file alone (compare with the syslog copy,
//! or sign often).

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::chain::{check_line, LineError, GENESIS_PREV};
use crate::error::AuditError;
use crate::event::{Event, Kind};
use crate::keys;

/// Options of [`verify()`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Public key: check checkpoint signatures (and require a final checkpoint).
    pub key: Option<VerifyingKey>,
    /// With a key, the last record must be a checkpoint (default true).
    pub require_final_checkpoint: bool,
    /// Accept a first record that is not the start of a chain (checking a later part alone).
    pub allow_partial: bool,
    /// Chain heads noted earlier (`zonegate log verify` prints one): the record with each
    /// anchor's seq must still exist and have that hash. Detects a cut-off tail or a rewrite
    /// without a key.
    pub anchors: Vec<Anchor>,
}

/// A `(seq, hash)` pair noted from an earlier verification (`SEQ:HASH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    /// Sequence number.
    pub seq: u64,
    /// Hex hash of that record.
    pub hash: String,
}

impl std::str::FromStr for Anchor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected SEQ:HASH"))?;
        let seq = seq
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: SEQ is not a number"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{s:?}: HASH must be 64 hex digits"));
        }
        Ok(Self { seq, hash })
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            key: None,
            require_final_checkpoint: true,
            allow_partial: false,
            anchors: Vec::new(),
        }
    }
}

impl VerifyOptions {
    /// Default options with a public key.
    pub fn with_key(key: VerifyingKey) -> Self {
        Self {
            key: Some(key),
            ..Self::default()
        }
    }
}

/// What kind of problem a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The stored hash does not match the record's bytes: the record was edited.
    Edited,
    /// Not a record (no hash member, bad JSON, unterminated line before the end).
    Malformed,
    /// `seq` skips ahead: records deleted (or moved later).
    Gap,
    /// `seq` goes back or repeats: records reordered or inserted.
    OutOfOrder,
    /// `seq` is right but `prev` is not the previous hash: a record inserted or replaced.
    BrokenLink,
    /// The first record is not the start of a chain: earlier records or files are missing.
    NotGenesis,
    /// A checkpoint signature does not verify: forged or altered chain.
    BadSignature,
    /// A checkpoint was signed by another key.
    WrongKey,
    /// The record at an anchor's seq has another hash: rewritten since the anchor was noted.
    AnchorMismatch,
    /// An anchor's seq is past the end of the log: the tail was cut off.
    AnchorMissing,
    /// The log does not end with a signed checkpoint: its tail may have been cut off.
    MissingCheckpoint,
    /// No record at all.
    Empty,
}

/// The first bad record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// File it is in.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// Its `seq`, when readable.
    pub seq: Option<u64>,
    /// Classification.
    pub problem: Problem,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(s) = self.seq {
            write!(f, " (seq {s})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A torn (unterminated) last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Torn {
    /// File.
    pub file: PathBuf,
    /// 1-based line number of the torn line.
    pub line: u64,
    /// Its length in bytes.
    pub bytes: u64,
}

/// Per-file summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The file.
    pub file: PathBuf,
    /// Valid records read from it.
    pub records: u64,
    /// First seq in it.
    pub first_seq: Option<u64>,
    /// Last valid seq in it.
    pub last_seq: Option<u64>,
}

/// Result of [`verify()`]. `problem` is `None` when the log verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether everything checked out (`problem` is `None`).
    pub ok: bool,
    /// Files in chain order.
    pub files: Vec<FileSummary>,
    /// Valid records before the first problem (all of them when ok).
    pub records: u64,
    /// First seq.
    pub first_seq: Option<u64>,
    /// Last valid seq.
    pub last_seq: Option<u64>,
    /// `ts` of the first record.
    pub first_ts: Option<String>,
    /// `ts` of the last valid record.
    pub last_ts: Option<String>,
    /// Checkpoint records seen.
    pub checkpoints: u64,
    /// Checkpoint signatures verified with the key.
    pub signatures_verified: u64,
    /// Seq of the last checkpoint: with a key, every record before it is proven.
    pub last_checkpoint: Option<u64>,
    /// Whether a key was used.
    pub signed: bool,
    /// Torn last line, if any (a warning).
    pub torn: Option<Torn>,
    /// Hash of the last valid record: note it (with `last_seq`) as an anchor for later checks.
    pub head: Option<String>,
    /// Records per kind.
    pub kinds: std::collections::BTreeMap<String, u64>,
    /// Requests per decision: a `request` record counts 1, an aggregate record its `count`.
    pub decisions: std::collections::BTreeMap<String, u64>,
    /// Aggregate records (with `count`).
    pub aggregate_records: u64,
    /// Events the aggregate records stand for (the sum of their `count`).
    pub aggregated_events: u64,
    /// Records the log says were lost: `lost` of `audit_lost` and `audit_recovered` records.
    pub lost: u64,
    /// Anchors that matched.
    pub anchors_matched: u64,
    /// Warnings that are not tampering.
    pub warnings: Vec<String>,
    /// When the log starts mid-chain because retention removed older segments: which record
    /// vouches for that.
    pub retention: Option<String>,
    /// The first bad record.
    pub problem: Option<Finding>,
}

impl Report {
    /// True when no problem was found (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            None => write!(f, "OK: ")?,
            Some(p) => {
                writeln!(f, "FAILED: {p}")?;
                write!(f, "before it: ")?;
            }
        }
        write!(f, "{} records", self.records)?;
        if let (Some(a), Some(b)) = (self.first_seq, self.last_seq) {
            write!(f, ", seq {a} to {b}")?;
        }
        if let (Some(a), Some(b)) = (&self.first_ts, &self.last_ts) {
            write!(f, ", from {a} to {b}")?;
        }
        write!(
            f,
            ", {} file{}",
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" }
        )?;
        write!(f, ", {} checkpoints", self.checkpoints)?;
        if self.signed {
            write!(f, " ({} signatures verified", self.signatures_verified)?;
            match self.last_checkpoint {
                Some(s) => write!(f, ", signed up to seq {s})")?,
                None => write!(f, ")")?,
            }
        } else if self.checkpoints > 0 {
            write!(f, " (signatures not checked: no --key)")?;
        }
        if !self.decisions.is_empty() {
            let d: Vec<String> = self
                .decisions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            write!(f, "\ndecisions: {}", d.join(", "))?;
        }
        if self.aggregate_records > 0 {
            write!(
                f,
                "\naggregated: {} record(s) stand for {} events (repeated denials; count)",
                self.aggregate_records, self.aggregated_events
            )?;
        }
        if self.anchors_matched > 0 {
            write!(f, "\nanchors matched: {}", self.anchors_matched)?;
        }
        if let (Some(seq), Some(h), None) = (self.last_seq, &self.head, &self.problem) {
            write!(
                f,
                "\nchain head: {seq}:{h} (keep it; later: --anchor {seq}:{h})"
            )?;
        }
        if let Some(t) = &self.torn {
            write!(
                f,
                "\nwarning: torn last line at {}:{} ({} bytes): a crash during a write, not \
                 tampering; the writer cuts it off when it restarts",
                t.file.display(),
                t.line,
                t.bytes
            )?;
        }
        if let Some(r) = &self.retention {
            write!(f, "\nnote: {r}")?;
        }
        if self.lost > 0 {
            write!(
                f,
                "\nwarning: the log records that {} record(s) were lost before they could be \
                 written (see its audit_lost and audit_recovered records: `zonegate log show \
                 --kind audit_lost`)",
                self.lost
            )?;
        }
        for w in &self.warnings {
            write!(f, "\nwarning: {w}")?;
        }
        Ok(())
    }
}

fn first_seq_of(path: &Path) -> Result<Option<u64>, AuditError> {
    let f = File::open(path)
        .map_err(|e| AuditError::Io(format!("{}: cannot open: {e}", path.display())))?;
    let mut r = BufReader::new(f);
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)
        .map_err(|e| AuditError::Io(format!("{}: cannot read: {e}", path.display())))?;
    Ok(serde_json::from_slice::<Event>(&line)
        .ok()
        .and_then(|e| e.seq))
}

/// Longest line the verifier reads (records are a few KiB at most).
pub const MAX_LINE: u64 = 1 << 20;

/// A timestamp this many seconds before the latest one earns a warning.
pub const CLOCK_STEP_WARN_SECS: i64 = 1;

struct State<'a> {
    opts: &'a VerifyOptions,
    report: Report,
    latest_time: Option<time::OffsetDateTime>,
    time_warnings: usize,
    delayed_left: u64,
    last: Option<(u64, String, Kind, PathBuf, u64)>,
    /// The first record when it is not the start of a chain: (file, line, seq, prev). Accepted
    /// once a later `segment_removed` record names seq - 1 with hash = prev.
    unvouched_start: Option<(PathBuf, u64, u64, String)>,
}

impl State<'_> {
    fn finding(&mut self, file: &Path, line: u64, seq: Option<u64>, problem: Problem, msg: String) {
        self.report.problem = Some(Finding {
            file: file.to_path_buf(),
            line,
            seq,
            problem,
            message: msg,
        });
    }

    /// SR 2.11: warns (never fails) when a timestamp is missing, unparsable, or more than
    /// [`CLOCK_STEP_WARN_SECS`] earlier than the latest one seen (the clock stepped back).
    fn check_time(&mut self, file: &Path, lineno: u64, seq: u64, ts: Option<&str>) {
        const MAX_TIME_WARNINGS: usize = 20;
        if self.delayed_left > 0 {
            // Records written late after an outage keep their original (earlier) ts.
            self.delayed_left -= 1;
            return;
        }
        let t = ts.and_then(crate::event::parse_ts);
        let warning = match (t, self.latest_time) {
            (None, _) => Some(format!(
                "{}:{lineno} (seq {seq}): missing or invalid ts",
                file.display()
            )),
            (Some(t), Some(latest)) if (latest - t).whole_seconds() > CLOCK_STEP_WARN_SECS => {
                Some(format!(
                    "{}:{lineno} (seq {seq}): ts {} is {} s earlier than an earlier record's: \
                     the clock stepped back",
                    file.display(),
                    ts.unwrap_or("-"),
                    (latest - t).whole_seconds()
                ))
            }
            _ => None,
        };
        if let Some(t) = t {
            if self.latest_time.is_none_or(|l| t > l) {
                self.latest_time = Some(t);
            }
        }
        if let Some(w) = warning {
            self.time_warnings += 1;
            if self.time_warnings <= MAX_TIME_WARNINGS {
                self.report.warnings.push(w);
            } else if self.time_warnings == MAX_TIME_WARNINGS + 1 {
                self.report
                    .warnings
                    .push("more timestamp warnings not shown".into());
            }
        }
    }

    /// Checks one complete line; false when a problem was found.
    fn record(&mut self, file: &Path, lineno: u64, text: &str, fsum: &mut FileSummary) -> bool {
        let ev = match check_line(text) {
            Ok(ev) => ev,
            Err(e) => {
                let seq = serde_json::from_str::<Event>(text).ok().and_then(|e| e.seq);
                let problem = match e {
                    LineError::HashMismatch { .. } => Problem::Edited,
                    _ => Problem::Malformed,
                };
                self.finding(file, lineno, seq, problem, e.to_string());
                return false;
            }
        };
        let (Some(seq), Some(prev), Some(hash)) = (ev.seq, ev.prev.clone(), ev.hash.clone()) else {
            self.finding(
                file,
                lineno,
                ev.seq,
                Problem::Malformed,
                "incomplete record".into(),
            );
            return false;
        };
        match &self.last {
            None => {
                if prev != GENESIS_PREV {
                    if !self.opts.allow_partial {
                        // Retention may have removed the segments before it: decided when
                        // the chain has been read (a later record must vouch for it).
                        self.unvouched_start =
                            Some((file.to_path_buf(), lineno, seq, prev.clone()));
                    } else {
                        self.report.warnings.push(format!(
                            "the log starts at seq {seq}, not at the start of a chain \
                             (checked from there on)"
                        ));
                    }
                } else if seq != 0 {
                    self.finding(
                        file,
                        lineno,
                        Some(seq),
                        Problem::Malformed,
                        format!("chain start has seq {seq}, expected 0"),
                    );
                    return false;
                }
            }
            Some((last_seq, last_hash, _, _, _)) => {
                let expected = last_seq + 1;
                if seq > expected {
                    let msg = format!(
                        "expected seq {expected}, found {seq}: {} record(s) missing \
                         (deleted or moved)",
                        seq - expected
                    );
                    self.finding(file, lineno, Some(seq), Problem::Gap, msg);
                    return false;
                }
                if seq < expected {
                    let msg = format!(
                        "seq {seq} follows seq {last_seq}: records reordered, duplicated or \
                         inserted"
                    );
                    self.finding(file, lineno, Some(seq), Problem::OutOfOrder, msg);
                    return false;
                }
                if &prev != last_hash {
                    let msg = format!(
                        "prev {prev} is not the hash of record {last_seq} ({last_hash}): a \
                         record was inserted or replaced here"
                    );
                    self.finding(file, lineno, Some(seq), Problem::BrokenLink, msg);
                    return false;
                }
            }
        }
        if ev.kind == Kind::Checkpoint {
            self.report.checkpoints += 1;
            self.report.last_checkpoint = Some(seq);
            if let Some(key) = &self.opts.key {
                let want = keys::key_id(key);
                if ev.key_id.as_deref() != Some(want.as_str()) {
                    let msg = format!(
                        "checkpoint signed by key {} but the given key is {want}",
                        ev.key_id.as_deref().unwrap_or("(none)")
                    );
                    self.finding(file, lineno, Some(seq), Problem::WrongKey, msg);
                    return false;
                }
                let ok = ev
                    .signature
                    .as_deref()
                    .is_some_and(|s| keys::verify_checkpoint(key, seq, &prev, s));
                if !ok {
                    self.finding(
                        file,
                        lineno,
                        Some(seq),
                        Problem::BadSignature,
                        "checkpoint signature does not verify: forged or rewritten chain".into(),
                    );
                    return false;
                }
                self.report.signatures_verified += 1;
            }
        }
        if let Some(a) = self.opts.anchors.iter().find(|a| a.seq == seq) {
            if a.hash != hash {
                let msg = format!(
                    "record {seq} has hash {hash} but the anchor says {}: the log was rewritten \
                     since the anchor was noted",
                    a.hash
                );
                self.finding(file, lineno, Some(seq), Problem::AnchorMismatch, msg);
                return false;
            }
            self.report.anchors_matched += 1;
        }
        *self
            .report
            .kinds
            .entry(ev.kind.as_str().to_owned())
            .or_default() += 1;
        if let (Kind::Request, Some(d)) = (ev.kind, ev.decision) {
            *self
                .report
                .decisions
                .entry(d.as_str().to_owned())
                .or_default() += ev.count.unwrap_or(1);
        }
        if let Some(n) = ev.count {
            self.report.aggregate_records += 1;
            self.report.aggregated_events += n;
        }
        if matches!(ev.kind, Kind::AuditLost | Kind::AuditRecovered) {
            self.report.lost += ev.lost.unwrap_or(0);
        }
        self.check_time(file, lineno, seq, ev.ts.as_deref());
        if ev.kind == Kind::AuditRecovered {
            self.delayed_left = ev.delayed.unwrap_or(0);
        }
        if ev.kind == Kind::SegmentRemoved {
            let vouches = self.unvouched_start.as_ref().is_some_and(|(_, _, s, p)| {
                s.checked_sub(1) == ev.last_seq && ev.last_hash.as_deref() == Some(p.as_str())
            });
            if vouches {
                if let Some((_, _, start, _)) = self.unvouched_start.take() {
                    self.report.retention = Some(format!(
                        "the log starts at seq {start}: earlier records were removed by \
                         retention ({} up to seq {}, recorded at seq {seq})",
                        ev.file.as_deref().unwrap_or("a segment"),
                        start - 1
                    ));
                }
            }
        }
        let r = &mut self.report;
        r.records += 1;
        if r.first_seq.is_none() {
            r.first_seq = Some(seq);
            r.first_ts.clone_from(&ev.ts);
        }
        r.last_seq = Some(seq);
        if ev.ts.is_some() {
            r.last_ts.clone_from(&ev.ts);
        }
        fsum.records += 1;
        fsum.first_seq.get_or_insert(seq);
        fsum.last_seq = Some(seq);
        r.head = Some(hash.clone());
        self.last = Some((seq, hash, ev.kind, file.to_path_buf(), lineno));
        true
    }
}

/// Verifies the log made of `paths` (any order). `Err` only when a file cannot be read.
pub fn verify(paths: &[PathBuf], opts: &VerifyOptions) -> Result<Report, AuditError> {
    let mut ordered = Vec::with_capacity(paths.len());
    for p in paths {
        ordered.push((first_seq_of(p)?, p.clone()));
    }
    // Stable: files whose first seq is unreadable keep their place at the end.
    ordered.sort_by_key(|(s, _)| s.unwrap_or(u64::MAX));
    let mut st = State {
        opts,
        report: Report {
            signed: opts.key.is_some(),
            ..Report::default()
        },
        last: None,
        unvouched_start: None,
        latest_time: None,
        time_warnings: 0,
        delayed_left: 0,
    };
    let nfiles = ordered.len();
    'files: for (i, (_, path)) in ordered.iter().enumerate() {
        let is_last_file = i + 1 == nfiles;
        let f = File::open(path)
            .map_err(|e| AuditError::Io(format!("{}: cannot open: {e}", path.display())))?;
        let mut r = BufReader::new(f);
        let mut fsum = FileSummary {
            file: path.clone(),
            records: 0,
            first_seq: None,
            last_seq: None,
        };
        let mut buf = Vec::new();
        let mut lineno = 0u64;
        loop {
            buf.clear();
            let n = r
                .by_ref()
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| AuditError::Io(format!("{}: cannot read: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            if buf.last() != Some(&b'\n') && n as u64 > MAX_LINE {
                st.finding(
                    path,
                    lineno,
                    None,
                    Problem::Malformed,
                    format!("line longer than {MAX_LINE} bytes: not a record"),
                );
                st.report.files.push(fsum);
                break 'files;
            }
            if buf.last() != Some(&b'\n') {
                if is_last_file {
                    st.report.torn = Some(Torn {
                        file: path.clone(),
                        line: lineno,
                        bytes: n as u64,
                    });
                } else {
                    st.finding(
                        path,
                        lineno,
                        None,
                        Problem::Malformed,
                        "unterminated line at the end of a file that is not the last one".into(),
                    );
                    st.report.files.push(fsum);
                    break 'files;
                }
                break;
            }
            buf.pop();
            // The hash covers the raw bytes: a lossy decoding would map different bytes (FF
            // and EF BF BD) to the same text and let an edit verify.
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t,
                Err(e) => {
                    st.finding(
                        path,
                        lineno,
                        None,
                        Problem::Malformed,
                        format!(
                            "not valid UTF-8 at byte {} of the line: not a record as written",
                            e.valid_up_to() + 1
                        ),
                    );
                    st.report.files.push(fsum);
                    break 'files;
                }
            };
            if !st.record(path, lineno, text, &mut fsum) {
                st.report.files.push(fsum);
                break 'files;
            }
        }
        if fsum.records == 0 && st.report.problem.is_none() {
            st.report
                .warnings
                .push(format!("{}: no complete record", path.display()));
        }
        st.report.files.push(fsum);
    }
    if st.report.problem.is_none() {
        match &st.last {
            None => {
                let file = ordered.first().map(|(_, p)| p.clone()).unwrap_or_default();
                st.finding(
                    &file,
                    0,
                    None,
                    Problem::Empty,
                    "no audit record found".into(),
                );
            }
            Some((seq, _, kind, file, line)) => {
                let first = st.report.first_seq.unwrap_or(0);
                let beyond = opts.anchors.iter().find(|a| a.seq > *seq).cloned();
                for a in opts.anchors.iter().filter(|a| a.seq < first) {
                    st.report.warnings.push(format!(
                        "anchor {}:{} is before the first record checked (seq {first})",
                        a.seq, a.hash
                    ));
                }
                if let Some(a) = beyond {
                    let (seq, file, line) = (*seq, file.clone(), *line);
                    st.finding(
                        &file,
                        line,
                        Some(seq),
                        Problem::AnchorMissing,
                        format!(
                            "the log ends at seq {seq} but an anchor was noted at seq {}: \
                             its tail was cut off",
                            a.seq
                        ),
                    );
                } else if opts.key.is_some()
                    && opts.require_final_checkpoint
                    && *kind != Kind::Checkpoint
                {
                    let (seq, file, line) = (*seq, file.clone(), *line);
                    st.finding(
                        &file,
                        line,
                        Some(seq),
                        Problem::MissingCheckpoint,
                        format!(
                            "the log ends at seq {seq} without a signed checkpoint: its tail \
                             may have been cut off (or the writer crashed and has not \
                             restarted; --allow-unsigned-tail accepts that)"
                        ),
                    );
                }
            }
        }
    }
    if let Some((file, line, seq, _)) = st.unvouched_start.take() {
        if st.report.problem.is_some() {
            // The walk stopped before a `segment_removed` record could vouch for the start.
            st.report.warnings.push(format!(
                "{}:{line}: the log starts at seq {seq}, not at the start of a chain, and no \
                 segment_removed record before the problem vouches for that",
                file.display()
            ));
            st.report.ok = false;
            return Ok(st.report);
        }
        st.report.records = 0;
        st.finding(
            &file,
            line,
            Some(seq),
            Problem::NotGenesis,
            format!(
                "the first record (seq {seq}) is not the start of a chain and no \
                 segment_removed record vouches for what is before it: earlier records or files \
                 are missing (give every rotated file, or --allow-partial to check a later part \
                 alone)"
            ),
        );
    }
    st.report.ok = st.report.problem.is_none();
    Ok(st.report)
}
