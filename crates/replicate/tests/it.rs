//! Integration tests of zonegate-replicate: the datagram and its tag (`it/datagram.rs`), the
//! receive side's state machine and image (`it/verify.rs`), and both agents on loopback against
//! the simulated device, through a lossy relay (`it/agents.rs`), and what survives a restart and what the transmit
//! side records (`it/restart.rs`), Modbus/TCP Security on both sides (`it/tls.rs`), and an RTU source, serial line and
//! RTU over TCP (`it/rtu.rs`). One test binary for the crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod it {
    mod agents;
    mod common;
    mod datagram;
    mod restart;
    mod rtu;
    mod tls;
    mod verify;
}
