//! zonegate-capture: reads pcap and pcapng files (streaming, constant memory), decodes the link,
//! IP and TCP layers, reassembles each TCP direction and cuts it into Modbus/TCP ADUs with the
//! codec, handing them to a callback as [`Event`]s. This is the I/O side of offline analysis;
//! the detectors live in the pure `zonegate-monitor` crate.
//!
//! Reassembly: out-of-order segments wait (bounded), retransmitted and duplicated bytes count
//! once, and a gap or a framing error (impossible MBAP length, protocol id other than 0) is
//! reported, after which the direction resynchronises at the next segment that starts with a
//! valid MBAP header.
#![forbid(unsafe_code)]

mod link;
mod read;
mod reassembly;

pub use read::{read_capture, CaptureError, Summary};
pub use reassembly::{Event, Reassembler, TcpStats};
