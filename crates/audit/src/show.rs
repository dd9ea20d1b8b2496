//! Filters and formats records for `zonegate log show` (SR 6.1: audit log accessibility).
//!
//! `show` reads records in chain order across files (like the verifier) but does not check the
//! chain: run `zonegate log verify` for that. Lines that are not records are counted and
//! skipped.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;

pub use time::OffsetDateTime;

use crate::error::AuditError;
use crate::event::{parse_ts, Decision, Event, Kind};

/// Which records to show. Every set criterion must match.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Filter {
    /// `ts` at or after.
    pub since: Option<OffsetDateTime>,
    /// `ts` before.
    pub until: Option<OffsetDateTime>,
    /// Exact conduit id.
    pub conduit: Option<String>,
    /// Source: `ip:port` exactly, or an IP address (any port).
    pub src: Option<String>,
    /// Function code number or name (`16` or `write_multiple_registers`).
    pub fc: Option<String>,
    /// Decision.
    pub decision: Option<Decision>,
    /// Record kind.
    pub kind: Option<Kind>,
    /// `seq` range, inclusive.
    pub seq: Option<(u64, u64)>,
}

/// Parses `N` or `A..B` / `A..=B` (inclusive) / `A..` for `--seq`.
pub fn parse_seq_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{s:?}: expected N, A..B or A.. (seq numbers)");
    let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
    match s.split_once("..") {
        None => num(s).map(|n| (n, n)),
        Some((a, b)) => {
            let b = b.strip_prefix('=').unwrap_or(b);
            let lo = if a.trim().is_empty() { 0 } else { num(a)? };
            let hi = if b.trim().is_empty() {
                u64::MAX
            } else {
                num(b)?
            };
            if lo > hi {
                return Err(bad());
            }
            Ok((lo, hi))
        }
    }
}

impl Filter {
    /// Whether `e` passes the filter.
    pub fn matches(&self, e: &Event) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = e.time() else { return false };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        if let Some(c) = &self.conduit {
            if e.conduit.as_deref() != Some(c.as_str()) {
                return false;
            }
        }
        if let Some(want) = &self.src {
            let Some(src) = e.src.as_deref() else {
                return false;
            };
            if src != want && !src_ip_matches(src, want) {
                return false;
            }
        }
        if let Some(fc) = &self.fc {
            let ok = match fc.parse::<u8>() {
                Ok(n) => e.fc == Some(n),
                Err(_) => e.function.as_deref() == Some(fc.as_str()),
            };
            if !ok {
                return false;
            }
        }
        if self.decision.is_some() && e.decision != self.decision {
            return false;
        }
        if self.kind.is_some_and(|k| e.kind != k) {
            return false;
        }
        if let Some((lo, hi)) = self.seq {
            if !e.seq.is_some_and(|s| (lo..=hi).contains(&s)) {
                return false;
            }
        }
        true
    }
}

fn src_ip_matches(src: &str, want: &str) -> bool {
    let Ok(want) = want.trim_matches(['[', ']']).parse::<IpAddr>() else {
        return false;
    };
    if let Ok(sa) = src.parse::<std::net::SocketAddr>() {
        return sa.ip() == want;
    }
    src.parse::<IpAddr>().is_ok_and(|ip| ip == want)
}

/// Parses a time for `--since`/`--until`: RFC 3339, or `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or
/// `YYYY-MM-DDTHH:MM:SS` (a space instead of `T` works too), taken as UTC.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Some(t) = parse_ts(s) {
        return Ok(t);
    }
    let norm = s.replacen(' ', "T", 1);
    let candidates = [
        format!("{norm}T00:00:00Z"),
        format!("{norm}:00Z"),
        format!("{norm}Z"),
    ];
    candidates
        .iter()
        .find_map(|c| parse_ts(c))
        .ok_or_else(|| {
            format!(
                "invalid time {s:?}: use RFC 3339 (2026-11-22T03:04:05Z) or YYYY-MM-DD[THH:MM[:SS]] (UTC)"
            )
        })
}

/// One aligned line for a person.
pub fn format_line(e: &Event) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "{:<27} {:>7} {:<15}",
        e.ts.as_deref().unwrap_or("-"),
        e.seq.map_or_else(|| "-".into(), |n| n.to_string()),
        e.kind.as_str()
    );
    match e.kind {
        Kind::Request | Kind::Outcome | Kind::Alert | Kind::Connection => {
            let _ = write!(
                s,
                " {:<14} {:<21} {:>4} {:<31} {:<18} {:<10}",
                e.conduit.as_deref().unwrap_or("-"),
                e.src.as_deref().unwrap_or("-"),
                e.unit.map_or_else(|| "-".into(), |u| format!("u{u}")),
                match (e.fc, e.function.as_deref()) {
                    (Some(fc), Some(name)) => format!("{fc:>2} {name}"),
                    (Some(fc), None) => format!("{fc:>2}"),
                    (None, _) => "-".into(),
                },
                match (e.table.as_deref(), e.address, e.quantity) {
                    (Some(t), Some(a), Some(q)) => format!("{t} {a}+{q}"),
                    (Some(t), Some(a), None) => format!("{t} {a}"),
                    _ => "-".into(),
                },
                e.decision.map_or("-", Decision::as_str),
            );
            if let Some(r) = &e.rule {
                let _ = write!(s, " rule={r}");
            }
            if let Some(r) = &e.reason {
                let _ = write!(s, " reason={r}");
            }
            if let Some(x) = e.exception {
                let _ = write!(s, " exception=0x{x:02X}");
            }
            if let Some(v) = &e.values {
                let shown: Vec<String> = v.iter().take(8).map(u16::to_string).collect();
                let more = if v.len() > 8 || e.values_truncated {
                    ",…"
                } else {
                    ""
                };
                let _ = write!(s, " values=[{}{more}]", shown.join(","));
            }
            if let Some(r) = e.ref_seq {
                let _ = write!(s, " ref_seq={r}");
            }
            if let Some(l) = e.latency_us {
                let _ = write!(s, " {l}us");
            }
            if let Some(r) = &e.role {
                let _ = write!(s, " role={r}");
            }
        }
        _ => {
            if let Some(g) = &e.gateway {
                let _ = write!(s, " gateway={g}");
            }
            if let Some(p) = &e.policy_hash {
                // By characters: a hash edited to non-ASCII must not panic the viewer.
                let short: String = p.chars().take(16).collect();
                let _ = write!(s, " policy={short}");
            }
            if let Some(k) = &e.key_id {
                let _ = write!(s, " key_id={k}");
            }
            if let Some(l) = e.lost {
                let _ = write!(s, " lost={l}");
            }
            if let Some(d) = e.delayed {
                let _ = write!(s, " delayed={d}");
            }
        }
    }
    if let Some(m) = &e.message {
        let _ = write!(s, " {m:?}");
    }
    s.trim_end().to_owned()
}

