//! Property tests: valid PDUs of every function code generated from the V1.1b3 limits round-trip
//! through parse, encode and both ADU kinds; random bytes and mutated valid frames never panic,
//! and whatever the parser accepts re-encodes byte for byte (the parser is canonical); the
//! decoders never report more bytes than they were given.

use proptest::prelude::*;
use zonegate_modbus::{
    rtu, tcp, Direction, Request, Response, RtuDeframer, TcpDeframer, UnitId, MAX_TCP_ADU_LEN,
};

use super::util::{rtu_wrap, tcp_wrap};

fn be(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

/// (address, quantity) with quantity in 1..=max and address + quantity <= 65536.
fn range(max: u16) -> impl Strategy<Value = (u16, u16)> {
    (1..=max).prop_flat_map(|q| ((0..=(65536 - q as u32) as u16), Just(q)))
}

fn pdu(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Valid request PDUs of every function code.
fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u8..=2, range(2000)).prop_map(|(fc, (a, q))| pdu(&[&[fc], &be(a), &be(q)])),
        (3u8..=4, range(125)).prop_map(|(fc, (a, q))| pdu(&[&[fc], &be(a), &be(q)])),
        (any::<u16>(), any::<bool>()).prop_map(|(a, on)| pdu(&[
            &[5],
            &be(a),
            &be(if on { 0xFF00 } else { 0 })
        ])),
        (any::<u16>(), any::<u16>()).prop_map(|(a, v)| pdu(&[&[6], &be(a), &be(v)])),
        prop::sample::select(vec![7u8, 11, 12, 17]).prop_map(|fc| vec![fc]),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|d| pdu(&[&[8, 0, 0], &d])),
        prop::sample::select(vec![
            (1u16, 0xFF00u16),
            (1, 0),
            (2, 0),
            (3, 0x3A00),
            (4, 0),
            (0x0A, 0),
            (0x0B, 0),
            (0x12, 0),
            (0x14, 0)
        ])
        .prop_map(|(s, d)| pdu(&[&[8], &be(s), &be(d)])),
        range(1968).prop_flat_map(|(a, q)| {
            prop::collection::vec(any::<u8>(), (q as usize).div_ceil(8))
                .prop_map(move |d| pdu(&[&[15], &be(a), &be(q), &[d.len() as u8], &d]))
        }),
        range(123).prop_flat_map(|(a, q)| {
            prop::collection::vec(any::<u8>(), 2 * q as usize)
                .prop_map(move |d| pdu(&[&[16], &be(a), &be(q), &[d.len() as u8], &d]))
        }),
        prop::collection::vec((1u16..=0xFFFF, 0u16..=0x2700, 1u16..=10), 1..=5).prop_map(|subs| {
            let body: Vec<u8> = subs
                .iter()
                .flat_map(|&(f, r, l)| pdu(&[&[6], &be(f), &be(r), &be(l)]))
                .collect();
            pdu(&[&[20, body.len() as u8], &body])
        }),
        prop::collection::vec(
            (
                1u16..=0xFFFF,
                0u16..=0x2700,
                prop::collection::vec(any::<u16>(), 1..=10)
            ),
            1..=3
        )
        .prop_map(|subs| {
            let body: Vec<u8> = subs
                .iter()
                .flat_map(|(f, r, vals)| {
                    let data: Vec<u8> = vals.iter().flat_map(|v| be(*v)).collect();
                    pdu(&[&[6], &be(*f), &be(*r), &be(vals.len() as u16), &data])
                })
                .collect();
            pdu(&[&[21, body.len() as u8], &body])
        }),
        (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, and, or)| pdu(&[
            &[22],
            &be(a),
            &be(and),
            &be(or)
        ])),
        (range(125), range(121)).prop_flat_map(|((ra, rq), (wa, wq))| {
            prop::collection::vec(any::<u8>(), 2 * wq as usize).prop_map(move |d| {
                pdu(&[
                    &[23],
                    &be(ra),
                    &be(rq),
                    &be(wa),
                    &be(wq),
                    &[d.len() as u8],
                    &d,
                ])
            })
        }),
        any::<u16>().prop_map(|a| pdu(&[&[24], &be(a)])),
        (1u8..=4, any::<u8>()).prop_map(|(c, o)| vec![43, 14, c, o]),
        prop::collection::vec(any::<u8>(), 0..50).prop_map(|d| pdu(&[&[43, 13], &d])),
        (
            prop::sample::select(vec![65u8, 68, 72, 100, 105, 110]),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(|(fc, d)| pdu(&[&[fc], &d])),
    ]
}

