//! Modbus RTU framing vectors (Serial Line V1.02 §2.5.1, §6.2.2), each fed split at every offset.

use zonegate_modbus::{crc16, rtu, Direction, FrameError, Request, RtuDeframer, UnitId};

use super::util::{assert_rtu_every_split, hex, rtu_stream, rtu_wrap};

#[test]
fn crc_test_vectors() {
    assert_eq!(crc16(b"123456789"), 0x4B37);
    // | addr | fc | bc | data      | -> wire CRC B6 63 (low byte first)
    assert_eq!(
        crc16(&[0x01, 0x03, 0x08, 0x2B, 0x00, 0x02]).to_le_bytes(),
        [0xB6, 0x63]
    );
}

#[test]
fn fc3_request_frame() {
    // | addr | fc | addr      | qty       | crc lo | crc hi |
    let wire = [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A];
    let adu = rtu::decode_adu(&wire, Direction::Request).unwrap().unwrap();
    assert_eq!(adu.address, UnitId::new(1));
    assert_eq!(adu.wire_len(), 8);
    assert!(Request::parse(adu.pdu).is_ok());
    assert_rtu_every_split(&wire, Direction::Request, &[(0, 1, wire[1..6].to_vec())]);
}

#[test]
fn response_lengths_come_from_byte_counts() {
    // | addr | fc | bc | registers           | crc |
    let fc3 = rtu_wrap(0x11, &[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]);
    // | addr | fc | bc (2)    | count     | values    | crc |
    let fc24 = rtu_wrap(0x11, &[0x18, 0x00, 0x04, 0x00, 0x01, 0x12, 0x34]);
    // | addr | fc   | code | crc |  (exception responses are 5 bytes)
    let exc = rtu_wrap(0x11, &[0x83, 0x02]);
    assert_eq!(exc.len(), 5);
    // | addr | fc | mei | code | conf | more | next | n | id | len | value | crc |
    let fc43 = rtu_wrap(0x11, &hex("2B 0E 01 01 00 00 02 00 03 414243 01 01 58"));
    let mut wire = Vec::new();
    for f in [&fc3, &fc24, &exc, &fc43] {
        wire.extend_from_slice(f);
    }
    let expected: Vec<_> = [&fc3, &fc24, &exc, &fc43]
        .iter()
        .map(|f| (0, 0x11, f[1..f.len() - 2].to_vec()))
        .collect();
    assert_rtu_every_split(&wire, Direction::Response, &expected);
}

#[test]
fn request_lengths_come_from_byte_counts() {
    // | addr | fc | addr | qty | bc | values | crc |
    let fc16 = rtu_wrap(2, &hex("10 0001 0002 04 000A 0102"));
    // | addr | fc | r addr | r qty | w addr | w qty | bc | values | crc |
    let fc23 = rtu_wrap(2, &hex("17 0003 0006 000E 0003 06 00FF 00FF 00FF"));
    // | addr | fc | bc | sub-requests | crc |
    let fc20 = rtu_wrap(2, &hex("14 0E 06 0004 0001 0002 06 0003 0009 0002"));
    // | addr | fc | mei | code | object | crc |
    let fc43 = rtu_wrap(2, &hex("2B 0E 01 00"));
    // | addr | fc | sub | data | crc |
    let fc8 = rtu_wrap(2, &hex("08 000A 0000"));
    let frames = [&fc16, &fc23, &fc20, &fc43, &fc8];
    let wire: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let expected: Vec<_> = frames
        .iter()
        .map(|f| (0, 2, f[1..f.len() - 2].to_vec()))
        .collect();
    assert_rtu_every_split(&wire, Direction::Request, &expected);
}

#[test]
fn crc_mismatch_is_a_frame_error() {
    let wire = [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0B];
    assert_eq!(
        rtu::decode_adu(&wire, Direction::Request),
        Err(FrameError::Crc {
            computed: 0x0A84,
            received: 0x0B84
        })
    );
    assert!(rtu_stream(&[&wire], Direction::Request).is_err());
    assert!(rtu::decode_frame(&wire, Direction::Request).is_err());
}

