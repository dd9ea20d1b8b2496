//! Filters and formats records for `zonegate log show` (SR 6.1: audit log accessibility).
//!
//! `show` reads records in chain order across files (like the verifier) but does not check the
//! chain: run `zonegate log verify` for that. Lines that are not records are counted and
//! skipped.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
    /// Source: `ip:port` exactly, an IP address (any port) or a network (CIDR).
    pub src: Option<SrcFilter>,
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
            if !e.src.as_deref().is_some_and(|src| want.matches(src)) {
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

/// What `--src` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SrcFilter {
    /// Exactly this `ip:port`.
    Socket(SocketAddr),
    /// This IP, any port.
    Ip(IpAddr),
    /// Any IP in this network (`10.0.0.0/24`, `fd00::/64`), any port.
    Net(IpAddr, u8),
}

impl SrcFilter {
    /// Parses `IP`, `IP:PORT`, `[IPv6]:PORT` or `IP/PREFIX`. Errors say what is wrong (a port
    /// above 65535, a prefix longer than the address, host bits set) so that a filter that can
    /// never match is refused instead of printing nothing.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((ip, prefix)) = s.split_once('/') {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("{s:?}: {ip:?} is not an IP address (expected IP/PREFIX)"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0-{max}"))?;
            if masked(ip, prefix) != ip {
                return Err(format!(
                    "{s:?}: host bits are set; did you mean {}/{prefix}?",
                    masked(ip, prefix)
                ));
            }
            return Ok(Self::Net(ip, prefix));
        }
        if let Ok(ip) = s.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Self::Socket(sa));
        }
        // Say why `ip:port` did not parse: the usual mistake is the port.
        if let Some((ip, port)) = s.rsplit_once(':') {
            if ip.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
                return Err(match port.parse::<u64>() {
                    Ok(p) => format!("{s:?}: port {p} is out of range (0-65535)"),
                    Err(_) => format!("{s:?}: {port:?} is not a port number"),
                });
            }
        }
        Err(format!(
            "{s:?}: expected an IP address, IP:PORT or a network such as 10.0.0.0/24"
        ))
    }

    /// Whether a record's `src` (`ip:port`, or a bare IP) is selected.
    pub fn matches(&self, src: &str) -> bool {
        let parsed = src
            .parse::<SocketAddr>()
            .map(|sa| (sa.ip(), Some(sa)))
            .or_else(|_| src.parse::<IpAddr>().map(|ip| (ip, None)));
        let Ok((ip, sa)) = parsed else {
            return false;
        };
        // An IPv4 client seen on a dual-stack socket is `::ffff:a.b.c.d`.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match *self {
            Self::Socket(want) => sa.is_some_and(|sa| sa.port() == want.port()) && ip == want.ip(),
            Self::Ip(want) => ip == want,
            Self::Net(net, prefix) => ip.is_ipv4() == net.is_ipv4() && masked(ip, prefix) == net,
        }
    }
}

/// `ip` with every bit after the first `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
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
                match (e.kind, e.decision) {
                    (_, Some(d)) => d.as_str().to_owned(),
                    // What happened to a forwarded write: done, or the exception.
                    (Kind::Outcome, None) => match e.exception {
                        None => "done".to_owned(),
                        Some(x) => format!("exception 0x{x:02X}"),
                    },
                    _ => "-".to_owned(),
                },
            );
            if let Some(r) = &e.rule {
                let _ = write!(s, " rule={r}");
            }
            if let Some(r) = &e.reason {
                let _ = write!(s, " reason={r}");
            }
            if let Some(x) = e.exception {
                match exception_name(x) {
                    Some(name) => {
                        let _ = write!(s, " exception=0x{x:02X} {name}");
                    }
                    None => {
                        let _ = write!(s, " exception=0x{x:02X}");
                    }
                }
            }
            if let Some(n) = e.count {
                let _ = write!(s, " count={n}");
            }
            if let (Some(a), Some(b)) = (&e.first_ts, &e.last_ts) {
                let _ = write!(s, " from {a} to {b}");
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
                let _ = write!(s, " {l} us");
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
            if let (Some(a), Some(b)) = (&e.first_ts, &e.last_ts) {
                let _ = write!(s, " from {a} to {b}");
            }
            if let Some(f) = &e.file {
                let _ = write!(s, " file={}", printable(f));
            }
            if let Some(n) = e.last_seq {
                let _ = write!(s, " last_seq={n}");
            }
        }
    }
    if let Some(m) = &e.message {
        let _ = write!(s, " \"{}\"", printable(m));
    }
    s.trim_end().to_owned()
}

