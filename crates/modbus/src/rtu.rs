//! Modbus RTU framing: CRC-16/MODBUS, length derivation from the function code and byte counts,
//! a zero-copy ADU decoder, a streaming deframer and the encoder.
//!
//! Spec: Modbus over Serial Line V1.02 §2.2 (addresses: 0 broadcast, 1..=247 devices, 248..=255
//! reserved), §2.5.1 (RTU frame: address, PDU, CRC low byte first; at most 256 bytes), §6.2.2
//! (CRC: reflected polynomial 0xA001, initial value 0xFFFF) and Modbus Application Protocol
//! V1.1b3 §6 (the layouts the length is derived from).
//!
//! Framing choices (a security reviewer should know them):
//! - The 3.5-character silence is only a hint (USB adapters blur it), so [`decode_adu`] frames
//!   by the length the function code and byte counts imply, for requests and responses
//!   (exception responses are 5 bytes), then checks the CRC.
//! - Addresses 248..=255 are **refused** ([`FrameError::ReservedAddress`]); address 0
//!   (broadcast) is accepted in requests ([`crate::UnitId::is_broadcast`] flags it) and refused
//!   in responses ([`FrameError::BroadcastResponse`]).
//! - User-defined codes, FC 43 MEI 13, FC 8 sub-function 0x0000 (Return Query Data, any length)
//!   and unknown codes carry no length: [`decode_adu`] refuses them with
//!   [`FrameError::UnknownLength`] rather than guess. A caller that knows where a frame ends
//!   (line silence) can use [`decode_frame`], which checks the CRC over exactly that frame.

use crate::error::{EncodeError, FrameError};
use crate::pdu::MAX_PDU_LEN;
use crate::stream::StreamBuf;
pub use crate::types::Direction;
use crate::types::UnitId;

/// Largest RTU ADU: address + 253-byte PDU + CRC.
pub const MAX_RTU_ADU_LEN: usize = 1 + MAX_PDU_LEN + 2;
/// Smallest RTU ADU: address, function code, CRC.
pub const MIN_RTU_ADU_LEN: usize = 4;

/// CRC-16/MODBUS lookup table (reflected polynomial 0xA001), built at compile time.
const CRC_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-16/MODBUS of `bytes` (init 0xFFFF, reflected 0xA001). On the wire the low byte goes
/// first: `crc16(b"123456789") == 0x4B37`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0xFFFF_u16, |crc, &b| {
        (crc >> 8) ^ CRC_TABLE[((crc ^ b as u16) & 0xFF) as usize]
    })
}

/// One RTU ADU, borrowing its PDU from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtuAdu<'a> {
    /// The address byte (0 = broadcast).
    pub address: UnitId,
    /// The PDU (function code first).
    pub pdu: &'a [u8],
}

impl RtuAdu<'_> {
    /// Bytes the ADU occupies on the wire: 1 + PDU length + 2.
    pub const fn wire_len(&self) -> usize {
        1 + self.pdu.len() + 2
    }
}

/// The whole ADU length implied by the start of `buf` (address first), `Ok(None)` until enough
/// header bytes are there. Does not check address or CRC.
pub fn frame_len(buf: &[u8], direction: Direction) -> Result<Option<usize>, FrameError> {
    let Some(&fc) = buf.get(1) else {
        return Ok(None);
    };
    // `at(i)`: byte i of the ADU, or "need more".
    let at = |i: usize| buf.get(i).map(|&b| b as usize);
    let unknown = |sub: Option<u16>| FrameError::UnknownLength {
        function: fc,
        sub_function: sub,
    };
    let len = match direction {
        Direction::Request => match fc {
            1..=6 => Some(8),
            7 | 11 | 12 | 17 => Some(4),
            8 => match (at(2), at(3)) {
                (Some(hi), Some(lo)) => {
                    let sub = (hi << 8 | lo) as u16;
                    if sub == 0 {
                        return Err(unknown(Some(sub)));
                    }
                    Some(8)
                }
                _ => None,
            },
            15 | 16 => at(6).map(|bc| 9 + bc),
            20 | 21 => at(2).map(|bc| 5 + bc),
            22 => Some(10),
            23 => at(10).map(|bc| 13 + bc),
            24 => Some(6),
            43 => match at(2) {
                Some(0x0E) => Some(7),
                Some(mei) => return Err(unknown(Some(mei as u16))),
                None => None,
            },
            _ => return Err(unknown(None)),
        },
        Direction::Response => match fc {
            0x80..=0xFF => Some(5),
            1..=4 | 12 | 17 | 20 | 21 | 23 => at(2).map(|bc| 5 + bc),
            5 | 6 | 11 | 15 | 16 => Some(8),
            7 => Some(5),
            8 => match (at(2), at(3)) {
                (Some(hi), Some(lo)) => {
                    let sub = (hi << 8 | lo) as u16;
                    if sub == 0 {
                        return Err(unknown(Some(sub)));
                    }
                    Some(8)
                }
                _ => None,
            },
            22 => Some(10),
            24 => match (at(2), at(3)) {
                (Some(hi), Some(lo)) => Some(6 + (hi << 8 | lo)),
                _ => None,
            },
            43 => match at(2) {
                Some(0x0E) => device_id_len(buf)?,
                Some(mei) => return Err(unknown(Some(mei as u16))),
                None => None,
            },
            _ => return Err(unknown(None)),
        },
    };
    match len {
        Some(len) if len > MAX_RTU_ADU_LEN => Err(FrameError::TooLong {
            length: len,
            max: MAX_RTU_ADU_LEN,
        }),
        other => Ok(other),
    }
}

