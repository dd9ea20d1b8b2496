//! The datagram: one segment of one block, as read from the device at one time, with its tag.
//!
//! ```text
//! offset len  field
//!  0     4    magic "ZGRD"
//!  4     1    version (1)
//!  5     1    auth: 1 = HMAC-SHA256, 2 = Ed25519
//!  6     1    kind: 1 = values, 2 = unchanged (payload = SHA-256 of the values, 32 bytes)
//!  7     1    flags: bit 0 = part of a full-image refresh; other bits 0
//!  8     8    stream: first 8 bytes of SHA-256 of the replication's id and blocks
//! 16     8    epoch: the transmit agent's start, µs since the Unix epoch
//! 24     8    sequence, from 0 in each epoch, one per datagram (repeats share it)
//! 32     8    source time: when the device answered, µs since the Unix epoch
//! 40     2    block id (index in `blocks`)
//! 42     1    unit id
//! 43     1    table: the read function code (1 coils, 2 discrete, 3 holding, 4 input)
//! 44     2    first address of the segment
//! 46     2    count of registers or bits
//! 48     2    payload length n
//! 50     n    payload: registers big-endian, or bits packed LSB first (Modbus order)
//! 50+n   t    tag over bytes 0..50+n: 32 (HMAC) or 64 (Ed25519)
//! ```
//! All integers are big-endian. A datagram is at most [`MAX_DATAGRAM_LEN`] bytes, below the
//! 1472-byte UDP payload of a 1500-byte Ethernet MTU, so no IP fragmentation is ever needed
//! (a diode or a firewall may not reassemble fragments).

use std::fmt;

use sha2::{Digest, Sha256};
use zonegate_policy::{ReplicaTable, Replication, ReplicationAuth};

use crate::auth::{tag_len, TagKey, VerifyKey};

/// `"ZGRD"`.
pub const MAGIC: [u8; 4] = *b"ZGRD";
/// This format.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 50;
/// Most registers in one segment (1,000 payload bytes).
pub const SEGMENT_REGISTERS: u16 = 500;
/// Most bits in one segment (500 payload bytes).
pub const SEGMENT_BITS: u16 = 4000;
/// Largest datagram: header, 1,000 payload bytes, Ed25519 tag.
pub const MAX_DATAGRAM_LEN: usize = HEADER_LEN + 1000 + 64;
/// Length of the digest an `unchanged` datagram carries.
pub const DIGEST_LEN: usize = 32;

/// Datagram kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The values of the segment.
    Values,
    /// The segment still holds the values whose SHA-256 is the payload.
    Unchanged,
}

/// A decoded, authenticated datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Values or unchanged.
    pub kind: Kind,
    /// Sent as part of a full-image refresh.
    pub refresh: bool,
    /// The replication's stream id.
    pub stream: [u8; 8],
    /// The transmit agent's start time (µs since the Unix epoch).
    pub epoch: u64,
    /// Sequence number in the epoch.
    pub seq: u64,
    /// When the device answered (µs since the Unix epoch).
    pub source_us: u64,
    /// Block id.
    pub block: u16,
    /// Unit id.
    pub unit: u8,
    /// Table.
    pub table: ReplicaTable,
    /// First address.
    pub start: u16,
    /// Number of registers or bits.
    pub count: u16,
    /// Registers big-endian, bits packed, or a digest.
    pub payload: Vec<u8>,
}

/// Why bytes are not a datagram (before the tag is even looked at, or the tag is wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than a header and tag.
    Short(usize),
    /// Longer than [`MAX_DATAGRAM_LEN`].
    Long(usize),
    /// Not `ZGRD` version 1.
    Magic,
    /// Another authentication algorithm than the receiver's.
    Auth(u8),
    /// An unknown kind, table or flag.
    Field(&'static str),
    /// The payload length does not match the count and kind, or the datagram's length.
    Length,
    /// The tag does not authenticate the datagram.
    Tag,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short(n) => write!(f, "{n} bytes is too short for a datagram"),
            Self::Long(n) => write!(f, "{n} bytes is longer than any datagram"),
            Self::Magic => f.write_str("not a zonegate replication datagram (magic or version)"),
            Self::Auth(a) => write!(f, "authentication algorithm {a} is not the receiver's"),
            Self::Field(what) => write!(f, "invalid {what}"),
            Self::Length => f.write_str("payload length does not match the header"),
            Self::Tag => f.write_str("the authentication tag does not match"),
        }
    }
}

fn auth_code(auth: ReplicationAuth) -> u8 {
    match auth {
        ReplicationAuth::Ed25519 => 2,
        _ => 1,
    }
}

