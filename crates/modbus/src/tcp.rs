//! Modbus/TCP framing: the MBAP header, a zero-copy ADU decoder, a streaming deframer and the
//! encoder.
//!
//! Spec: Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3 (MBAP header: transaction
//! id, protocol id = 0, length = unit id + PDU, unit id) and Modbus Application Protocol V1.1b3
//! §4.1 (PDU <= 253 bytes, so an ADU is at most 260 bytes and the length field 2..=254).
//! The length field is checked against its maximum before anything is sliced, so an ADU longer
//! than 260 bytes cannot be produced: the decoder never waits for more than 260 bytes.

use crate::error::{EncodeError, FrameError};
use crate::pdu::MAX_PDU_LEN;
use crate::stream::StreamBuf;
use crate::types::UnitId;

/// Length of the MBAP header (transaction id, protocol id, length, unit id).
pub const MBAP_HEADER_LEN: usize = 7;
/// Largest Modbus/TCP ADU: 7-byte header + 253-byte PDU.
pub const MAX_TCP_ADU_LEN: usize = MBAP_HEADER_LEN + MAX_PDU_LEN;
/// Smallest MBAP length field: unit id + function code.
pub const MIN_MBAP_LENGTH: u16 = 2;
/// Largest MBAP length field: unit id + 253-byte PDU.
pub const MAX_MBAP_LENGTH: u16 = 1 + MAX_PDU_LEN as u16;

/// The MBAP header of one ADU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MbapHeader {
    /// Pairs a response with its request; echoed by the server.
    pub transaction_id: u16,
    /// Always 0 for Modbus (anything else is refused).
    pub protocol_id: u16,
    /// Bytes following the length field: unit id + PDU, 2..=254.
    pub length: u16,
    /// Unit identifier (0xFF for a device addressed directly; 1..=247 behind a gateway).
    pub unit_id: UnitId,
}

/// One Modbus/TCP ADU, borrowing its PDU from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpAdu<'a> {
    /// The MBAP header.
    pub header: MbapHeader,
    /// The PDU (function code first), 1..=253 bytes.
    pub pdu: &'a [u8],
}

impl TcpAdu<'_> {
    /// Bytes the ADU occupies on the wire: 7 + PDU length.
    pub const fn wire_len(&self) -> usize {
        MBAP_HEADER_LEN + self.pdu.len()
    }

    /// The transaction id.
    pub const fn transaction_id(&self) -> u16 {
        self.header.transaction_id
    }

    /// The unit id.
    pub const fn unit_id(&self) -> UnitId {
        self.header.unit_id
    }
}

/// Reads the header at the start of `buf` and returns it with the ADU's wire length; `Ok(None)`
/// while the header is incomplete. Refuses a bad protocol id as soon as its 4 bytes are there and
/// a bad length as soon as its 6 bytes are there.
fn header(buf: &[u8]) -> Result<Option<(MbapHeader, usize)>, FrameError> {
    let Some(&[t0, t1, p0, p1]) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let protocol_id = u16::from_be_bytes([p0, p1]);
    if protocol_id != 0 {
        return Err(FrameError::ProtocolId(protocol_id));
    }
    let Some(&[_, _, _, _, l0, l1]) = buf.first_chunk::<6>() else {
        return Ok(None);
    };
    let length = u16::from_be_bytes([l0, l1]);
    if !(MIN_MBAP_LENGTH..=MAX_MBAP_LENGTH).contains(&length) {
        return Err(FrameError::Length(length));
    }
    let Some(&unit) = buf.get(6) else {
        return Ok(None);
    };
    Ok(Some((
        MbapHeader {
            transaction_id: u16::from_be_bytes([t0, t1]),
            protocol_id,
            length,
            unit_id: UnitId::new(unit),
        },
        6 + length as usize,
    )))
}