/// Valid response PDUs of every function code.
fn valid_response() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u8..=2, prop::collection::vec(any::<u8>(), 1..=250))
            .prop_map(|(fc, d)| pdu(&[&[fc, d.len() as u8], &d])),
        (
            prop::sample::select(vec![3u8, 4, 23]),
            prop::collection::vec(any::<u16>(), 1..=125)
        )
            .prop_map(|(fc, v)| {
                let d: Vec<u8> = v.iter().flat_map(|x| be(*x)).collect();
                pdu(&[&[fc, d.len() as u8], &d])
            }),
        (any::<u16>(), any::<bool>()).prop_map(|(a, on)| pdu(&[
            &[5],
            &be(a),
            &be(if on { 0xFF00 } else { 0 })
        ])),
        (any::<u16>(), any::<u16>()).prop_map(|(a, v)| pdu(&[&[6], &be(a), &be(v)])),
        any::<u8>().prop_map(|s| vec![7, s]),
        (1u16..=0x14u16, any::<u16>())
            .prop_filter("defined, answered", |(s, _)| {
                zonegate_modbus::diagnostics::is_defined(*s) && *s != 4
            })
            .prop_map(|(s, d)| pdu(&[&[8], &be(s), &be(d)])),
        (any::<bool>(), any::<u16>()).prop_map(|(busy, c)| pdu(&[
            &[11],
            &be(if busy { 0xFFFF } else { 0 }),
            &be(c)
        ])),
        (
            any::<u16>(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..=64)
        )
            .prop_map(|(e, m, ev)| pdu(&[
                &[12, 6 + ev.len() as u8],
                &be(0),
                &be(e),
                &be(m),
                &ev
            ])),
        (15u8..=16, range(123)).prop_map(|(fc, (a, q))| pdu(&[&[fc], &be(a), &be(q)])),
        prop::collection::vec(any::<u8>(), 1..=100).prop_map(|d| pdu(&[&[17, d.len() as u8], &d])),
        prop::collection::vec(prop::collection::vec(any::<u16>(), 1..=10), 1..=4).prop_map(
            |subs| {
                let body: Vec<u8> = subs
                    .iter()
                    .flat_map(|vals| {
                        let data: Vec<u8> = vals.iter().flat_map(|v| be(*v)).collect();
                        pdu(&[&[1 + data.len() as u8, 6], &data])
                    })
                    .collect();
                pdu(&[&[20, body.len() as u8], &body])
            }
        ),
        (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, and, or)| pdu(&[
            &[22],
            &be(a),
            &be(and),
            &be(or)
        ])),
        prop::collection::vec(any::<u16>(), 0..=31).prop_map(|v| {
            let d: Vec<u8> = v.iter().flat_map(|x| be(*x)).collect();
            pdu(&[&[24], &be(2 + d.len() as u16), &be(v.len() as u16), &d])
        }),
        (
            1u8..=4,
            prop::sample::select(vec![1u8, 2, 3, 0x81, 0x82, 0x83]),
            any::<bool>(),
            any::<u8>(),
            prop::collection::vec(
                (any::<u8>(), prop::collection::vec(any::<u8>(), 0..20)),
                0..5
            )
        )
            .prop_map(|(code, conf, more, next, objects)| {
                let mut v = vec![43, 14, code, conf, if more { 0xFF } else { 0 }, next];
                v.push(objects.len() as u8);
                for (id, value) in objects {
                    v.push(id);
                    v.push(value.len() as u8);
                    v.extend(value);
                }
                v
            }),
        (
            1u8..=0x7F,
            prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B])
        )
            .prop_map(|(fc, code)| vec![fc | 0x80, code]),
        (
            prop::sample::select(vec![65u8, 72, 100, 110]),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(|(fc, d)| pdu(&[&[fc], &d])),
    ]
}

/// A valid PDU with one of: a byte overwritten, a byte inserted, a byte removed, truncated.
fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (valid, any::<prop::sample::Index>(), any::<u8>(), 0u8..4).prop_map(|(mut v, i, b, op)| {
        let at = i.index(v.len().max(1));
        match op {
            0 if !v.is_empty() => v[at] = b,
            1 => v.insert(at.min(v.len()), b),
            2 if !v.is_empty() => {
                v.remove(at);
            }
            _ => v.truncate(at),
        }
        v
    })
}

