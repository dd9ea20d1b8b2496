//! Helpers shared by the codec tests: wrap a PDU in a TCP or RTU ADU, and push a byte stream
//! through the streaming deframers split at a given offset.

use zonegate_modbus::{
    rtu, tcp, Direction, FrameError, RtuDeframer, TcpDeframer, UnitId, MAX_TCP_ADU_LEN,
};

/// A TCP ADU around `pdu`.
pub(crate) fn tcp_wrap(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_TCP_ADU_LEN];
    let n = tcp::encode_adu(tid, UnitId::new(unit), pdu, &mut out).unwrap();
    out[..n].to_vec()
}

/// An RTU ADU around `pdu` (CRC appended).
pub(crate) fn rtu_wrap(address: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = [0u8; rtu::MAX_RTU_ADU_LEN];
    let n = rtu::encode_adu(UnitId::new(address), pdu, &mut out).unwrap();
    out[..n].to_vec()
}

/// One ADU as the deframers hand it out: (tid or 0, unit, pdu).
pub(crate) type Out = (u16, u8, Vec<u8>);

/// Feeds `pieces` in order to a fresh TCP deframer, pulling ADUs after every feed.
pub(crate) fn tcp_stream(pieces: &[&[u8]]) -> Result<Vec<Out>, FrameError> {
    let mut d = TcpDeframer::new();
    let mut out = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        let mut rounds = 0;
        loop {
            let n = d.feed(input);
            input = &input[n..];
            while let Some(adu) = d.next_adu()? {
                assert!(adu.wire_len() <= tcp::MAX_TCP_ADU_LEN);
                out.push((
                    adu.header.transaction_id,
                    adu.header.unit_id.get(),
                    adu.pdu.to_vec(),
                ));
            }
            if input.is_empty() {
                break;
            }
            rounds += 1;
            assert!(rounds < 10_000, "deframer made no progress");
        }
    }
    Ok(out)
}

/// Feeds `pieces` in order to a fresh RTU deframer, pulling ADUs after every feed.
pub(crate) fn rtu_stream(pieces: &[&[u8]], direction: Direction) -> Result<Vec<Out>, FrameError> {
    let mut d = RtuDeframer::new(direction);
    let mut out = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        let mut rounds = 0;
        loop {
            let n = d.feed(input);
            input = &input[n..];
            while let Some(adu) = d.next_adu()? {
                out.push((0, adu.address.get(), adu.pdu.to_vec()));
            }
            if input.is_empty() {
                break;
            }
            rounds += 1;
            assert!(rounds < 10_000, "deframer made no progress");
        }
    }
    Ok(out)
}

/// Asserts that `wire` comes out of the TCP deframer as `expected`, whether fed whole, split in
/// two at every offset, or one byte at a time.
pub(crate) fn assert_tcp_every_split(wire: &[u8], expected: &[Out]) {
    assert_eq!(tcp_stream(&[wire]).as_deref(), Ok(expected), "whole");
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        assert_eq!(
            tcp_stream(&[a, b]).as_deref(),
            Ok(expected),
            "split at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(tcp_stream(&bytes).as_deref(), Ok(expected), "byte by byte");
}

/// Same for the RTU deframer.
pub(crate) fn assert_rtu_every_split(wire: &[u8], direction: Direction, expected: &[Out]) {
    assert_eq!(
        rtu_stream(&[wire], direction).as_deref(),
        Ok(expected),
        "whole"
    );
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        assert_eq!(
            rtu_stream(&[a, b], direction).as_deref(),
            Ok(expected),
            "split at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(
        rtu_stream(&bytes, direction).as_deref(),
        Ok(expected),
        "byte by byte"
    );
}

/// Bytes from hex with spaces, for long vectors.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}
