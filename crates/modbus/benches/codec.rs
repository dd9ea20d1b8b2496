//! Codec benchmark: deframe + parse of the same Modbus/TCP bytes with zonegate-modbus,
//! sawp-modbus (the parser inside Suricata) and tokio-modbus, side by side in one criterion run,
//! plus heap allocations per frame counted with a counting global allocator.
//!
//! Run: `cargo bench -p zonegate-modbus --bench codec -- --warm-up-time 1 --measurement-time 3`.
//! Inputs (Modbus Application Protocol V1.1b3 layouts): an FC 3 request; an FC 3 response with
//! 125 registers; an FC 16 request with 123 registers; a buffer of 100 pipelined mixed ADUs.
//!
//! Contenders:
//! - `zonegate`: `tcp::decode_adu` on the read buffer + `Request::parse` / `Response::parse`
//!   (zero-copy, the way the gateway uses it).
//! - `zonegate+values`: the same, then every value read or written is decoded and summed (sawp
//!   and tokio-modbus copy the values into vectors while parsing; this is the like-for-like
//!   cost).
//! - `zonegate-deframer`: the same through the streaming `TcpDeframer` (copies the bytes into its
//!   fixed buffer first, for callers that get bytes in pieces).
//! - `sawp-modbus`: `Modbus::parse(bytes, Direction::ToServer / ToClient)` over the buffer.
//! - `tokio-modbus`: its server/client TCP decoder is crate-private, so this is a line-for-line
//!   copy of its `AduDecoder` framing on a reused `BytesMut` (`split_to` + `freeze`), followed by
//!   its public `Request::try_from(Bytes)` / `Response::try_from(Bytes)` PDU decoder.

use std::alloc::System;
use std::hint::black_box;

use criterion::{criterion_main, Criterion, Throughput};
use sawp::parser::{Direction as SawpDirection, Parse as _};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio_modbus::bytes::{Bytes, BytesMut};
use zonegate_modbus::{tcp, Request, Response, TcpDeframer};

mod common;

use common::{inputs, Input};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// zonegate, zero-copy: returns the number of frames parsed.
fn zonegate(wire: &[u8], response: bool) -> usize {
    let mut rest = wire;
    let mut n = 0;
    while let Ok(Some(adu)) = tcp::decode_adu(rest) {
        if response {
            let _ = black_box(Response::parse(adu.pdu));
        } else {
            let _ = black_box(Request::parse(adu.pdu));
        }
        rest = rest.get(adu.wire_len()..).unwrap_or_default();
        n += 1;
    }
    n
}

/// zonegate, zero-copy, and then every value read or written is decoded and summed (the
/// others materialise values into vectors while parsing; this is the like-for-like cost).
fn zonegate_values(wire: &[u8], response: bool) -> usize {
    let mut rest = wire;
    let mut n = 0;
    let mut sum = 0u32;
    while let Ok(Some(adu)) = tcp::decode_adu(rest) {
        if response {
            match Response::parse(adu.pdu) {
                Ok(
                    Response::ReadHoldingRegisters(v)
                    | Response::ReadInputRegisters(v)
                    | Response::ReadWriteMultipleRegisters(v),
                ) => sum = v.iter().fold(sum, |a, x| a.wrapping_add(u32::from(x))),
                Ok(Response::ReadCoils(v) | Response::ReadDiscreteInputs(v)) => {
                    sum = v.iter().fold(sum, |a, x| a.wrapping_add(u32::from(x)));
                }
                other => {
                    black_box(other.is_ok());
                }
            }
        } else if let Ok(request) = Request::parse(adu.pdu) {
            if let Some(written) = request.written() {
                sum = written
                    .iter()
                    .fold(sum, |a, x| a.wrapping_add(u32::from(x)));
            }
            black_box(request.ranges().count());
        }
        rest = rest.get(adu.wire_len()..).unwrap_or_default();
        n += 1;
    }
    black_box(sum);
    n
}

/// zonegate through the streaming deframer.
fn zonegate_deframer(d: &mut TcpDeframer, wire: &[u8], response: bool) -> usize {
    let mut input = wire;
    let mut n = 0;
    while !input.is_empty() {
        let taken = d.feed(input);
        input = input.get(taken..).unwrap_or_default();
        while let Ok(Some(adu)) = d.next_adu() {
            if response {
                let _ = black_box(Response::parse(adu.pdu));
            } else {
                let _ = black_box(Request::parse(adu.pdu));
            }
            n += 1;
        }
        if taken == 0 {
            break;
        }
    }
    n
}