#[test]
fn broadcast_and_reserved_addresses() {
    // Address 0: a broadcast write is accepted and flagged.
    let bcast = rtu_wrap(0, &[0x06, 0x00, 0x01, 0x00, 0x03]);
    let adu = rtu::decode_adu(&bcast, Direction::Request)
        .unwrap()
        .unwrap();
    assert!(adu.address.is_broadcast());
    // ...but nobody answers a broadcast.
    let reply = rtu_wrap(0, &[0x06, 0x00, 0x01, 0x00, 0x03]);
    assert_eq!(
        rtu::decode_adu(&reply, Direction::Response),
        Err(FrameError::BroadcastResponse)
    );
    // 248..=255 are reserved: refused as soon as the address byte is seen.
    for address in 248..=255u8 {
        let wire = rtu_wrap(address, &[0x03, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(
            rtu::decode_adu(&wire[..1], Direction::Request),
            Err(FrameError::ReservedAddress(address))
        );
        assert!(rtu::decode_frame(&wire, Direction::Request).is_err());
    }
    let ok = rtu_wrap(247, &[0x03, 0x00, 0x00, 0x00, 0x01]);
    assert!(rtu::decode_adu(&ok, Direction::Request).unwrap().is_some());
}

#[test]
fn unknown_lengths_are_refused_not_guessed() {
    for pdu in [
        &hex("41 0102")[..],
        &hex("08 0000 A537"),
        &hex("2B 0D 01"),
        &hex("5A 00"),
    ] {
        let wire = rtu_wrap(1, pdu);
        assert!(
            matches!(
                rtu::decode_adu(&wire, Direction::Request),
                Err(FrameError::UnknownLength { .. })
            ),
            "{pdu:02X?}"
        );
        // A frame delimited by silence is checked by its CRC instead.
        assert_eq!(
            rtu::decode_frame(&wire, Direction::Request).unwrap().pdu,
            pdu
        );
    }
}

#[test]
fn byte_count_past_256_is_too_long() {
    // | addr | fc | bc = 0xFC | ... -> 5 + 252 = 257 > 256
    assert_eq!(
        rtu::decode_adu(&[0x01, 0x03, 0xFC], Direction::Response),
        Err(FrameError::TooLong {
            length: 257,
            max: 256
        })
    );
    // | addr | fc | bc (2) = 0x0100 | -> 262
    assert!(matches!(
        rtu::decode_adu(&[0x01, 0x18, 0x01, 0x00], Direction::Response),
        Err(FrameError::TooLong { .. })
    ));
}

#[test]
fn decode_frame_checks_the_length() {
    let wire = rtu_wrap(1, &[0x03, 0x00, 0x00, 0x00, 0x01]);
    let mut longer = wire.clone();
    longer.push(0);
    assert!(matches!(
        rtu::decode_frame(&longer, Direction::Request),
        Err(FrameError::FrameLength {
            given: 9,
            expected: 8
        })
    ));
    assert!(rtu::decode_frame(&wire[..3], Direction::Request).is_err());
    assert!(rtu::decode_frame(&[0; 300], Direction::Request).is_err());
}

#[test]
fn deframer_resets_after_error() {
    let good = rtu_wrap(1, &[0x03, 0x00, 0x00, 0x00, 0x01]);
    let mut bad = good.clone();
    bad[7] ^= 0xFF;
    let mut d = RtuDeframer::new(Direction::Request);
    d.feed(&bad);
    assert!(d.next_adu().is_err());
    assert!(d.next_adu().is_err());
    d.reset();
    d.feed(&good);
    assert!(d.next_adu().unwrap().is_some());
}

#[test]
fn encode_appends_crc_low_byte_first() {
    let mut out = [0u8; 8];
    assert_eq!(
        rtu::encode_adu(UnitId::new(1), &[0x03, 0x08, 0x2B, 0x00, 0x02], &mut out),
        Ok(8)
    );
    assert_eq!(&out[6..], &[0xB6, 0x63]);
    assert!(rtu::encode_adu(UnitId::new(1), &[0x03; 6], &mut out).is_err());
    assert!(rtu::encode_adu(UnitId::new(1), &[], &mut out).is_err());
}

#[test]
fn return_query_data_response_is_framed_by_its_request() {
    // | fc | sub       | data (any length) |
    let pdu = hex("08 0000 0102 0304 05");
    let request = Request::parse(&pdu).unwrap();
    let mut wire = rtu_wrap(3, &pdu);
    let exception = rtu_wrap(3, &[0x88, 0x01]);
    wire.extend(&exception);
    let first = rtu::decode_response(&wire, &request).unwrap().unwrap();
    assert_eq!(first.pdu, &pdu[..]);
    let rest = &wire[first.wire_len()..];
    let second = rtu::decode_response(rest, &request).unwrap().unwrap();
    assert_eq!(second.pdu, &[0x88, 0x01]);
    for cut in 0..first.wire_len() {
        assert_eq!(
            rtu::decode_response(&wire[..cut], &request),
            Ok(None),
            "cut {cut}"
        );
    }
    // Other requests: framed from the response header as usual.
    let fc3 = hex("03 0000 0001");
    let fc3 = Request::parse(&fc3).unwrap();
    let reply = rtu_wrap(3, &hex("03 02 002A"));
    assert_eq!(
        rtu::decode_response(&reply, &fc3).unwrap().unwrap().pdu,
        &hex("03 02 002A")[..]
    );
}

#[test]
fn exception_pdu_helper() {
    use zonegate_modbus::{ExceptionCode, Response};
    assert_eq!(
        Response::exception_pdu(0x5A, ExceptionCode::IllegalFunction),
        [0xDA, 0x01]
    );
    assert_eq!(
        Response::exception_pdu(3, ExceptionCode::IllegalDataAddress),
        [0x83, 0x02]
    );
}
