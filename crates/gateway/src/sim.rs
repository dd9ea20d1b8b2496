//! A simulated Modbus TCP device: a cleanroom HVAC controller for demos and tests.
//!
//! Four tables of 65536 items each (coils, discrete inputs, holding and input registers),
//! FC 1-6, 15, 16, 17 (server id, run indicator ON, a description), 22, 23 and 43/14 (vendor,
//! product, version, URL, product name, model name); any other function code gets
//! exception 0x01, addresses outside the map 0x02, a malformed request what the codec says
//! (0x03 or 0x01). Requests are parsed and responses encoded by `zonegate-modbus`; this module
//! only keeps the memory. Pipelining works: every whole request in a read is answered, in order,
//! in one write.
//!
//! Seeded values (zero-based addresses; temperatures in 0.1 °C, humidity in 0.1 %RH):
//!
//! | table    | address | meaning                                  | value         |
//! |----------|---------|------------------------------------------|---------------|
//! | holding  | 0       | operating mode (0 off, 1 auto, 2 manual) | 1             |
//! | holding  | 1       | air changes per hour                     | 30            |
//! | holding  | 100     | cleanroom temperature setpoint           | 200 (20.0 °C) |
//! | holding  | 101     | supply air temperature setpoint          | 180 (18.0 °C) |
//! | holding  | 102     | gowning room temperature setpoint        | 220 (22.0 °C) |
//! | holding  | 103     | corridor temperature setpoint            | 210 (21.0 °C) |
//! | holding  | 110     | humidity setpoint                        | 450 (45.0 %)  |
//! | holding  | 111     | room overpressure setpoint, Pa           | 15            |
//! | holding  | 112     | fan speed setpoint, %                    | 75            |
//! | input    | 0       | room temperature                         | 201 (20.1 °C) |
//! | input    | 1       | supply air temperature                   | 182           |
//! | input    | 2       | relative humidity                        | 447           |
//! | input    | 3       | room overpressure, Pa                    | 14            |
//! | input    | 4       | fan speed, rpm                           | 1420          |
//! | input    | 5       | HEPA filter differential pressure, Pa    | 180           |
//! | coils    | 0, 1    | AHU run, humidifier enable               | on, on        |
//! | discrete | 0..3    | filter alarm, door open, fire, airflow ok| 0, 0, 0, 1    |

/// Where `zonegate sim` listens by default: 1502, the usual unprivileged Modbus port, and no
/// example model's gateway port (5020-5031), so a simulator and an example gateway can run side
/// by side (`crates/zonegate/tests/it/run.rs` checks it).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1502";

mod rtu;
pub use rtu::{RtuLine, RtuSim, TORN_SILENCE};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Buf, BytesMut};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};
use zonegate_modbus::tcp::{decode_adu, encode_adu};
use zonegate_modbus::{
    AddressRange, CoilValues, ExceptionCode, FunctionCode, ReadDeviceIdCode, RegisterValues,
    Request, Response, UnitId, MAX_TCP_ADU_LEN,
};

/// Items per table.
const TABLE_LEN: usize = 65536;
/// Largest PDU.
const MAX_PDU: usize = 253;

/// The identification objects of FC 43/14 (id, value); 0-2 basic, 3-6 regular.
/// The FC 17 Report Server ID data: server id, run indicator (0xFF: ON), additional data.
const SERVER_ID: &[u8] = b"\x5A\xFFzonegate simulated HVAC";

const IDENTITY: [(u8, &str); 6] = [
    (0x00, "zonegate"),
    (0x01, "ZG-SIM-HVAC"),
    (0x02, env!("CARGO_PKG_VERSION")),
    (0x03, "https://example.invalid/zonegate"),
    (0x04, "Simulated cleanroom HVAC controller"),
    (0x05, "AHU-01 (simulated)"),
];

struct Tables {
    coils: Vec<bool>,
    discrete: Vec<bool>,
    holding: Vec<u16>,
    input: Vec<u16>,
}

/// The device memory and request handling (no I/O; see [`Sim`] for the TCP server).
pub struct Device {
    tables: Mutex<Tables>,
    unit: Option<UnitId>,
}

