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
use zonegate_modbus::{tcp, Request, Response};

/// The bench's inputs (same bytes as `benches/codec.rs`).
#[path = "../benches/common/mod.rs"]
mod common;

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
    let Some(common::Input {
        wire,
        frames,
        response,
        ..
    }) = common::inputs().into_iter().find(|i| i.name == scenario)
    else {
        eprintln!("unknown scenario {scenario}");
        return ExitCode::from(2);
    };
    let frames = usize::try_from(frames).unwrap_or(usize::MAX);
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
