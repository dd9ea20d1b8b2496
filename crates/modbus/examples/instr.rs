//! Instruction-count harness for the codec benchmark: runs one scenario of `benches/codec.rs`
//! `N` times with one contender, so `valgrind --tool=callgrind` can count instructions per frame
//! without the noise of wall-clock timing on a shared machine.
//!
//! ```sh
//! cargo build --release -p zonegate-modbus --example instr
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instr zonegate fc3_request 1000
//! ```
//!
//! Usage: `instr <zonegate|sawp> <scenario|all> <iterations>`. Scenarios (the bench's inputs):
//! `fc3_request`, `fc3_response_125_registers`, `fc16_request_123_registers`,
//! `pipelined_100_mixed_requests`. Instructions per frame = (Ir at `2N` iterations − Ir at `N`
//! iterations) / (`N` × frames per iteration): the difference cancels start-up and input
//! construction; `BENCH.md` shows the shell loop that does this.

use std::hint::black_box;
use std::process::ExitCode;

use sawp::parser::{Direction as SawpDirection, Parse as _};
use zonegate_modbus::{tcp, Request, Response, UnitId};

fn adu(tid: u16, pdu: &[u8]) -> Vec<u8> {
    let mut out = [0u8; tcp::MAX_TCP_ADU_LEN];
    let n = tcp::encode_adu(tid, UnitId::new(1), pdu, &mut out).unwrap_or(0);
    out[..n].to_vec()
}

fn registers(fc: u8, count: u16) -> Vec<u8> {
    let mut pdu = vec![fc, (count * 2) as u8];
    pdu.extend((0..count).flat_map(|v| (v * 7).to_be_bytes()));
    pdu
}

fn write_registers(count: u16) -> Vec<u8> {
    let mut pdu = vec![0x10, 0x00, 0x64];
    pdu.extend(count.to_be_bytes());
    pdu.push((count * 2) as u8);
    pdu.extend((0..count).flat_map(|v| (v + 200).to_be_bytes()));
    pdu
}

/// (wire bytes, frames, response?) of a scenario: the same bytes as `benches/codec.rs`.
fn input(name: &str) -> Option<(Vec<u8>, usize, bool)> {
    let mixed: [Vec<u8>; 10] = [
        vec![0x03, 0x00, 0x00, 0x00, 0x0A],
        vec![0x04, 0x00, 0x10, 0x00, 0x02],
        vec![0x01, 0x00, 0x13, 0x00, 0x13],
        vec![0x02, 0x00, 0xC4, 0x00, 0x16],
        vec![0x05, 0x00, 0xAC, 0xFF, 0x00],
        vec![0x06, 0x00, 0x01, 0x00, 0x03],
        vec![0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01],
        write_registers(10),
        vec![
            0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0, 1, 0, 2, 0, 3,
        ],
        vec![0x03, 0x00, 0x00, 0x00, 0x7D],
    ];
    Some(match name {
        "fc3_request" => (adu(1, &[0x03, 0x00, 0x6B, 0x00, 0x03]), 1, false),
        "fc3_response_125_registers" => (adu(1, &registers(0x03, 125)), 1, true),
        "fc16_request_123_registers" => (adu(1, &write_registers(123)), 1, false),
        "pipelined_100_mixed_requests" => (
            (0..100u16)
                .flat_map(|i| adu(i, &mixed[usize::from(i) % mixed.len()]))
                .collect(),
            100,
            false,
        ),
        _ => return None,
    })
}

/// The bench's `zonegate` loop: `tcp::decode_adu` + `Request::parse` / `Response::parse`.
#[inline(never)]
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

/// The bench's `sawp-modbus` loop.
#[inline(never)]
fn sawp(parser: &sawp_modbus::Modbus, wire: &[u8], response: bool) -> usize {
    let direction = if response {
        SawpDirection::ToClient
    } else {
        SawpDirection::ToServer
    };
    let mut rest = wire;
    let mut n = 0;
    while !rest.is_empty() {
        match parser.parse(rest, direction.clone()) {
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [contender, scenario, iterations] = args.as_slice() else {
        eprintln!("usage: instr <zonegate|sawp> <scenario> <iterations>");
        return ExitCode::from(2);
    };
    let Some((wire, frames, response)) = input(scenario) else {
        eprintln!("unknown scenario {scenario}");
        return ExitCode::from(2);
    };
    let Ok(iterations) = iterations.parse::<usize>() else {
        eprintln!("iterations must be a number");
        return ExitCode::from(2);
    };
    let parser = sawp_modbus::Modbus::default();
    let mut parsed = 0;
    // The contender is chosen once, outside the loop, so the loop holds only its work.
    match contender.as_str() {
        "zonegate" => {
            for _ in 0..iterations {
                parsed += zonegate(black_box(&wire), response);
            }
        }
        "sawp" => {
            for _ in 0..iterations {
                parsed += sawp(&parser, black_box(&wire), response);
            }
        }
        other => {
            eprintln!("unknown contender {other}");
            return ExitCode::from(2);
        }
    }
    if parsed != iterations * frames {
        eprintln!("parsed {parsed} frames, expected {}", iterations * frames);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
