//! The few Modbus/TCP frames the load generator sends, encoded by hand, and the checks on the
//! answers.
//!
//! Deliberately independent of `zonegate-modbus`: the benchmark must measure the gateway, not
//! share code with it. Only two requests exist: FC 3 (read holding registers) and FC 16 (write
//! multiple registers). A response is accepted only if its MBAP header (transaction id, protocol
//! id 0, length, unit id), function code and byte count / echoed range match the request.

use std::fmt;

/// Length of the MBAP header (transaction id, protocol id, length, unit id).
pub(crate) const MBAP_LEN: usize = 7;

/// Largest register count one FC 16 request may carry (spec limit 123).
pub(crate) const MAX_WRITE_COUNT: u16 = 123;

/// Largest register count one FC 3 request may carry (spec limit 125).
pub(crate) const MAX_READ_COUNT: u16 = 125;

/// What the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// FC 3: read `count` holding registers from `address`.
    Read,
    /// FC 16: write `count` holding registers from `address`, values in `[min, max]`.
    Write {
        /// Smallest value written.
        min: u16,
        /// Largest value written.
        max: u16,
    },
}

/// The fixed part of every request of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    /// The operation.
    pub(crate) op: Op,
    /// Unit id (MBAP byte 6).
    pub(crate) unit: u8,
    /// First register (zero-based protocol address).
    pub(crate) address: u16,
    /// Number of registers.
    pub(crate) count: u16,
}

/// Why a response was not the answer to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadResponse {
    /// The MBAP header is wrong (protocol id or length out of range).
    Header(String),
    /// Well framed, but not the answer we asked for (tid, unit, function, byte count, echo).
    Mismatch(String),
    /// A Modbus exception response with this code (the stream is still in sync).
    Exception(u8),
}

impl fmt::Display for BadResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(m) => write!(f, "bad MBAP header: {m}"),
            Self::Mismatch(m) => write!(f, "response does not match the request: {m}"),
            Self::Exception(c) => write!(f, "exception code {c:#04x}"),
        }
    }
}