impl Device {
    /// A device with every table zeroed that answers any unit id.
    pub fn new() -> Self {
        Self {
            tables: Mutex::new(Tables {
                coils: vec![false; TABLE_LEN],
                discrete: vec![false; TABLE_LEN],
                holding: vec![0; TABLE_LEN],
                input: vec![0; TABLE_LEN],
            }),
            unit: None,
        }
    }

    /// The cleanroom HVAC controller of the module docs.
    pub fn hvac() -> Self {
        let d = Self::new();
        {
            let mut t = d.lock();
            for (a, v) in [
                (0, 1),
                (1, 30),
                (100, 200),
                (101, 180),
                (102, 220),
                (103, 210),
                (110, 450),
                (111, 15),
                (112, 75),
            ] {
                t.holding[a] = v;
            }
            for (a, v) in [(0, 201), (1, 182), (2, 447), (3, 14), (4, 1420), (5, 180)] {
                t.input[a] = v;
            }
            t.coils[0] = true;
            t.coils[1] = true;
            t.discrete[3] = true;
        }
        d
    }

    /// Answer only requests to this unit id (and to 0 and 255); others get no answer, like a
    /// serial slave that is not addressed.
    #[must_use]
    pub fn with_unit(mut self, unit: Option<u8>) -> Self {
        self.unit = unit.map(UnitId::new);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A holding register.
    pub fn holding(&self, address: u16) -> u16 {
        self.lock().holding[usize::from(address)]
    }

    /// Sets a holding register.
    pub fn set_holding(&self, address: u16, value: u16) {
        self.lock().holding[usize::from(address)] = value;
    }

    /// An input register.
    pub fn input(&self, address: u16) -> u16 {
        self.lock().input[usize::from(address)]
    }

    /// Sets an input register.
    pub fn set_input(&self, address: u16, value: u16) {
        self.lock().input[usize::from(address)] = value;
    }

    /// A coil.
    pub fn coil(&self, address: u16) -> bool {
        self.lock().coils[usize::from(address)]
    }

    /// A discrete input.
    pub fn discrete(&self, address: u16) -> bool {
        self.lock().discrete[usize::from(address)]
    }

    /// A copy of `count` holding registers from `start` (for tests: "unchanged afterwards").
    pub fn holding_range(&self, start: u16, count: usize) -> Vec<u16> {
        let t = self.lock();
        let s = usize::from(start);
        t.holding[s..(s + count).min(TABLE_LEN)].to_vec()
    }

    /// Whether this device answers `unit`.
    pub fn answers(&self, unit: UnitId) -> bool {
        match self.unit {
            None => true,
            Some(u) => unit == u || unit.get() == 0 || unit.get() == 0xFF,
        }
    }

    /// Handles one request PDU and writes the response PDU into `out` (at least 253 bytes);
    /// returns its length.
    pub fn handle(&self, pdu: &[u8], out: &mut [u8]) -> usize {
        let fc = pdu.first().copied().unwrap_or(0);
        let result = match Request::parse(pdu) {
            Ok(req) => self.execute(&req, out),
            Err(e) => Err(e
                .exception_code()
                .unwrap_or(ExceptionCode::IllegalDataValue)),
        };
        match result {
            Ok(n) => n,
            Err(code) => {
                let resp = Response::Exception {
                    function: FunctionCode::new(fc & 0x7F),
                    code,
                };
                resp.encode(out).unwrap_or(0)
            }
        }
    }

    fn execute(&self, req: &Request<'_>, out: &mut [u8]) -> Result<usize, ExceptionCode> {
        let mut scratch = [0u8; MAX_PDU];
        let mut t = self.lock();
        let resp = match *req {
            Request::ReadCoils(r) => {
                let n = pack_bits(&t.coils, r, &mut scratch)?;
                Response::ReadCoils(coils(&scratch[..n], r)?)
            }
            Request::ReadDiscreteInputs(r) => {
                let n = pack_bits(&t.discrete, r, &mut scratch)?;
                Response::ReadDiscreteInputs(coils(&scratch[..n], r)?)
            }
            Request::ReadHoldingRegisters(r) => {
                let n = pack_words(&t.holding, r, &mut scratch)?;
                Response::ReadHoldingRegisters(registers(&scratch[..n])?)
            }
            Request::ReadInputRegisters(r) => {
                let n = pack_words(&t.input, r, &mut scratch)?;
                Response::ReadInputRegisters(registers(&scratch[..n])?)
            }
            Request::WriteSingleCoil { address, value } => {
                t.coils[usize::from(address)] = value;
                Response::WriteSingleCoil { address, value }
            }
            Request::WriteSingleRegister { address, value } => {
                t.holding[usize::from(address)] = value;
                Response::WriteSingleRegister { address, value }
            }
            Request::WriteMultipleCoils { range, values } => {
                for (i, v) in values.iter().enumerate() {
                    t.coils[usize::from(range.start()) + i] = v;
                }
                Response::WriteMultipleCoils(range)
            }
            Request::WriteMultipleRegisters { range, values } => {
                for (i, v) in values.iter().enumerate() {
                    t.holding[usize::from(range.start()) + i] = v;
                }
                Response::WriteMultipleRegisters(range)
            }
            Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                let cur = t.holding[usize::from(address)];
                t.holding[usize::from(address)] = (cur & and_mask) | (or_mask & !and_mask);
                Response::MaskWriteRegister {
                    address,
                    and_mask,
                    or_mask,
                }
            }
            Request::ReadWriteMultipleRegisters {
                read,
                write,
                values,
            } => {
                // The device writes first, then reads (V1.1b3 §6.17).
                for (i, v) in values.iter().enumerate() {
                    t.holding[usize::from(write.start()) + i] = v;
                }
                let n = pack_words(&t.holding, read, &mut scratch)?;
                Response::ReadWriteMultipleRegisters(registers(&scratch[..n])?)
            }
            Request::ReportServerId => Response::ReportServerId { data: SERVER_ID },
            Request::ReadDeviceIdentification {
                read_code,
                object_id,
            } => {
                drop(t);
                return identification_response(read_code, object_id, out);
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        resp.encode(out)
            .map_err(|_| ExceptionCode::ServerDeviceFailure)
    }
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

/// The bits of a read response. A response carries whole bytes only, so the codec's
/// round-trip check in `Response::encode` wants the count as 8 × bytes (the padding is zero).
fn coils(bytes: &[u8], _r: AddressRange) -> Result<CoilValues<'_>, ExceptionCode> {
    let count = u16::try_from(bytes.len() * 8).map_err(|_| ExceptionCode::ServerDeviceFailure)?;
    CoilValues::new(bytes, count).ok_or(ExceptionCode::ServerDeviceFailure)
}

fn registers(bytes: &[u8]) -> Result<RegisterValues<'_>, ExceptionCode> {
    RegisterValues::new(bytes).ok_or(ExceptionCode::ServerDeviceFailure)
}

fn in_map(r: AddressRange) -> Result<(usize, usize), ExceptionCode> {
    let start = usize::from(r.start());
    let end = start + usize::from(r.count());
    if end > TABLE_LEN {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok((start, end))
}

/// Packs bits LSB first into `out`; returns the byte count.
fn pack_bits(table: &[bool], r: AddressRange, out: &mut [u8]) -> Result<usize, ExceptionCode> {
    let (start, end) = in_map(r)?;
    let n = (end - start).div_ceil(8);
    if n > out.len() {
        return Err(ExceptionCode::IllegalDataValue);
    }
    out[..n].fill(0);
    for (i, bit) in table[start..end].iter().enumerate() {
        if *bit {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(n)
}

/// Packs registers big-endian into `out`; returns the byte count.
fn pack_words(table: &[u16], r: AddressRange, out: &mut [u8]) -> Result<usize, ExceptionCode> {
    let (start, end) = in_map(r)?;
    let n = (end - start) * 2;
    if n > out.len() {
        return Err(ExceptionCode::IllegalDataValue);
    }
    for (i, w) in table[start..end].iter().enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    Ok(n)
}

/// Builds the FC 43/14 response: the codec has no constructor for an object list, so the
/// PDU is laid out here (V1.1b3 §6.21) and checked by `Response::parse` before it is sent.
fn identification_response(
    code: ReadDeviceIdCode,
    object_id: u8,
    out: &mut [u8],
) -> Result<usize, ExceptionCode> {
    let wanted: &[(u8, &str)] = match code {
        ReadDeviceIdCode::Basic => &IDENTITY[..3],
        ReadDeviceIdCode::Specific => {
            let Some(obj) = IDENTITY.iter().find(|(id, _)| *id == object_id) else {
                return Err(ExceptionCode::IllegalDataAddress);
            };
            std::slice::from_ref(obj)
        }
        _ => &IDENTITY[..],
    };
    // Stream access starts at `object_id`, or at the first object when it does not exist.
    let first = wanted
        .iter()
        .position(|(id, _)| *id == object_id)
        .unwrap_or(0);
    let mut pdu = [0u8; MAX_PDU];
    // fc, MEI type, read code, conformity (0x82: regular, stream and single access),
    // more follows, next object id, number of objects.
    pdu[..7].copy_from_slice(&[0x2B, 0x0E, code.to_u8(), 0x82, 0x00, 0x00, 0x00]);
    let mut n = 7;
    let mut count = 0u8;
    for (id, value) in &wanted[first..] {
        let v = value.as_bytes();
        if n + 2 + v.len() > MAX_PDU {
            pdu[4] = 0xFF;
            pdu[5] = *id;
            break;
        }
        pdu[n] = *id;
        pdu[n + 1] = u8::try_from(v.len()).unwrap_or(u8::MAX);
        pdu[n + 2..n + 2 + v.len()].copy_from_slice(v);
        n += 2 + v.len();
        count += 1;
    }
    pdu[6] = count;
    let resp = Response::parse(&pdu[..n]).map_err(|_| ExceptionCode::ServerDeviceFailure)?;
    resp.encode(out)
        .map_err(|_| ExceptionCode::ServerDeviceFailure)
}

/// A running simulated device.
pub struct Sim {
    local_addr: SocketAddr,
    device: Arc<Device>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sim {
    /// Binds `addr` (port 0 picks a free port) and serves `device` until [`Sim::stop`].
    pub async fn start(addr: SocketAddr, device: Device) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let device = Arc::new(device);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&device), stop_rx));
        info!("simulated device listening on {local_addr}");
        Ok(Self {
            local_addr,
            device,
            stop,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The device memory (to inspect or change it while it runs).
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, device: Arc<Device>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((socket, peer)) => {
                    tokio::spawn(serve(socket, peer, Arc::clone(&device), stop.clone()));
                }
                Err(e) => {
                    debug!("sim: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

/// Serves one client connection until it closes or sends a broken frame.
async fn serve(
    mut socket: TcpStream,
    peer: SocketAddr,
    device: Arc<Device>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let mut inbuf = BytesMut::with_capacity(4096);
    let mut outbuf = BytesMut::with_capacity(4096);
    let mut pdu = [0u8; MAX_PDU];
    let mut resp = [0u8; MAX_PDU];
    let mut adu = [0u8; MAX_TCP_ADU_LEN];
    loop {
        tokio::select! {
            r = crate::io::read_some(&mut socket, &mut inbuf, 4096) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = stop.changed() => return,
        }
        loop {
            let (tid, unit, len) = match decode_adu(&inbuf) {
                Ok(None) => break,
                Ok(Some(a)) => {
                    let n = a.pdu.len().min(MAX_PDU);
                    pdu[..n].copy_from_slice(&a.pdu[..n]);
                    let wire = a.wire_len();
                    let h = a.header;
                    inbuf.advance(wire);
                    (h.transaction_id, h.unit_id, n)
                }
                Err(e) => {
                    debug!(%peer, "sim: closing after a broken frame: {e}");
                    return;
                }
            };
            if !device.answers(unit) {
                debug!(%peer, unit = unit.get(), "sim: not my unit id, no answer");
                continue;
            }
            let n = device.handle(&pdu[..len], &mut resp);
            if let Ok(m) = encode_adu(tid, unit, &resp[..n], &mut adu) {
                outbuf.extend_from_slice(&adu[..m]);
            }
        }
        if !outbuf.is_empty() {
            if crate::io::write_all_within(&socket, &outbuf, std::time::Duration::from_secs(10))
                .await
                .is_err()
            {
                return;
            }
            outbuf.clear();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn read_coils() {
        let d = Device::hvac();
        let mut out = [0u8; 253];
        let n = d.handle(&[1, 0, 0, 0, 4], &mut out);
        assert_eq!(&out[..n], &[1, 1, 0b11]);
    }
}