/// Looks at the start of `buf`: `Ok(None)` = need more bytes; `Ok(Some(adu))` = one whole ADU
/// (the caller advances by [`TcpAdu::wire_len`], never more than `buf.len()`); `Err` = broken
/// framing (protocol id != 0, length outside 2..=254), after which the stream cannot be
/// resynchronised and the connection should be closed. The PDU is not parsed here: use
/// [`crate::Request::parse`] / [`crate::Response::parse`].
#[inline]
pub fn decode_adu(buf: &[u8]) -> Result<Option<TcpAdu<'_>>, FrameError> {
    // Fast path: the whole 7-byte header is there (the usual case), so read it in one piece
    // with the same checks as `header`, in the same order.
    if let Some(&[t0, t1, p0, p1, l0, l1, unit]) = buf.first_chunk::<MBAP_HEADER_LEN>() {
        let protocol_id = u16::from_be_bytes([p0, p1]);
        if protocol_id != 0 {
            return Err(FrameError::ProtocolId(protocol_id));
        }
        let length = u16::from_be_bytes([l0, l1]);
        if !(MIN_MBAP_LENGTH..=MAX_MBAP_LENGTH).contains(&length) {
            return Err(FrameError::Length(length));
        }
        let header = MbapHeader {
            transaction_id: u16::from_be_bytes([t0, t1]),
            protocol_id,
            length,
            unit_id: UnitId::new(unit),
        };
        return Ok(buf
            .get(MBAP_HEADER_LEN..6 + usize::from(length))
            .map(|pdu| TcpAdu { header, pdu }));
    }
    let Some((header, wire_len)) = header(buf)? else {
        return Ok(None);
    };
    Ok(buf
        .get(MBAP_HEADER_LEN..wire_len)
        .map(|pdu| TcpAdu { header, pdu }))
}

/// Writes an ADU (MBAP header with protocol id 0, then `pdu`) into `out`; returns its length.
/// The PDU must be 1..=253 bytes; it is not parsed.
pub fn encode_adu(
    transaction_id: u16,
    unit_id: UnitId,
    pdu: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    if pdu.is_empty() || pdu.len() > MAX_PDU_LEN {
        return Err(EncodeError::PduLength(pdu.len()));
    }
    let total = MBAP_HEADER_LEN + pdu.len();
    let available = out.len();
    let Some(dst) = out.get_mut(..total) else {
        return Err(EncodeError::BufferTooSmall {
            needed: total,
            available,
        });
    };
    let (head, body) = dst.split_at_mut(MBAP_HEADER_LEN);
    let length = (1 + pdu.len()) as u16; // <= 254
    head.copy_from_slice(&[
        (transaction_id >> 8) as u8,
        transaction_id as u8,
        0,
        0,
        (length >> 8) as u8,
        length as u8,
        unit_id.get(),
    ]);
    body.copy_from_slice(pdu);
    Ok(total)
}

/// A streaming MBAP deframer for bytes that arrive in pieces, with a fixed internal buffer
/// (520 bytes, no allocation).
///
/// ```
/// use zonegate_modbus::TcpDeframer;
/// let wire = [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A];
/// let mut deframer = TcpDeframer::new();
/// let mut adus = 0;
/// for piece in wire.chunks(5) {
///     let mut input = piece;
///     while !input.is_empty() {
///         let n = deframer.feed(input);
///         input = &input[n..];
///         while let Some(adu) = deframer.next_adu().unwrap() {
///             assert_eq!(adu.pdu, &[0x03, 0x00, 0x00, 0x00, 0x0A]);
///             adus += 1;
///         }
///     }
/// }
/// assert_eq!(adus, 1);
/// ```
///
/// [`TcpDeframer::feed`] copies as many bytes as fit and returns how many; it returns 0 only
/// when the buffer holds whole ADUs not yet pulled with [`TcpDeframer::next_adu`] (or after an
/// error). After a [`FrameError`] the deframer keeps returning it: close the connection.
#[derive(Debug, Clone)]
pub struct TcpDeframer {
    buf: StreamBuf,
}

impl Default for TcpDeframer {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpDeframer {
    /// An empty deframer.
    pub const fn new() -> Self {
        Self {
            buf: StreamBuf::new(),
        }
    }

    /// Copies as much of `input` as fits into the buffer; returns the number of bytes taken.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        self.buf.feed(input)
    }