/// Length of an FC 43/14 response ADU: walk the object list (id, length, value) as far as the
/// bytes go.
fn device_id_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    // address, fc, mei, read code, conformity, more follows, next id, number of objects
    let Some(&count) = buf.get(7) else {
        return Ok(None);
    };
    let mut pos = 8usize;
    for _ in 0..count {
        let Some(&len) = buf.get(pos + 1) else {
            return Ok(None);
        };
        pos += 2 + len as usize;
        if pos + 2 > MAX_RTU_ADU_LEN {
            return Err(FrameError::TooLong {
                length: pos + 2,
                max: MAX_RTU_ADU_LEN,
            });
        }
    }
    Ok(Some(pos + 2))
}

fn check_address(address: u8, direction: Direction) -> Result<UnitId, FrameError> {
    let unit = UnitId::new(address);
    if unit.is_reserved_serial() {
        return Err(FrameError::ReservedAddress(address));
    }
    if unit.is_broadcast() && direction == Direction::Response {
        return Err(FrameError::BroadcastResponse);
    }
    Ok(unit)
}

/// Checks the CRC of a whole frame and splits it.
fn split_frame(frame: &[u8], address: UnitId) -> Result<RtuAdu<'_>, FrameError> {
    let Some((body, &[lo, hi])) = frame.split_last_chunk::<2>() else {
        return Err(FrameError::FrameLength {
            given: frame.len(),
            expected: 0,
        });
    };
    let received = u16::from_le_bytes([lo, hi]);
    let computed = crc16(body);
    if computed != received {
        return Err(FrameError::Crc { computed, received });
    }
    Ok(RtuAdu {
        address,
        pdu: body.get(1..).unwrap_or_default(),
    })
}

/// Looks at the start of `buf`: `Ok(None)` = need more bytes; `Ok(Some(adu))` = one whole ADU
/// whose CRC checks out (advance by [`RtuAdu::wire_len`]); `Err` = reserved address, response
/// from address 0, CRC mismatch, a byte count implying more than 256 bytes, or a frame whose
/// length cannot be derived (see the module documentation).
pub fn decode_adu(buf: &[u8], direction: Direction) -> Result<Option<RtuAdu<'_>>, FrameError> {
    let Some(&address) = buf.first() else {
        return Ok(None);
    };
    let unit = check_address(address, direction)?;
    let Some(len) = frame_len(buf, direction)? else {
        return Ok(None);
    };
    match buf.get(..len) {
        Some(frame) => split_frame(frame, unit).map(Some),
        None => Ok(None),
    }
}

/// Like [`decode_adu`] for a response, using the request it answers to frame the one response
/// whose length the header cannot tell: FC 8 sub-function 0x0000 (Return Query Data) echoes the
/// request, so its response ADU is as long as the request's. Any other response is framed by
/// [`decode_adu`]; responses to user-defined codes and MEI 13 still give
/// [`FrameError::UnknownLength`].
pub fn decode_response<'a>(
    buf: &'a [u8],
    request: &crate::Request<'_>,
) -> Result<Option<RtuAdu<'a>>, FrameError> {
    if let crate::Request::Diagnostics {
        sub_function: crate::diagnostics::RETURN_QUERY_DATA,
        data,
    } = *request
    {
        let Some(&address) = buf.first() else {
            return Ok(None);
        };
        let unit = check_address(address, Direction::Response)?;
        // An exception response (fc | 0x80) keeps its fixed length.
        if buf.get(1).is_some_and(|&fc| fc & 0x80 != 0) {
            return decode_adu(buf, Direction::Response);
        }
        let len = 1 + 3 + data.len() + 2;
        return match buf.get(..len) {
            Some(frame) => split_frame(frame, unit).map(Some),
            None => Ok(None),
        };
    }
    decode_adu(buf, Direction::Response)
}