fn sawp(parser: &sawp_modbus::Modbus, wire: &[u8], response: bool) -> usize {
    let direction = || {
        if response {
            SawpDirection::ToClient
        } else {
            SawpDirection::ToServer
        }
    };
    let mut rest = wire;
    let mut n = 0;
    while !rest.is_empty() {
        match parser.parse(rest, direction()) {
            Ok((r, Some(message))) => {
                black_box(message);
                rest = r;
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// tokio-modbus's `AduDecoder::decode` (src/codec/tcp.rs, v0.16.1), then its PDU decoder.
fn tokio_modbus_decode(buf: &mut BytesMut) -> Option<(u16, u8, Bytes)> {
    const HEADER_LEN: usize = 7;
    if buf.len() < HEADER_LEN {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    let pdu_len = len.checked_sub(1)?;
    if buf.len() < HEADER_LEN + pdu_len {
        return None;
    }
    let header = buf.split_to(HEADER_LEN);
    if u16::from_be_bytes([header[2], header[3]]) != 0 {
        return None;
    }
    let tid = u16::from_be_bytes([header[0], header[1]]);
    Some((tid, header[6], buf.split_to(pdu_len).freeze()))
}

fn tokio_modbus(buf: &mut BytesMut, wire: &[u8], response: bool) -> usize {
    buf.clear();
    buf.extend_from_slice(wire);
    let mut n = 0;
    while let Some((tid, unit, pdu)) = tokio_modbus_decode(buf) {
        black_box((tid, unit));
        if response {
            let _ = black_box(tokio_modbus::Response::try_from(pdu));
        } else {
            let _ = black_box(tokio_modbus::Request::try_from(pdu));
        }
        n += 1;
    }
    n
}

/// Heap allocations per frame of each contender, measured once before timing.
fn print_allocations(inputs: &[Input]) {
    let parser = sawp_modbus::Modbus::default();
    let mut deframer = TcpDeframer::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    println!("heap allocations per frame (counting global allocator, after one warm-up pass):");
    for input in inputs {
        let frames = input.frames as f64;
        // Warm up once so reusable buffers have their capacity.
        zonegate(&input.wire, input.response);
        zonegate_deframer(&mut deframer, &input.wire, input.response);
        sawp(&parser, &input.wire, input.response);
        tokio_modbus(&mut buf, &input.wire, input.response);
        let measure = |f: &mut dyn FnMut() -> usize| {
            let region = Region::new(GLOBAL);
            let parsed = f();
            let change = region.change();
            assert_eq!(parsed as u64, input.frames, "every frame parsed");
            (change.allocations + change.reallocations) as f64 / frames
        };
        let z = measure(&mut || zonegate(&input.wire, input.response))
            + measure(&mut || zonegate_values(&input.wire, input.response));
        let zd = measure(&mut || zonegate_deframer(&mut deframer, &input.wire, input.response));
        let s = measure(&mut || sawp(&parser, &input.wire, input.response));
        let t = measure(&mut || tokio_modbus(&mut buf, &input.wire, input.response));
        println!(
            "ALLOC {:<32} zonegate {z:>5.2}  zonegate-deframer {zd:>5.2}  sawp-modbus {s:>5.2}  tokio-modbus {t:>5.2}",
            input.name
        );
    }
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    print_allocations(&inputs);
    let parser = sawp_modbus::Modbus::default();
    let mut deframer = TcpDeframer::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    for input in &inputs {
        let mut group = c.benchmark_group(input.name);
        group.throughput(Throughput::Elements(input.frames));
        let wire = &input.wire[..];
        let response = input.response;
        group.bench_function("zonegate", |b| {
            b.iter(|| zonegate(black_box(wire), response));
        });
        group.bench_function("zonegate+values", |b| {
            b.iter(|| zonegate_values(black_box(wire), response));
        });
        group.bench_function("zonegate-deframer", |b| {
            b.iter(|| zonegate_deframer(&mut deframer, black_box(wire), response));
        });
        group.bench_function("sawp-modbus", |b| {
            b.iter(|| sawp(&parser, black_box(wire), response));
        });
        group.bench_function("tokio-modbus", |b| {
            b.iter(|| tokio_modbus(&mut buf, black_box(wire), response));
        });
        group.finish();
    }
}

/// criterion's generated group function (undocumented, hence the allow).
#[allow(missing_docs, unreachable_pub)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}

criterion_main!(group::benches);
