//! A hand-written serializer for [`Event`] that produces EXACTLY the canonical bytes of
//! [`crate::chain`] (what `serde_json::to_string` gives for the derived `Serialize`: compact,
//! keys in field order, `None` left out, `values_truncated` only when true), without allocating:
//! it appends to a caller's reused buffer. The writer thread uses it for every record.
//!
//! The unit tests compare it byte for byte with `serde_json` (including every string escape),
//! so the on-disk format and the hash definition do not change.

use std::io::Write as _;

use sha2::{Digest, Sha256};

use crate::event::Event;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string the way `serde_json` writes it: only `"`, `\` and control
/// characters below 0x20 are escaped (`\b \t \n \f \r` short forms, others `\u00xx`).
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        // The common case (ids, addresses, names, reasons): one copy.
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0a => b'n',
            0x0c => b'f',
            0x0d => b'r',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(b"00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of `bytes` must be escaped in a JSON string (`"`, `\\`, below 0x20),
/// tested eight bytes at a time with the classic "has a zero / has a byte below n" word
/// tricks (exact as a yes/no answer; it runs for every string of every record).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte below n (n <= 0x80) in v; n = 1: a zero byte.
    let has_below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        if has_below(v, 0x20) || has_below(v ^ (ONES * 0x22), 1) || has_below(v ^ (ONES * 0x5c), 1)
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // `v % 10` is below 10: the cast cannot truncate.
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes `,"key":` (or `{"key":` for the first member).
fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    out.push(if *first { b'{' } else { b',' });
    *first = false;
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn opt_str(out: &mut Vec<u8>, first: &mut bool, name: &str, v: Option<&str>) {
    if let Some(s) = v {
        key(out, first, name);
        push_str(out, s);
    }
}

fn opt_num(out: &mut Vec<u8>, first: &mut bool, name: &str, v: Option<u64>) {
    if let Some(n) = v {
        key(out, first, name);
        push_u64(out, n);
    }
}

/// Appends the canonical bytes of `event` to `out`, with `seq` and `prev` taken from the
/// arguments instead of the event, and `hash` always left out.
pub(crate) fn write_canonical(
    event: &Event,
    seq: Option<u64>,
    prev: Option<&str>,
    out: &mut Vec<u8>,
) {
    let e = event;
    let mut first = true;
    let f = &mut first;
    opt_str(out, f, "ts", e.ts.as_deref());
    opt_num(out, f, "seq", seq);
    key(out, f, "kind");
    push_str(out, e.kind.as_str());
    opt_str(out, f, "conduit", e.conduit.as_deref());
    opt_str(out, f, "src", e.src.as_deref());
    opt_str(out, f, "dst", e.dst.as_deref());
    opt_num(out, f, "unit", e.unit.map(u64::from));
    opt_num(out, f, "tid", e.tid.map(u64::from));
    opt_num(out, f, "fc", e.fc.map(u64::from));
    opt_str(out, f, "function", e.function.as_deref());
    opt_str(out, f, "access", e.access.as_deref());
    opt_str(out, f, "table", e.table.as_deref());
    opt_num(out, f, "address", e.address.map(u64::from));
    opt_num(out, f, "quantity", e.quantity.map(u64::from));
    if let Some(values) = &e.values {
        key(out, f, "values");
        out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_u64(out, u64::from(*v));
        }
        out.push(b']');
    }
    if e.values_truncated {
        key(out, f, "values_truncated");
        out.extend_from_slice(b"true");
    }
    opt_str(out, f, "decision", e.decision.map(|d| d.as_str()));
    opt_str(out, f, "reason", e.reason.as_deref());
    opt_str(out, f, "rule", e.rule.as_deref());
    opt_str(out, f, "mode", e.mode.as_deref());
    opt_num(out, f, "exception", e.exception.map(u64::from));
    opt_num(out, f, "latency_us", e.latency_us);
    opt_str(out, f, "role", e.role.as_deref());
    opt_num(out, f, "ref_seq", e.ref_seq);
    opt_str(out, f, "gateway", e.gateway.as_deref());
    opt_str(out, f, "policy_hash", e.policy_hash.as_deref());
    opt_str(out, f, "message", e.message.as_deref());
    opt_num(out, f, "lost", e.lost);
    opt_num(out, f, "delayed", e.delayed);
    opt_str(out, f, "key_id", e.key_id.as_deref());
    opt_str(out, f, "signature", e.signature.as_deref());
    opt_num(out, f, "request_id", e.request_id);
    opt_num(out, f, "count", e.count);
    opt_str(out, f, "first_ts", e.first_ts.as_deref());
    opt_str(out, f, "last_ts", e.last_ts.as_deref());
    opt_str(out, f, "file", e.file.as_deref());
    opt_num(out, f, "last_seq", e.last_seq);
    opt_str(out, f, "last_hash", e.last_hash.as_deref());
    opt_str(out, f, "peer_subject", e.peer_subject.as_deref());
    opt_str(out, f, "peer_fingerprint", e.peer_fingerprint.as_deref());
    opt_str(out, f, "prev", prev);
    out.push(b'}');
}

