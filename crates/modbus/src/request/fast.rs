//! The fast path of [`Request::parse`]: the common shapes (FC 1-6, 15, 16 and 23) recognised
//! with slice patterns, inlined into the caller.
//!
//! Separate because it duplicates rules of [`super::parse`] for speed (the gateway parses every
//! request on its data path); the test below checks the two agree on every edge.

use super::fields::coil_value;
use super::Request;
use crate::error::PduError;
use crate::pdu::{
    bit_bytes, CoilValues, RegisterValues, MAX_READ_BITS, MAX_READ_REGISTERS,
    MAX_RW_READ_REGISTERS, MAX_RW_WRITE_REGISTERS, MAX_WRITE_COILS, MAX_WRITE_REGISTERS,
};
use crate::types::AddressRange;

/// The fast path of [`Request::parse`]: returns `Ok` itself only for a PDU of FC 1-6, 15, 16 or
/// 23 that passes every check of [`super::parse::parse_body`] (exact length, quantity limits,
/// byte counts, FC 5 value, address + quantity <= 65536); anything else goes to
/// [`Request::parse_full`], which accepts or refuses it with the precise reason. Slice patterns
/// pin the length, so there is no per-field bounds check, and the `Result` is built in place (no
/// `Option` to convert).
/// `tests::fast_path_agrees_with_full_parser` checks both paths agree.
#[inline(always)]
pub(super) fn parse_fast(pdu: &[u8]) -> Result<Request<'_>, PduError> {
    match *pdu {
        [fc @ 1..=4, a0, a1, q0, q1] => {
            let qty = u16::from_be_bytes([q0, q1]);
            let max = if fc <= 2 {
                MAX_READ_BITS
            } else {
                MAX_READ_REGISTERS
            };
            if qty == 0 || qty > max {
                return Request::parse_full(pdu);
            }
            let Ok(range) = AddressRange::new(u16::from_be_bytes([a0, a1]), qty) else {
                return Request::parse_full(pdu);
            };
            Ok(match fc {
                1 => Request::ReadCoils(range),
                2 => Request::ReadDiscreteInputs(range),
                3 => Request::ReadHoldingRegisters(range),
                _ => Request::ReadInputRegisters(range),
            })
        }
        [5, a0, a1, v0, v1] => {
            let Ok(value) = coil_value(u16::from_be_bytes([v0, v1])) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::WriteSingleCoil {
                address: u16::from_be_bytes([a0, a1]),
                value,
            })
        }
        [6, a0, a1, v0, v1] => Ok(Request::WriteSingleRegister {
            address: u16::from_be_bytes([a0, a1]),
            value: u16::from_be_bytes([v0, v1]),
        }),
        [15, a0, a1, q0, q1, bc, ref data @ ..] => {
            let qty = u16::from_be_bytes([q0, q1]);
            // 1..=1968 coils, byte count ⌈q/8⌉, exactly that many bytes (PDU <= 6 + 246).
            if qty == 0
                || qty > MAX_WRITE_COILS
                || usize::from(bc) != bit_bytes(qty)
                || data.len() != usize::from(bc)
            {
                return Request::parse_full(pdu);
            }
            let Ok(range) = AddressRange::new(u16::from_be_bytes([a0, a1]), qty) else {
                return Request::parse_full(pdu);
            };
            let Some(values) = CoilValues::new(data, qty) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::WriteMultipleCoils { range, values })
        }
        [16, a0, a1, q0, q1, bc, ref data @ ..] => {
            let qty = u16::from_be_bytes([q0, q1]);
            // 1..=123 registers, byte count 2q, exactly that many bytes (PDU <= 6 + 246).
            if qty == 0
                || qty > MAX_WRITE_REGISTERS
                || usize::from(bc) != 2 * usize::from(qty)
                || data.len() != usize::from(bc)
            {
                return Request::parse_full(pdu);
            }
            let Ok(range) = AddressRange::new(u16::from_be_bytes([a0, a1]), qty) else {
                return Request::parse_full(pdu);
            };
            let Some(values) = RegisterValues::new(data) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::WriteMultipleRegisters { range, values })
        }
        [23, ra0, ra1, rq0, rq1, wa0, wa1, wq0, wq1, bc, ref data @ ..] => {
            let read_qty = u16::from_be_bytes([rq0, rq1]);
            let write_qty = u16::from_be_bytes([wq0, wq1]);
            // read 1..=125, write 1..=121, byte count 2·wq, exactly that many bytes
            // (PDU <= 10 + 242).
            if read_qty == 0
                || read_qty > MAX_RW_READ_REGISTERS
                || write_qty == 0
                || write_qty > MAX_RW_WRITE_REGISTERS
                || usize::from(bc) != 2 * usize::from(write_qty)
                || data.len() != usize::from(bc)
            {
                return Request::parse_full(pdu);
            }
            let Ok(read) = AddressRange::new(u16::from_be_bytes([ra0, ra1]), read_qty) else {
                return Request::parse_full(pdu);
            };
            let Ok(write) = AddressRange::new(u16::from_be_bytes([wa0, wa1]), write_qty) else {
                return Request::parse_full(pdu);
            };
            let Some(values) = RegisterValues::new(data) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::ReadWriteMultipleRegisters {
                read,
                write,
                values,
            })
        }
        _ => Request::parse_full(pdu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Boundary values for 16-bit address and quantity fields.
    const EDGES: [u16; 14] = [0, 1, 2, 7, 8, 120, 121, 122, 123, 124, 125, 126, 1968, 2000];

    /// Checks the fast path (inside `parse`) and the full parser agree on `pdu`; true when
    /// it is accepted.
    fn agree(pdu: &[u8]) -> bool {
        let full = Request::parse_full(pdu);
        assert_eq!(Request::parse(pdu), full, "{pdu:02X?}");
        full.is_ok()
    }

    #[test]
    fn fast_path_agrees_with_full_parser() {
        // Accepted PDUs per function code, so no section passes vacuously.
        let mut accepted = [0u32; 24];
        let addresses = [
            0u16,
            1,
            0x6B,
            0xFF00,
            0xFFFE,
            0xFFFF,
            0xFFFF - 124,
            0xFFFF - 1999,
        ];
        for fc in [1u8, 2, 3, 4, 5, 6, 7, 15, 16, 23] {
            for &address in &addresses {
                for q in EDGES.into_iter().chain([0xFF00, 0xFFFF, 0x00FF]) {
                    let mut pdu = vec![fc];
                    pdu.extend(address.to_be_bytes());
                    pdu.extend(q.to_be_bytes());
                    for cut in 0..pdu.len() {
                        accepted[usize::from(fc)] += u32::from(agree(&pdu[..cut]));
                    }
                    accepted[usize::from(fc)] += u32::from(agree(&pdu));
                    pdu.push(0);
                    accepted[usize::from(fc)] += u32::from(agree(&pdu));
                }
            }
        }
        // FC 16: every quantity 0..=130 against byte counts and data lengths around 2q.
        for &address in &addresses {
            for q in 0u16..=130 {
                for bc in [2 * q, (2 * q).wrapping_sub(1), 2 * q + 1, 2 * q + 2] {
                    for extra in [-2i32, -1, 0, 1] {
                        let len = i32::from(bc) + extra;
                        if !(0..=300).contains(&len) {
                            continue;
                        }
                        let mut pdu = vec![16];
                        pdu.extend(address.to_be_bytes());
                        pdu.extend(q.to_be_bytes());
                        pdu.push(bc as u8);
                        pdu.extend((0..len).map(|i| i as u8));
                        accepted[usize::from(pdu[0])] += u32::from(agree(&pdu));
                    }
                }
            }
        }
        // FC 15: quantities around the byte boundaries and the limit, byte counts around ⌈q/8⌉.
        for &address in &addresses {
            for q in (0u16..=20).chain(1960..=1975).chain([0xFFFF]) {
                let expected = bit_bytes(q) as i32;
                for bc in [expected - 1, expected, expected + 1] {
                    for extra in [-1i32, 0, 1] {
                        let len = bc + extra;
                        if !(0..=255).contains(&bc) || !(0..=300).contains(&len) {
                            continue;
                        }
                        let mut pdu = vec![15];
                        pdu.extend(address.to_be_bytes());
                        pdu.extend(q.to_be_bytes());
                        pdu.push(bc as u8);
                        pdu.extend((0..len).map(|i| i as u8));
                        accepted[usize::from(pdu[0])] += u32::from(agree(&pdu));
                    }
                }
            }
        }
        // FC 23: read and write quantities at their edges, byte counts around 2·wq.
        for &address in &addresses {
            for rq in EDGES {
                for wq in EDGES {
                    for bc in [2 * wq, 2 * wq + 1, (2 * wq).wrapping_sub(2)] {
                        for extra in [-1i32, 0, 1] {
                            let len = i32::from(bc as u8) + extra;
                            if len < 0 {
                                continue;
                            }
                            let mut pdu = vec![23];
                            pdu.extend(address.to_be_bytes());
                            pdu.extend(rq.to_be_bytes());
                            pdu.extend(0x10u16.to_be_bytes());
                            pdu.extend(wq.to_be_bytes());
                            pdu.push(bc as u8);
                            pdu.extend((0..len).map(|i| i as u8));
                            accepted[23] += u32::from(agree(&pdu));
                        }
                    }
                }
            }
        }
        // Random PDUs of the fast-path function codes (xorshift, fixed seed).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let fc = [1u8, 2, 3, 4, 5, 6, 15, 16, 23][(x % 9) as usize];
            let len = ((x >> 8) % 14) as usize;
            let mut pdu = vec![fc];
            pdu.extend((0..len).map(|i| (x >> (16 + 4 * (i % 12))) as u8));
            accepted[usize::from(fc)] += u32::from(agree(&pdu));
        }
        for fc in [1, 2, 3, 4, 5, 6, 15, 16, 23] {
            assert!(accepted[fc] > 10, "FC {fc}: only {} accepted", accepted[fc]);
        }
    }
}
