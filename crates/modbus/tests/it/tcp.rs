//! Modbus/TCP framing vectors (MBAP, TCP guide V1.0b §3.1.3), each fed split at every offset.

use zonegate_modbus::{tcp, FrameError, Request, TcpDeframer, UnitId};

use super::util::{assert_tcp_every_split, tcp_stream};

#[test]
fn fc3_request_adu() {
    // | tid       | proto     | len       | unit | fc | addr      | qty       |
    #[rustfmt::skip]
    let wire = [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03];
    let adu = tcp::decode_adu(&wire).unwrap().unwrap();
    assert_eq!(adu.header.transaction_id, 1);
    assert_eq!(adu.header.protocol_id, 0);
    assert_eq!(adu.header.length, 6);
    assert_eq!(adu.header.unit_id, UnitId::new(0x11));
    assert_eq!(adu.wire_len(), 12);
    let request = Request::parse(adu.pdu).unwrap();
    assert_eq!(request.function().name(), Some("read_holding_registers"));
    assert_tcp_every_split(&wire, &[(1, 0x11, wire[7..].to_vec())]);
}

#[test]
fn exception_response_adu() {
    // | tid       | proto     | len       | unit | fc   | code |
    let wire = [0xAB, 0xCD, 0x00, 0x00, 0x00, 0x03, 0xFF, 0x83, 0x02];
    assert_tcp_every_split(&wire, &[(0xABCD, 0xFF, vec![0x83, 0x02])]);
}

#[test]
fn smallest_and_largest_adus() {
    // | tid       | proto     | len = 2   | unit | fc |
    let small = [0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x01, 0x07];
    assert_tcp_every_split(&small, &[(2, 1, vec![0x07])]);
    // | tid | proto | len = 254 | unit | 253-byte PDU |
    let mut big = vec![0x00, 0x03, 0x00, 0x00, 0x00, 0xFE, 0x01];
    big.extend(std::iter::repeat_n(0x41, 253));
    assert_eq!(big.len(), tcp::MAX_TCP_ADU_LEN);
    assert_tcp_every_split(&big, &[(3, 1, vec![0x41; 253])]);
}

#[test]
fn protocol_id_not_zero_is_a_frame_error() {
    // | tid       | proto = 1 | len       | unit | fc | ...
    #[rustfmt::skip]
    let wire = [0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03];
    assert_eq!(tcp::decode_adu(&wire), Err(FrameError::ProtocolId(1)));
    // Refused as soon as the protocol id is complete, without waiting for the rest.
    assert_eq!(tcp::decode_adu(&wire[..4]), Err(FrameError::ProtocolId(1)));
    assert_eq!(tcp::decode_adu(&wire[..3]), Ok(None));
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        assert_eq!(
            tcp_stream(&[a, b]),
            Err(FrameError::ProtocolId(1)),
            "cut {cut}"
        );
    }
}

#[test]
fn length_outside_2_to_254_is_a_frame_error() {
    for (len, ok) in [
        (0u16, false),
        (1, false),
        (2, true),
        (254, true),
        (255, false),
        (0xFFFF, false),
    ] {
        // | tid       | proto     | len       |
        let wire = [0x00, 0x01, 0x00, 0x00, (len >> 8) as u8, len as u8];
        let got = tcp::decode_adu(&wire);
        if ok {
            assert_eq!(got, Ok(None), "len {len}");
        } else {
            assert_eq!(got, Err(FrameError::Length(len)), "len {len}");
        }
    }
}

#[test]
fn a_good_adu_then_a_broken_one() {
    // | tid | proto | len | unit | fc | addr | qty |, then a header with protocol id 0xFFFF
    let mut wire = vec![
        0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x01,
    ];
    wire.extend([0x00, 0x02, 0xFF, 0xFF, 0x00, 0x06, 0x01, 0x03]);
    let mut d = TcpDeframer::new();
    assert_eq!(d.feed(&wire), wire.len());
    assert!(d.next_adu().unwrap().is_some());
    assert_eq!(d.next_adu(), Err(FrameError::ProtocolId(0xFFFF)));
    // The error sticks: the stream cannot be resynchronised.
    assert_eq!(d.next_adu(), Err(FrameError::ProtocolId(0xFFFF)));
    assert_eq!(d.feed(&[0; 4]), 0);
    d.reset();
    assert_eq!(d.error(), None);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn feed_refuses_input_only_while_whole_adus_wait() {
    // 100 back-to-back FC 3 requests in one read: the buffer fills, next_adu drains it.
    #[rustfmt::skip]
    let one = [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x01];
    let wire: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
    let mut d = TcpDeframer::new();
    let mut input = &wire[..];
    let mut count = 0;
    while !input.is_empty() {
        let n = d.feed(input);
        input = &input[n..];
        let mut pulled = 0;
        while let Some(adu) = d.next_adu().unwrap() {
            assert_eq!(adu.pdu, &one[7..]);
            pulled += 1;
        }
        assert!(n > 0 || pulled > 0, "no progress");
        count += pulled;
    }
    assert_eq!(count, 100);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn truncated_stream_leaves_bytes_buffered() {
    let wire = [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00];
    let mut d = TcpDeframer::new();
    d.feed(&wire);
    assert_eq!(d.next_adu(), Ok(None));
    assert_eq!(d.buffered(), wire.len());
}

#[test]
fn encode_checks_buffer_and_pdu_length() {
    let mut out = [0u8; 8];
    assert_eq!(tcp::encode_adu(1, UnitId::new(1), &[0x07], &mut out), Ok(8));
    assert_eq!(out, [0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x07]);
    assert!(tcp::encode_adu(1, UnitId::new(1), &[0x03, 0, 0], &mut out).is_err());
    let mut big = [0u8; 300];
    assert!(tcp::encode_adu(1, UnitId::new(1), &[0; 254], &mut big).is_err());
    assert!(tcp::encode_adu(1, UnitId::new(1), &[], &mut big).is_err());
}