/// Lowercase hex of a SHA-256 digest, on the stack.
pub(crate) fn hex64(digest: &[u8]) -> [u8; 64] {
    let mut hex = [0u8; 64];
    for (i, b) in digest.iter().take(32).enumerate() {
        hex[2 * i] = HEX[usize::from(b >> 4)];
        hex[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    hex
}

/// Appends the whole line of `event` (canonical bytes with the hash member, then `\n`) to
/// `out` and returns the record's hash as 64 lowercase hex digits.
pub(crate) fn write_line(
    event: &Event,
    seq: Option<u64>,
    prev: Option<&str>,
    out: &mut Vec<u8>,
) -> [u8; 64] {
    let start = out.len();
    write_canonical(event, seq, prev, out);
    let hex = hex64(&Sha256::digest(&out[start..]));
    out.pop(); // the closing '}'
    let _ = out.write_all(b",\"hash\":\"");
    out.extend_from_slice(&hex);
    out.extend_from_slice(b"\"}\n");
    hex
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{Decision, Kind};

    fn same(e: &Event) {
        let want = serde_json::to_string(e).unwrap();
        let mut got = Vec::new();
        write_canonical(e, e.seq, e.prev.as_deref(), &mut got);
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    #[test]
    fn the_word_at_a_time_escape_test_agrees_with_the_byte_test() {
        // Every byte value at every position of strings that span whole words and a remainder,
        // over a background of plain, high (UTF-8) and near-miss bytes (0x20, 0x21, 0x23, 0x5b).
        for background in [b'a', 0xc3, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0xff] {
            for len in [1usize, 7, 8, 9, 16, 17] {
                for at in 0..len {
                    for b in 0u8..=255 {
                        let mut v = vec![background; len];
                        v[at] = b;
                        let slow = v.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
                        assert_eq!(needs_escape(&v), slow, "{v:02x?}");
                    }
                }
            }
        }
    }

    #[test]
    fn matches_serde_json_for_every_field() {
        let all: String = (0u8..=0x7f).map(char::from).collect::<String>() + "é€😀/\u{2028}";
        let full = Event {
            ts: Some("2026-01-01T00:00:00.000001Z".into()),
            seq: Some(u64::MAX),
            kind: Kind::PolicyRejected,
            conduit: Some(all.as_str().into()),
            src: Some("10.0.0.1:502".into()),
            dst: Some("\"quoted\" \\ back".into()),
            unit: Some(255),
            tid: Some(65535),
            fc: Some(0),
            function: Some("write_multiple_registers".into()),
            access: Some("write".into()),
            table: Some("holding".into()),
            address: Some(0),
            quantity: Some(125),
            values: Some(vec![0, 1, 9, 10, 65535]),
            values_truncated: true,
            decision: Some(Decision::WouldDeny),
            reason: Some(all.clone().into()),
            rule: Some("r1".into()),
            mode: Some("monitor".into()),
            exception: Some(11),
            latency_us: Some(1_234_567),
            role: Some("operator".into()),
            ref_seq: Some(42),
            gateway: Some("gw".into()),
            policy_hash: Some("ab".repeat(32)),
            message: Some(all),
            lost: Some(0),
            delayed: Some(7),
            key_id: Some("k".into()),
            signature: Some("s".into()),
            request_id: Some(7),
            count: Some(3),
            first_ts: Some("2026-01-01T00:00:00.000001Z".into()),
            last_ts: Some("2026-01-01T00:00:09.000001Z".into()),
            file: Some("audit.log.000001".into()),
            last_seq: Some(99),
            last_hash: Some("e".repeat(64)),
            at: None,
            peer_subject: Some("CN=op1,O=Plant \"A\"".into()),
            peer_fingerprint: Some("f".repeat(64).into()),
            prev: Some("0".repeat(64)),
            hash: None,
        };
        same(&full);
        same(&Event::default());
        same(&Event {
            values: Some(vec![]),
            ..Event::new(Kind::Unknown)
        });
        for k in [
            Kind::Request,
            Kind::Outcome,
            Kind::AuditRecovered,
            Kind::Alert,
            Kind::AuditLost,
            Kind::SegmentRemoved,
            Kind::Shadow,
        ] {
            same(&Event::new(k));
        }
        for d in [Decision::Allow, Decision::Deny] {
            same(&Event {
                decision: Some(d),
                ..Event::default()
            });
        }
        for c in 0u32..0x80 {
            let s = char::from_u32(c).unwrap().to_string();
            same(&Event {
                message: Some(s),
                ..Event::default()
            });
        }
    }

    #[test]
    fn line_matches_encode_line() {
        let e = Event {
            seq: Some(3),
            prev: Some("f".repeat(64)),
            message: Some("x\ny".into()),
            ..Event::default()
        };
        let (line, hash) = crate::chain::encode_line(&e).unwrap();
        let mut out = b"previous line\n".to_vec();
        let hex = write_line(&e, e.seq, e.prev.as_deref(), &mut out);
        assert_eq!(&out[14..], line.as_bytes());
        assert_eq!(&hex[..], hash.as_bytes());
    }
}