    /// The next whole ADU, `Ok(None)` when more bytes are needed. The ADU borrows the buffer
    /// until the next call.
    pub fn next_adu(&mut self) -> Result<Option<TcpAdu<'_>>, FrameError> {
        if let Some(e) = self.buf.error() {
            return Err(e);
        }
        let (header, wire_len) = match header(self.buf.pending()) {
            Ok(Some(found)) if found.1 <= self.buf.buffered() => found,
            Ok(_) => return Ok(None),
            Err(e) => return Err(self.buf.fail(e)),
        };
        let bytes = self.buf.consume(wire_len);
        Ok(Some(TcpAdu {
            header,
            pdu: bytes.get(MBAP_HEADER_LEN..).unwrap_or_default(),
        }))
    }

    /// Bytes buffered that do not yet form a whole ADU (at end of stream: a truncated ADU).
    pub const fn buffered(&self) -> usize {
        self.buf.buffered()
    }

    /// The error that stopped the deframer, if any.
    pub fn error(&self) -> Option<FrameError> {
        self.buf.error()
    }

    /// Drops buffered bytes and any error.
    pub fn reset(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fc3_request() {
        // | tid   | proto | len   | unit | fc | addr  | qty   |
        #[rustfmt::skip]
        let wire = [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03];
        let adu = decode_adu(&wire).unwrap().unwrap();
        assert_eq!(adu.header.transaction_id, 1);
        assert_eq!(adu.header.unit_id, UnitId::new(0x11));
        assert_eq!(adu.pdu, &wire[7..]);
        assert_eq!(adu.wire_len(), wire.len());
        for cut in 0..wire.len() {
            assert_eq!(decode_adu(&wire[..cut]), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn refuses_bad_headers_early() {
        assert_eq!(decode_adu(&[0, 1, 0, 1]), Err(FrameError::ProtocolId(1)));
        assert_eq!(decode_adu(&[0, 1, 0, 0, 0, 1]), Err(FrameError::Length(1)));
        assert_eq!(
            decode_adu(&[0, 1, 0, 0, 0, 255]),
            Err(FrameError::Length(255))
        );
    }

    /// The fast path of `decode_adu` (whole header present) agrees with the byte-by-byte
    /// `header` path on every header shape.
    #[test]
    fn fast_path_agrees_with_header() {
        fn slow(buf: &[u8]) -> Result<Option<TcpAdu<'_>>, FrameError> {
            let Some((header, wire_len)) = header(buf)? else {
                return Ok(None);
            };
            Ok(buf
                .get(MBAP_HEADER_LEN..wire_len)
                .map(|pdu| TcpAdu { header, pdu }))
        }
        let mut buf = [0u8; 300];
        for protocol in [0u16, 1, 0x0100, 0xFFFF] {
            for length in [0u16, 1, 2, 3, 6, 253, 254, 255, 256, 0xFFFF] {
                buf[2..4].copy_from_slice(&protocol.to_be_bytes());
                buf[4..6].copy_from_slice(&length.to_be_bytes());
                for cut in 0..buf.len() {
                    assert_eq!(
                        decode_adu(&buf[..cut]),
                        slow(&buf[..cut]),
                        "protocol {protocol} length {length} cut {cut}"
                    );
                }
            }
        }
        assert_eq!(
            decode_adu(&[0, 1, 0, 1, 0, 6, 1, 3]),
            Err(FrameError::ProtocolId(1))
        );
        assert_eq!(
            decode_adu(&[0, 1, 0, 0, 0, 255, 1, 3]),
            Err(FrameError::Length(255))
        );
    }

    #[test]
    fn encodes() {
        let mut out = [0u8; 16];
        let n = encode_adu(0x1234, UnitId::new(0xFF), &[0x03, 0, 0, 0, 1], &mut out).unwrap();
        assert_eq!(&out[..n], &[0x12, 0x34, 0, 0, 0, 6, 0xFF, 3, 0, 0, 0, 1]);
        assert!(encode_adu(0, UnitId::new(1), &[], &mut out).is_err());
        assert!(encode_adu(0, UnitId::new(1), &[3; 10], &mut out).is_err());
    }
}
