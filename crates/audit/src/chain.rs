//! The hash chain: canonical bytes, record hash, and the line format.
//!
//! # Canonical bytes (the definition an independent verifier implements)
//!
//! A record is one line of UTF-8 JSON ending in `\n` (a line that is not valid UTF-8 is not a
//! record: the hash is over the raw bytes, never over a lossy decoding). The writer serializes the [`Event`] with
//! `hash` absent: a compact JSON object (no whitespace), keys in the fixed order of
//! [`Event`]'s fields, `None` fields left out. **Those bytes are the canonical bytes.** Then
//!
//! ```text
//! hash = lowercase hex( SHA-256( canonical bytes ) )
//! line = canonical bytes without the final "}"  +  ,"hash":"<hash>"}  +  "\n"
//! ```
//!
//! So a verifier never re-serializes anything: it takes the line (without `\n`), checks that it
//! ends with `,"hash":"` + 64 lowercase hex digits + `"}`, removes that 75-byte suffix, appends
//! `}`, and hashes. Any change to any byte before the hash changes the hash.
//!
//! `prev` (a key inside the canonical bytes) is the previous record's `hash`, and
//! [`GENESIS_PREV`] (64 zeros) for the first record of a chain; `seq` counts from 0 without gaps.
//! The chain runs on across rotated files.

use sha2::{Digest, Sha256};

use crate::event::Event;

/// `prev` of the first record: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Length of the `,"hash":"<64 hex>"}` suffix of every line.
pub const HASH_SUFFIX_LEN: usize = 75;

/// Lowercase hex SHA-256 of `bytes` (also handy for a policy hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serializes `event` (whose `hash` must be `None`) into its line and hash.
///
/// Returns `(line including "\n", hash)`.
pub fn encode_line(event: &Event) -> Result<(String, String), serde_json::Error> {
    let canonical = serde_json::to_string(event)?;
    let hash = sha256_hex(canonical.as_bytes());
    let mut line = String::with_capacity(canonical.len() + HASH_SUFFIX_LEN + 1);
    // canonical always ends with '}' (it is a JSON object with at least `kind`).
    line.push_str(&canonical[..canonical.len() - 1]);
    line.push_str(",\"hash\":\"");
    line.push_str(&hash);
    line.push_str("\"}\n");
    Ok((line, hash))
}

/// Splits a line (without `\n`) into its canonical bytes and the stored hash.
///
/// `None` when the line does not end with a well-formed hash member.
pub fn split_line(line: &str) -> Option<(String, &str)> {
    let bytes = line.as_bytes();
    if bytes.len() < HASH_SUFFIX_LEN + 2 || !line.is_char_boundary(line.len() - HASH_SUFFIX_LEN) {
        return None;
    }
    let (head, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let hash = suffix.strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    if hash.len() != 64
        || !hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut canonical = String::with_capacity(head.len() + 1);
    canonical.push_str(head);
    canonical.push('}');
    Some((canonical, hash))
}

/// What [`check_line`] found wrong with one line on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// No well-formed `"hash"` member at the end.
    NoHash,
    /// The stored hash is not the hash of the canonical bytes: the record was edited.
    HashMismatch {
        /// Hash stored in the line.
        stored: String,
        /// Hash of the canonical bytes.
        computed: String,
    },
    /// The bytes hash correctly but are not a record (bad JSON, missing `seq`/`prev`).
    NotARecord(String),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoHash => f.write_str("line does not end with a \"hash\" member"),
            Self::HashMismatch { stored, computed } => write!(
                f,
                "hash mismatch: stored {stored}, computed {computed} (record edited)"
            ),
            Self::NotARecord(m) => write!(f, "not an audit record: {m}"),
        }
    }
}

/// Checks one line on its own: hash matches, JSON parses, `seq` and `prev` present.
///
/// Returns the parsed event (with `hash` filled).
pub fn check_line(line: &str) -> Result<Event, LineError> {
    let (canonical, stored) = split_line(line).ok_or(LineError::NoHash)?;
    let computed = sha256_hex(canonical.as_bytes());
    if computed != stored {
        return Err(LineError::HashMismatch {
            stored: stored.to_owned(),
            computed,
        });
    }
    let event: Event =
        serde_json::from_str(line).map_err(|e| LineError::NotARecord(e.to_string()))?;
    if event.seq.is_none() {
        return Err(LineError::NotARecord("no \"seq\"".into()));
    }
    match event.prev.as_deref() {
        Some(p) if p.len() == 64 => {}
        _ => return Err(LineError::NotARecord("no valid \"prev\"".into())),
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    #[test]
    fn line_round_trips_and_edits_are_caught() {
        let e = Event {
            seq: Some(0),
            prev: Some(GENESIS_PREV.into()),
            ..Event::new(Kind::Genesis)
        };
        let (line, hash) = encode_line(&e).unwrap();
        assert!(line.ends_with("\"}\n"));
        let body = line.trim_end_matches('\n');
        let parsed = check_line(body).unwrap();
        assert_eq!(parsed.hash.as_deref(), Some(hash.as_str()));
        let edited = body.replace("genesis", "start");
        assert!(matches!(
            check_line(&edited),
            Err(LineError::HashMismatch { .. })
        ));
        assert_eq!(check_line("{}"), Err(LineError::NoHash));
    }

    #[test]
    fn canonical_bytes_are_the_line_without_hash() {
        let e = Event {
            seq: Some(7),
            prev: Some(GENESIS_PREV.into()),
            ..Event::default()
        };
        let canonical = serde_json::to_string(&e).unwrap();
        let (line, hash) = encode_line(&e).unwrap();
        let (c2, h2) = split_line(line.trim_end()).unwrap();
        assert_eq!(c2, canonical);
        assert_eq!(h2, hash);
        assert_eq!(hash, sha256_hex(canonical.as_bytes()));
    }
}