/// Whatever the parser accepts must re-encode to exactly the same bytes.
fn assert_canonical(direction: Direction, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut out = [0u8; 300];
    match direction {
        Direction::Request => {
            if let Ok(r) = Request::parse(bytes) {
                let n = r
                    .encode(&mut out)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&out[..n], bytes);
                let _ = r.ranges().count();
                let _ = r.written().map(|w| w.iter().count());
            }
        }
        Direction::Response => {
            if let Ok(r) = Response::parse(bytes) {
                let n = r
                    .encode(&mut out)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&out[..n], bytes);
            }
        }
    }
    Ok(())
}

/// Feeds arbitrary bytes to every decoder; none may panic or over-report.
fn assert_decoders_hold(bytes: &[u8]) {
    if let Ok(Some(adu)) = tcp::decode_adu(bytes) {
        assert!(adu.wire_len() <= bytes.len() && adu.wire_len() <= MAX_TCP_ADU_LEN);
    }
    for direction in [Direction::Request, Direction::Response] {
        if let Ok(Some(adu)) = rtu::decode_adu(bytes, direction) {
            assert!(adu.wire_len() <= bytes.len() && adu.wire_len() <= rtu::MAX_RTU_ADU_LEN);
        }
        let _ = rtu::decode_frame(bytes, direction);
        if let Ok(Some(n)) = rtu::frame_len(bytes, direction) {
            assert!(n <= rtu::MAX_RTU_ADU_LEN);
        }
        let mut d = RtuDeframer::new(direction);
        let mut input = bytes;
        for _ in 0..1000 {
            let n = d.feed(input);
            input = &input[n..];
            let mut pulled = 0;
            while let Ok(Some(adu)) = d.next_adu() {
                assert!(adu.wire_len() <= rtu::MAX_RTU_ADU_LEN);
                pulled += 1;
            }
            if input.is_empty() || (n == 0 && pulled == 0) {
                break;
            }
        }
    }
    let mut d = TcpDeframer::new();
    let mut input = bytes;
    for _ in 0..1000 {
        let n = d.feed(input);
        input = &input[n..];
        let mut pulled = 0;
        while let Ok(Some(adu)) = d.next_adu() {
            assert!(adu.wire_len() <= MAX_TCP_ADU_LEN);
            pulled += 1;
        }
        if input.is_empty() || (n == 0 && pulled == 0) {
            break;
        }
    }
    let _ = Request::parse(bytes);
    let _ = Response::parse(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn valid_requests_round_trip(bytes in valid_request()) {
        let request = Request::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_canonical(Direction::Request, &bytes)?;
        // TCP
        let wire = tcp_wrap(9, 1, &bytes);
        let adu = tcp::decode_adu(&wire).unwrap().unwrap();
        prop_assert_eq!(adu.wire_len(), wire.len());
        prop_assert_eq!(Request::parse(adu.pdu).unwrap(), request);
        // RTU (when the length is derivable from the header; opaque payloads need silence)
        let wire = rtu_wrap(1, &bytes);
        match rtu::decode_adu(&wire, Direction::Request) {
            Ok(Some(adu)) => prop_assert_eq!(adu.pdu, &bytes[..]),
            Err(zonegate_modbus::FrameError::UnknownLength { .. }) => {
                prop_assert_eq!(rtu::decode_frame(&wire, Direction::Request).unwrap().pdu, &bytes[..]);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        // The policy view is consistent.
        for (_, r) in request.ranges() {
            prop_assert!(r.count() >= 1 && r.start() as u32 + r.count() as u32 <= 65536);
        }
        if let Some(w) = request.written() {
            prop_assert_eq!(w.iter().count(), w.len());
        }
    }

    #[test]
    fn valid_responses_round_trip(bytes in valid_response()) {
        let response = Response::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_canonical(Direction::Response, &bytes)?;
        let wire = rtu_wrap(1, &bytes);
        match rtu::decode_adu(&wire, Direction::Response) {
            Ok(Some(adu)) => prop_assert_eq!(Response::parse(adu.pdu).unwrap(), response),
            Err(zonegate_modbus::FrameError::UnknownLength { .. }) => {}
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn mutated_requests_never_panic_and_stay_canonical(bytes in mutated(valid_request())) {
        assert_canonical(Direction::Request, &bytes)?;
        assert_decoders_hold(&bytes);
        assert_decoders_hold(&tcp_like(&bytes));
        if !bytes.is_empty() && bytes.len() <= 253 {
            assert_decoders_hold(&rtu_wrap(1, &bytes));
        }
    }

    #[test]
    fn mutated_responses_never_panic_and_stay_canonical(bytes in mutated(valid_response())) {
        assert_canonical(Direction::Response, &bytes)?;
        assert_decoders_hold(&bytes);
        if !bytes.is_empty() && bytes.len() <= 253 {
            assert_decoders_hold(&rtu_wrap(1, &bytes));
        }
    }

    #[test]
    fn responses_matched_to_requests_never_panic(
        request in valid_request(),
        response in prop_oneof![valid_response(), mutated(valid_response())],
    ) {
        let request = Request::parse(&request).unwrap();
        if let Ok(r) = Response::parse_for(&response, &request) {
            prop_assert_eq!(r.function(), request.function());
            let mut out = [0u8; 300];
            let n = r.encode(&mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&out[..n], &response[..]);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        assert_canonical(Direction::Request, &bytes)?;
        assert_canonical(Direction::Response, &bytes)?;
        assert_decoders_hold(&bytes);
    }

    #[test]
    fn random_mbap_streams_never_over_report(
        headers in prop::collection::vec((any::<u16>(), 0u16..2, 0u16..300, prop::collection::vec(any::<u8>(), 0..300)), 1..5)
    ) {
        let mut bytes = Vec::new();
        for (tid, proto, len, body) in headers {
            bytes.extend(tid.to_be_bytes());
            bytes.extend(proto.to_be_bytes());
            bytes.extend(len.to_be_bytes());
            bytes.extend(body);
        }
        let mut rest = &bytes[..];
        while let Ok(Some(adu)) = tcp::decode_adu(rest) {
            prop_assert!(adu.wire_len() <= rest.len());
            rest = &rest[adu.wire_len()..];
        }
        assert_decoders_hold(&bytes);
    }
}

/// A TCP ADU around arbitrary bytes (even an empty or over-long "PDU"), with a matching length.
fn tcp_like(pdu: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 1, 0, 0];
    v.extend(((pdu.len() + 1) as u16).to_be_bytes());
    v.push(UnitId::new(1).get());
    v.extend_from_slice(pdu);
    v
}

/// A request and a response built to answer it.
fn answered_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    prop_oneof![
        (1u8..=2, range(2000), any::<u64>()).prop_map(|(fc, (a, q), seed)| {
            let n = (q as usize).div_ceil(8);
            let mut data: Vec<u8> = (0..n).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            if q % 8 != 0 {
                if let Some(last) = data.last_mut() {
                    *last &= (1u8 << (q % 8)) - 1;
                }
            }
            (pdu(&[&[fc], &be(a), &be(q)]), pdu(&[&[fc, n as u8], &data]))
        }),
        (3u8..=4, range(125), any::<u16>()).prop_map(|(fc, (a, q), v)| {
            let data: Vec<u8> = (0..q).flat_map(|i| be(v.wrapping_add(i))).collect();
            (
                pdu(&[&[fc], &be(a), &be(q)]),
                pdu(&[&[fc, data.len() as u8], &data]),
            )
        }),
        valid_request()
            .prop_filter("echoed", |p| matches!(p.first(), Some(5 | 6 | 22)))
            .prop_map(|p| (p.clone(), p)),
        range(123).prop_map(|(a, q)| {
            let data = vec![0u8; 2 * q as usize];
            (
                pdu(&[&[16], &be(a), &be(q), &[data.len() as u8], &data]),
                pdu(&[&[16], &be(a), &be(q)]),
            )
        }),
    ]
}

proptest! {
    #[test]
    fn answers_match_their_requests_and_re_encode((request, response) in answered_pair()) {
        let parsed = Request::parse(&request).unwrap();
        let r = Response::parse_for(&response, &parsed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut out = [0u8; 300];
        let n = r.encode(&mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&out[..n], &response[..]);
        // The exception answer always matches too.
        let exception = Response::exception_pdu(request[0], zonegate_modbus::ExceptionCode::ServerDeviceBusy);
        prop_assert!(Response::parse_for(&exception, &parsed).is_ok());
    }
}