impl Spec {
    /// Checks the limits of the spec; the message names the bad field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let max = match self.op {
            Op::Read => MAX_READ_COUNT,
            Op::Write { min, max } => {
                if min > max {
                    return Err(format!("write value min {min} is above max {max}"));
                }
                MAX_WRITE_COUNT
            }
        };
        if self.count == 0 || self.count > max {
            return Err(format!("register count {} outside 1..={max}", self.count));
        }
        if u32::from(self.address) + u32::from(self.count) > 65_536 {
            return Err(format!(
                "address {} + count {} runs past register 65535",
                self.address, self.count
            ));
        }
        Ok(())
    }

    /// Encodes request number `seq` with transaction id `tid` into `out` (cleared first).
    /// Write values cycle through `[min, max]` with `seq`, so every value stays in bounds.
    pub(crate) fn encode(&self, tid: u16, seq: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&tid.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        match self.op {
            Op::Read => {
                out.extend_from_slice(&6u16.to_be_bytes());
                out.push(self.unit);
                out.push(3);
                out.extend_from_slice(&self.address.to_be_bytes());
                out.extend_from_slice(&self.count.to_be_bytes());
            }
            Op::Write { min, max } => {
                let bytes = self.count * 2; // count <= 123: fits in u8 below
                out.extend_from_slice(&(7 + bytes).to_be_bytes());
                out.push(self.unit);
                out.push(16);
                out.extend_from_slice(&self.address.to_be_bytes());
                out.extend_from_slice(&self.count.to_be_bytes());
                out.push(u8::try_from(bytes).unwrap_or(u8::MAX));
                let span = u64::from(max - min) + 1;
                for i in 0..u64::from(self.count) {
                    let offset = u16::try_from((seq + i) % span).unwrap_or(0);
                    out.extend_from_slice(&(min + offset).to_be_bytes());
                }
            }
        }
    }

    /// Checks an MBAP header; returns how many bytes follow it (the PDU length).
    pub(crate) fn check_header(header: &[u8; MBAP_LEN]) -> Result<usize, BadResponse> {
        let protocol = u16::from_be_bytes([header[2], header[3]]);
        let length = u16::from_be_bytes([header[4], header[5]]);
        if protocol != 0 {
            return Err(BadResponse::Header(format!("protocol id {protocol}")));
        }
        if !(2..=254).contains(&length) {
            return Err(BadResponse::Header(format!(
                "length {length} outside 2..=254"
            )));
        }
        Ok(usize::from(length) - 1)
    }

    /// Checks a whole response (header + PDU) against the request sent with `tid`.
    pub(crate) fn check_response(
        &self,
        tid: u16,
        header: &[u8; MBAP_LEN],
        pdu: &[u8],
    ) -> Result<(), BadResponse> {
        let rtid = u16::from_be_bytes([header[0], header[1]]);
        if rtid != tid {
            return Err(BadResponse::Mismatch(format!(
                "transaction id {rtid}, sent {tid}"
            )));
        }
        if header[6] != self.unit {
            return Err(BadResponse::Mismatch(format!(
                "unit id {}, sent {}",
                header[6], self.unit
            )));
        }
        let fc = match self.op {
            Op::Read => 3,
            Op::Write { .. } => 16,
        };
        match pdu {
            [f, code] if *f == fc | 0x80 => return Err(BadResponse::Exception(*code)),
            [f, ..] if *f != fc => {
                return Err(BadResponse::Mismatch(format!(
                    "function {f:#04x}, sent {fc}"
                )))
            }
            [] => return Err(BadResponse::Mismatch("empty PDU".into())),
            _ => {}
        }
        match self.op {
            Op::Read => {
                let want = usize::from(self.count) * 2;
                let got = pdu.get(1).copied().map(usize::from);
                if got != Some(want) || pdu.len() != 2 + want {
                    return Err(BadResponse::Mismatch(format!(
                        "byte count {got:?} / PDU length {}, expected {want} / {}",
                        pdu.len(),
                        2 + want
                    )));
                }
            }
            Op::Write { .. } => {
                let mut want = [16u8, 0, 0, 0, 0];
                want[1..3].copy_from_slice(&self.address.to_be_bytes());
                want[3..5].copy_from_slice(&self.count.to_be_bytes());
                if pdu != want {
                    return Err(BadResponse::Mismatch(format!("FC16 echo {pdu:02x?}")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: Spec = Spec {
        op: Op::Read,
        unit: 1,
        address: 100,
        count: 10,
    };

    #[test]
    fn read_request_is_the_12_bytes_of_the_spec() {
        let mut out = Vec::new();
        READ.encode(0x0102, 0, &mut out);
        assert_eq!(
            out,
            [
                0x01, 0x02, // transaction id
                0x00, 0x00, // protocol id
                0x00, 0x06, // length: unit + 5 PDU bytes
                0x01, // unit id
                0x03, // FC 3
                0x00, 0x64, // address 100
                0x00, 0x0a, // count 10
            ]
        );
    }

    #[test]
    fn write_request_values_stay_in_bounds() {
        let spec = Spec {
            op: Op::Write { min: 180, max: 240 },
            unit: 1,
            address: 100,
            count: 10,
        };
        let mut out = Vec::new();
        for seq in [0u64, 55, 60, 61, 1_000_003] {
            spec.encode(7, seq, &mut out);
            assert_eq!(out.len(), 7 + 6 + 20);
            assert_eq!(&out[4..6], &[0, 27]); // length = 1 + 1 + 4 + 1 + 20
            assert_eq!(&out[7..13], &[16, 0, 100, 0, 10, 20]);
            for pair in out[13..].chunks(2) {
                let v = u16::from_be_bytes([pair[0], pair[1]]);
                assert!((180..=240).contains(&v), "value {v} out of bounds");
            }
        }
    }

    #[test]
    fn response_checks() {
        let header = |tid: u16, len: u16, unit: u8| {
            let t = tid.to_be_bytes();
            let l = len.to_be_bytes();
            [t[0], t[1], 0, 0, l[0], l[1], unit]
        };
        let mut pdu = vec![3u8, 20];
        pdu.extend_from_slice(&[0; 20]);
        assert_eq!(READ.check_response(5, &header(5, 23, 1), &pdu), Ok(()));
        assert!(matches!(
            READ.check_response(6, &header(5, 23, 1), &pdu),
            Err(BadResponse::Mismatch(_))
        ));
        assert!(matches!(
            READ.check_response(5, &header(5, 23, 2), &pdu),
            Err(BadResponse::Mismatch(_))
        ));
        assert!(matches!(
            READ.check_response(5, &header(5, 21, 1), &pdu[..20]),
            Err(BadResponse::Mismatch(_))
        ));
        assert_eq!(
            READ.check_response(5, &header(5, 3, 1), &[0x83, 2]),
            Err(BadResponse::Exception(2))
        );
        assert_eq!(Spec::check_header(&header(5, 23, 1)), Ok(22));
        assert!(Spec::check_header(&header(5, 1, 1)).is_err());
        assert!(Spec::check_header(&[0, 1, 0, 1, 0, 6, 1]).is_err());
        let w = Spec {
            op: Op::Write { min: 1, max: 2 },
            unit: 1,
            address: 100,
            count: 10,
        };
        assert_eq!(
            w.check_response(1, &header(1, 6, 1), &[16, 0, 100, 0, 10]),
            Ok(())
        );
        assert!(w
            .check_response(1, &header(1, 6, 1), &[16, 0, 101, 0, 10])
            .is_err());
    }

    #[test]
    fn spec_limits() {
        assert!(READ.validate().is_ok());
        assert!(Spec { count: 0, ..READ }.validate().is_err());
        assert!(Spec { count: 126, ..READ }.validate().is_err());
        assert!(Spec {
            address: 65_530,
            ..READ
        }
        .validate()
        .is_err());
        let w = Spec {
            op: Op::Write { min: 5, max: 4 },
            ..READ
        };
        assert!(w.validate().is_err());
        assert!(Spec {
            op: Op::Write { min: 0, max: 9 },
            count: 124,
            ..READ
        }
        .validate()
        .is_err());
    }
}