fn table_code(t: ReplicaTable) -> u8 {
    t.read_function()
}

/// Payload bytes of `count` values of `table`.
pub fn values_len(table: ReplicaTable, count: u16) -> usize {
    if table.is_bits() {
        usize::from(count).div_ceil(8)
    } else {
        usize::from(count) * 2
    }
}

/// The stream id of a replication: binds every datagram to the replication's id and its exact
/// block list, so a receive side configured differently rejects them at once.
pub fn stream_id(r: &Replication) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"zonegate-replicate v1\0");
    h.update(r.id.as_bytes());
    for b in &r.blocks {
        h.update([0, b.unit, table_code(b.table)]);
        h.update(b.range.start.to_be_bytes());
        h.update(b.range.end.to_be_bytes());
    }
    let d = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// The SHA-256 of a segment's values, as an `unchanged` datagram carries it.
pub fn digest(values: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(values).into()
}

/// The segments `(start, count)` a block is cut into, in address order.
pub fn segments(table: ReplicaTable, first: u16, last: u16) -> Vec<(u16, u16)> {
    let max = u32::from(if table.is_bits() {
        SEGMENT_BITS
    } else {
        SEGMENT_REGISTERS
    });
    let mut out = Vec::new();
    let mut start = u32::from(first);
    let end = u32::from(last);
    while start <= end {
        let count = (end - start + 1).min(max);
        out.push((start as u16, count as u16));
        start += count;
    }
    out
}

impl Datagram {
    /// Encodes and tags the datagram.
    pub fn encode(&self, key: &TagKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len() + 64);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(auth_code(key.auth()));
        out.push(match self.kind {
            Kind::Values => 1,
            Kind::Unchanged => 2,
        });
        out.push(u8::from(self.refresh));
        out.extend_from_slice(&self.stream);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.source_us.to_be_bytes());
        out.extend_from_slice(&self.block.to_be_bytes());
        out.push(self.unit);
        out.push(table_code(self.table));
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.payload);
        let body = out.clone();
        key.append_tag(&body, &mut out);
        out
    }

    /// Decodes and authenticates bytes from the network. The tag is checked before any field
    /// after the fixed prefix is trusted; every length is checked before slicing.
    pub fn decode(bytes: &[u8], key: &VerifyKey) -> Result<Self, DecodeError> {
        let tag_len = key.tag_len();
        if bytes.len() < HEADER_LEN + tag_len {
            return Err(DecodeError::Short(bytes.len()));
        }
        if bytes.len() > MAX_DATAGRAM_LEN {
            return Err(DecodeError::Long(bytes.len()));
        }
        if bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(DecodeError::Magic);
        }
        if bytes[5] != auth_code(key.auth()) {
            return Err(DecodeError::Auth(bytes[5]));
        }
        let n = usize::from(be16(bytes, 48));
        if HEADER_LEN + n + tag_len != bytes.len() {
            return Err(DecodeError::Length);
        }
        let (body, tag) = bytes.split_at(HEADER_LEN + n);
        if !key.verify(body, tag) {
            return Err(DecodeError::Tag);
        }
        let kind = match bytes[6] {
            1 => Kind::Values,
            2 => Kind::Unchanged,
            _ => return Err(DecodeError::Field("kind")),
        };
        if bytes[7] & !1 != 0 {
            return Err(DecodeError::Field("flags"));
        }
        let table = ReplicaTable::of_function(bytes[43]).ok_or(DecodeError::Field("table"))?;
        let count = be16(bytes, 46);
        let max = if table.is_bits() {
            SEGMENT_BITS
        } else {
            SEGMENT_REGISTERS
        };
        if count == 0 || count > max {
            return Err(DecodeError::Field("count"));
        }
        let want = match kind {
            Kind::Values => values_len(table, count),
            Kind::Unchanged => DIGEST_LEN,
        };
        if n != want {
            return Err(DecodeError::Length);
        }
        let mut stream = [0u8; 8];
        stream.copy_from_slice(&bytes[8..16]);
        Ok(Self {
            kind,
            refresh: bytes[7] & 1 == 1,
            stream,
            epoch: be64(bytes, 16),
            seq: be64(bytes, 24),
            source_us: be64(bytes, 32),
            block: be16(bytes, 40),
            unit: bytes[42],
            table,
            start: be16(bytes, 44),
            count,
            payload: body[HEADER_LEN..].to_vec(),
        })
    }
}

// Callers have checked that `bytes` holds HEADER_LEN bytes.
fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

/// The tag length for an algorithm, re-exported for sizing buffers.
pub fn tag_len_of(auth: ReplicationAuth) -> usize {
    tag_len(auth)
}
