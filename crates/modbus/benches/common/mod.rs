//! The benchmark's inputs, shared by `benches/codec.rs` (criterion) and `examples/instr.rs`
//! (callgrind instruction counts), so that both measure the same bytes.

use zonegate_modbus::{tcp, UnitId};

/// One benchmark input: a buffer of whole TCP ADUs, all requests or all responses.
pub(crate) struct Input {
    pub(crate) name: &'static str,
    pub(crate) wire: Vec<u8>,
    pub(crate) frames: u64,
    pub(crate) response: bool,
}

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

/// Every input of the benchmark, in table order.
pub(crate) fn inputs() -> Vec<Input> {
    let fc3 = [0x03, 0x00, 0x6B, 0x00, 0x03];
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
    let pipelined: Vec<u8> = (0..100u16)
        .flat_map(|i| adu(i, &mixed[usize::from(i) % mixed.len()]))
        .collect();
    vec![
        Input {
            name: "fc3_request",
            wire: adu(1, &fc3),
            frames: 1,
            response: false,
        },
        Input {
            name: "fc3_response_125_registers",
            wire: adu(1, &registers(0x03, 125)),
            frames: 1,
            response: true,
        },
        Input {
            name: "fc16_request_123_registers",
            wire: adu(1, &write_registers(123)),
            frames: 1,
            response: false,
        },
        Input {
            name: "pipelined_100_mixed_requests",
            wire: pipelined,
            frames: 100,
            response: false,
        },
    ]
}