/// Text for one terminal line: a line break becomes ` ⏎ ` (the record stays on one line, so
/// grep and sort still work), a tab a space, and any other control character (an escape
/// sequence someone put into a record) a visible `\u{..}` instead of acting on the terminal.
fn printable(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    let mut chars = m.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str(" ⏎ "),
            '\t' => out.push(' '),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Names of the standard Modbus exception codes (Modbus Application Protocol v1.1b3, §7).
fn exception_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x01 => "illegal_function",
        0x02 => "illegal_data_address",
        0x03 => "illegal_data_value",
        0x04 => "server_device_failure",
        0x05 => "acknowledge",
        0x06 => "server_device_busy",
        0x08 => "memory_parity_error",
        0x0A => "gateway_path_unavailable",
        0x0B => "gateway_target_no_response",
        _ => return None,
    })
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
        let with = |s: &str| Filter {
            src: Some(SrcFilter::parse(s).unwrap()),
            ..Filter::default()
        };
        for (s, ok) in [
            ("10.0.0.5", true),
            ("10.0.0.5:5020", true),
            ("10.0.0.5:5021", false),
            ("10.0.0.6", false),
            ("10.0.0.0/24", true),
            ("10.0.1.0/24", false),
            ("0.0.0.0/0", true),
            ("::/0", false),
        ] {
            assert_eq!(with(s).matches(&e), ok, "{s}");
        }
        let v6 = Event {
            src: Some("[fd00:2::7]:502".into()),
            ..Event::default()
        };
        assert!(with("fd00:2::/64").matches(&v6));
        assert!(with("fd00:2::7").matches(&v6));
        assert!(!with("fd00:3::/64").matches(&v6));
        let mapped = Event {
            src: Some("[::ffff:10.0.0.5]:502".into()),
            ..Event::default()
        };
        assert!(with("10.0.0.0/8").matches(&mapped));
    }

    #[test]
    fn src_filters_that_cannot_match_are_errors() {
        for (s, says) in [
            ("127.0.10.31:99999", "port 99999 is out of range"),
            ("127.0.10.0/33", "prefix length must be 0-32"),
            ("127.0.10.1/24", "did you mean 127.0.10.0/24"),
            ("fd00::1/129", "0-128"),
            ("plc-1", "expected an IP address"),
            ("10.0.0.1:http", "not a port number"),
        ] {
            let e = SrcFilter::parse(s).unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn lines_show_outcomes_and_escape_messages() {
        let done = Event {
            latency_us: Some(819),
            ..Event::outcome(5, None, 819)
        };
        let line = format_line(&done);
        assert!(line.contains("done") && line.contains("819 us"), "{line}");
        let late = Event::outcome(5, Some(0x0B), 1_000_000);
        let line = format_line(&late);
        assert!(line.contains("exception 0x0B"), "{line}");
        assert!(line.contains("gateway_target_no_response"), "{line}");
        let e = Event::notice(Kind::PolicyRejected, "line one\nline two\x1b[31m");
        let line = format_line(&e);
        assert!(
            line.contains("\"line one ⏎ line two\\u{1b}[31m\""),
            "{line}"
        );
        assert!(!line.contains("\\n") && !line.contains('\n'), "{line}");
        let p = Event {
            policy_hash: Some("é".repeat(20)),
            ..Event::new(Kind::Start)
        };
        assert!(format_line(&p).contains(&"é".repeat(16)));
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