/// Decodes a frame whose end the caller knows (3.5 characters of line silence): checks length
/// (4..=256), address and CRC over exactly `frame`, and, when the function code implies a
/// length, that it equals `frame.len()`. This also frames user-defined codes and the other
/// cases [`decode_adu`] refuses with [`FrameError::UnknownLength`].
pub fn decode_frame(frame: &[u8], direction: Direction) -> Result<RtuAdu<'_>, FrameError> {
    if frame.len() > MAX_RTU_ADU_LEN {
        return Err(FrameError::TooLong {
            length: frame.len(),
            max: MAX_RTU_ADU_LEN,
        });
    }
    let Some(&address) = frame.first().filter(|_| frame.len() >= MIN_RTU_ADU_LEN) else {
        return Err(FrameError::FrameLength {
            given: frame.len(),
            expected: 0,
        });
    };
    let unit = check_address(address, direction)?;
    match frame_len(frame, direction) {
        Ok(Some(len)) if len == frame.len() => {}
        Ok(Some(len)) => {
            return Err(FrameError::FrameLength {
                given: frame.len(),
                expected: len,
            })
        }
        Ok(None) => {
            return Err(FrameError::FrameLength {
                given: frame.len(),
                expected: 0,
            })
        }
        Err(FrameError::UnknownLength { .. }) => {}
        Err(e) => return Err(e),
    }
    split_frame(frame, unit)
}

/// Writes an RTU ADU (address, `pdu`, CRC low byte first) into `out`; returns its length. The PDU
/// must be 1..=253 bytes; it is not parsed.
pub fn encode_adu(address: UnitId, pdu: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    if pdu.is_empty() || pdu.len() > MAX_PDU_LEN {
        return Err(EncodeError::PduLength(pdu.len()));
    }
    let total = 1 + pdu.len() + 2;
    let available = out.len();
    let Some(dst) = out.get_mut(..total) else {
        return Err(EncodeError::BufferTooSmall {
            needed: total,
            available,
        });
    };
    let (body, crc) = dst.split_at_mut(total - 2);
    let (addr, pdu_out) = body.split_at_mut(1);
    addr.copy_from_slice(&[address.get()]);
    pdu_out.copy_from_slice(pdu);
    crc.copy_from_slice(&crc16(body).to_le_bytes());
    Ok(total)
}

/// A streaming RTU deframer for one direction, with a fixed internal buffer (no allocation).
/// Same contract as [`crate::TcpDeframer`]. After an error it keeps returning it until
/// [`RtuDeframer::reset`], which a serial reader calls at the next line silence.
#[derive(Debug, Clone)]
pub struct RtuDeframer {
    buf: StreamBuf,
    direction: Direction,
}

impl RtuDeframer {
    /// An empty deframer for frames travelling in `direction`.
    pub const fn new(direction: Direction) -> Self {
        Self {
            buf: StreamBuf::new(),
            direction,
        }
    }

    /// Copies as much of `input` as fits into the buffer; returns the number of bytes taken.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        self.buf.feed(input)
    }

    /// The next whole ADU with a good CRC, `Ok(None)` when more bytes are needed.
    pub fn next_adu(&mut self) -> Result<Option<RtuAdu<'_>>, FrameError> {
        if let Some(e) = self.buf.error() {
            return Err(e);
        }
        let pending = self.buf.pending();
        let (len, unit) = match decode_adu(pending, self.direction) {
            Ok(Some(adu)) => (adu.wire_len(), adu.address),
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.buf.fail(e)),
        };
        let frame = self.buf.consume(len);
        Ok(Some(RtuAdu {
            address: unit,
            pdu: frame.get(1..len.saturating_sub(2)).unwrap_or_default(),
        }))
    }

    /// Bytes buffered that do not yet form a whole ADU.
    pub const fn buffered(&self) -> usize {
        self.buf.buffered()
    }

    /// The error that stopped the deframer, if any.
    pub fn error(&self) -> Option<FrameError> {
        self.buf.error()
    }

    /// Drops buffered bytes and any error (call at a line silence to resynchronise).
    pub fn reset(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_vectors() {
        assert_eq!(crc16(b"123456789"), 0x4B37);
        assert_eq!(
            crc16(&[0x01, 0x03, 0x08, 0x2B, 0x00, 0x02]).to_le_bytes(),
            [0xB6, 0x63]
        );
        assert_eq!(crc16(&[]), 0xFFFF);
    }

    #[test]
    fn frames_fc3_request() {
        // | addr | fc | addr      | qty       | crc lo hi |
        let wire = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
        let adu = decode_adu(&wire, Direction::Request).unwrap().unwrap();
        assert_eq!(adu.address, UnitId::new(1));
        assert_eq!(adu.pdu, &wire[1..6]);
        for cut in 0..wire.len() {
            assert_eq!(decode_adu(&wire[..cut], Direction::Request), Ok(None));
        }
        let mut out = [0u8; 8];
        assert_eq!(encode_adu(UnitId::new(1), &wire[1..6], &mut out), Ok(8));
        assert_eq!(out, wire);
    }
}