/// Counts from [`for_each`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Records read.
    pub read: u64,
    /// Records that matched.
    pub shown: u64,
    /// Lines that are not records (not UTF-8, not JSON).
    pub unreadable: u64,
    /// File and 1-based line of the first of them.
    pub first_unreadable: Option<(PathBuf, u64)>,
}

/// Calls `f(event, raw_line)` for every record in `paths` (chain order) that matches `filter`.
pub fn for_each(
    paths: &[PathBuf],
    filter: &Filter,
    mut f: impl FnMut(&Event, &str),
) -> Result<Counts, AuditError> {
    let mut ordered = Vec::new();
    for p in paths {
        let file = File::open(p)
            .map_err(|e| AuditError::Io(format!("{}: cannot open: {e}", p.display())))?;
        let mut first = String::new();
        let _ = BufReader::new(file).read_line(&mut first);
        let seq = serde_json::from_str::<Event>(&first)
            .ok()
            .and_then(|e| e.seq);
        ordered.push((seq.unwrap_or(u64::MAX), p.clone()));
    }
    ordered.sort_by_key(|(s, _)| *s);
    let mut counts = Counts::default();
    for (_, p) in &ordered {
        let file = File::open(p)
            .map_err(|e| AuditError::Io(format!("{}: cannot open: {e}", p.display())))?;
        let mut r = BufReader::new(file);
        let mut buf = Vec::new();
        let mut lineno = 0u64;
        loop {
            buf.clear();
            let n = r
                .read_until(b'\n', &mut buf)
                .map_err(|e| AuditError::Io(format!("{}: cannot read: {e}", p.display())))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            // Raw bytes, as the verifier reads them: a line that is not UTF-8 is not a record.
            let parsed = std::str::from_utf8(&buf).ok().and_then(|line| {
                let line = line.trim_end_matches('\n');
                serde_json::from_str::<Event>(line).ok().map(|e| (e, line))
            });
            match parsed {
                Some((e, line)) => {
                    counts.read += 1;
                    if filter.matches(&e) {
                        counts.shown += 1;
                        f(&e, line);
                    }
                }
                None => {
                    counts.unreadable += 1;
                    if counts.first_unreadable.is_none() {
                        counts.first_unreadable = Some((p.clone(), lineno));
                    }
                }
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_several_forms() {
        for s in [
            "2026-11-22",
            "2026-11-22T03:04",
            "2026-11-22 03:04:05",
            "2026-11-22T03:04:05.5+01:00",
        ] {
            assert!(parse_time(s).is_ok(), "{s}");
        }
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn seq_ranges_parse() {
        assert_eq!(parse_seq_range("5"), Ok((5, 5)));
        assert_eq!(parse_seq_range("5..9"), Ok((5, 9)));
        assert_eq!(parse_seq_range("5..=9"), Ok((5, 9)));
        assert_eq!(parse_seq_range("5.."), Ok((5, u64::MAX)));
        assert_eq!(parse_seq_range("..9"), Ok((0, 9)));
        assert!(parse_seq_range("9..5").is_err());
        assert!(parse_seq_range("x").is_err());
    }

    #[test]
    fn src_filter_matches_ip_or_socket() {
        let e = Event {
            src: Some("10.0.0.5:5020".into()),
            ..Event::default()
        };
        let mut f = Filter {
            src: Some("10.0.0.5".into()),
            ..Filter::default()
        };
        assert!(f.matches(&e));
        f.src = Some("10.0.0.5:5020".into());
        assert!(f.matches(&e));
        f.src = Some("10.0.0.6".into());
        assert!(!f.matches(&e));
    }

    #[test]
    fn fc_filter_by_number_or_name() {
        let e = Event {
            fc: Some(16),
            function: Some("write_multiple_registers".into()),
            ..Event::default()
        };
        for (fc, ok) in [
            ("16", true),
            ("write_multiple_registers", true),
            ("3", false),
        ] {
            let f = Filter {
                fc: Some(fc.into()),
                ..Filter::default()
            };
            assert_eq!(f.matches(&e), ok, "{fc}");
        }
    }
}
