//! The IEC 62443-3-3 system requirements table (`data/iec62443-3-3.csv`), embedded in the binary
//! and parsed at run time.
//!
//! Source and status of the data are in the CSV header and `data/README.md`: a secondary source
//! (an academic transcription of IEC 62443-3-3:2013 Annex B), to be confirmed against the purchased
//! standard before anyone claims conformance.

use std::fmt;

use serde::Serialize;

use zonegate_policy::Fr;

/// The CSV text as shipped.
pub const CSV: &str = include_str!("../data/iec62443-3-3.csv");

/// One system requirement (SR) or requirement enhancement (RE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// Stable key: "SR 5.2" or "SR 5.2 RE1".
    pub id: String,
    /// Foundational requirement index (0 = IAC ... 6 = RA).
    pub fr: usize,
    /// "5.2".
    pub sr: String,
    /// Enhancement number, 0 for the base SR.
    pub re: u8,
    /// Lowest security level (1..=4) at which it applies.
    pub sl: u8,
    /// Title.
    pub title: String,
}

impl Requirement {
    /// The FR abbreviation ("RDF").
    pub fn fr_name(&self) -> &'static str {
        Fr::ALL[self.fr].as_str()
    }
}

/// A malformed line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    /// 1-based line number in the CSV.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iec62443-3-3.csv:{}: {}", self.line, self.message)
    }
}

impl std::error::Error for TableError {}

/// Parses a table in the shipped format: `#` comment lines, a header line starting with `id,`,
/// then `id,fr,sr,re,sl,title` rows (the title may contain commas).
pub fn parse(text: &str) -> Result<Vec<Requirement>, TableError> {
    let mut out = Vec::new();
    let mut seen_header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if !seen_header {
            if !l.starts_with("id,") {
                return Err(TableError {
                    line,
                    message: "expected the header line id,fr,sr,re,sl,title".into(),
                });
            }
            seen_header = true;
            continue;
        }
        let parts: Vec<&str> = l.splitn(6, ',').collect();
        let [id, fr, sr, re, sl, title] = parts.as_slice() else {
            return Err(TableError {
                line,
                message: format!("expected 6 fields, found {}", parts.len()),
            });
        };
        let err = |m: String| TableError { line, message: m };
        let fr = Fr::ALL
            .iter()
            .position(|f| f.as_str() == *fr)
            .ok_or_else(|| err(format!("unknown foundational requirement {fr:?}")))?;
        let re: u8 = re
            .parse()
            .map_err(|_| err(format!("enhancement {re:?} is not a number")))?;
        let sl: u8 = sl
            .parse()
            .ok()
            .filter(|s| (1..=4).contains(s))
            .ok_or_else(|| err(format!("security level {sl:?} is not 1..4")))?;
        let expect = if re == 0 {
            format!("SR {sr}")
        } else {
            format!("SR {sr} RE{re}")
        };
        if *id != expect {
            return Err(err(format!("id {id:?} does not match sr/re ({expect})")));
        }
        if !sr.starts_with(&format!("{}.", fr + 1)) {
            return Err(err(format!("SR {sr} is not in FR {}", Fr::ALL[fr])));
        }
        out.push(Requirement {
            id: (*id).to_owned(),
            fr,
            sr: (*sr).to_owned(),
            re,
            sl,
            title: title.trim().to_owned(),
        });
    }
    if out.is_empty() {
        return Err(TableError {
            line: 1,
            message: "no requirement rows".into(),
        });
    }
    Ok(out)
}

/// The shipped table, parsed.
pub fn table() -> Result<Vec<Requirement>, TableError> {
    parse(CSV)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_is_complete() {
        let t = table().unwrap();
        assert_eq!(t.len(), 100);
        let get = |id: &str| t.iter().find(|r| r.id == id).unwrap();
        assert_eq!(get("SR 5.2 RE1").sl, 2);
        assert_eq!(get("SR 3.1 RE1").sl, 3);
        assert_eq!(get("SR 1.2").sl, 2);
        assert_eq!(get("SR 3.9").sl, 2);
        assert_eq!(get("SR 3.4").sl, 2);
        assert_eq!(get("SR 7.7").fr_name(), "RA");
        // 51 base SRs in IEC 62443-3-3:2013.
        assert_eq!(t.iter().filter(|r| r.re == 0).count(), 51);
        let mut ids: Vec<_> = t.iter().map(|r| &r.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn malformed_rows_are_reported_with_their_line() {
        let e = parse("id,fr,sr,re,sl,title\nSR 1.1,IAC,1.1,0,5,x\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("id,fr,sr,re,sl,title\nSR 1.1,XX,1.1,0,1,x\n").is_err());
        assert!(parse("id,fr,sr,re,sl,title\nSR 2.1,IAC,2.1,0,1,x\n").is_err());
        assert!(parse("# only comments\n").is_err());
        let ok = parse("id,fr,sr,re,sl,title\nSR 1.1 RE1,IAC,1.1,1,2,a, b\n").unwrap();
        assert_eq!(ok[0].title, "a, b");
    }
}
