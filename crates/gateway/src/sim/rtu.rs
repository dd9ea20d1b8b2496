//! The simulated device as Modbus RTU slaves on a serial line (`zonegate sim --rtu /dev/ttyZ`).
//!
//! One [`Device`] memory answers every unit id of `units` (all of 1..=247 when empty); a
//! request to another unit gets no answer, as on a real bus. A broadcast (unit 0) is executed
//! and not answered. A frame with a bad CRC, or bytes that start no frame, are dropped
//! byte by byte until a valid frame starts (what a slave does after noise); a partial frame
//! followed by [`TORN_SILENCE`] of silence is dropped. Framing and CRC are `zonegate-modbus`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};
use zonegate_modbus::rtu;
use zonegate_modbus::UnitId;

use super::Device;

/// A partial frame followed by this much silence is torn and dropped.
pub const TORN_SILENCE: Duration = Duration::from_millis(50);

/// Line settings of the simulated slaves (a pty ignores them; a real port needs them).
#[derive(Debug, Clone, Copy)]
pub struct RtuLine {
    /// Baud rate.
    pub baud: u32,
    /// `true`: even parity, else none.
    pub even_parity: bool,
}

impl Default for RtuLine {
    fn default() -> Self {
        Self {
            baud: 19_200,
            even_parity: false,
        }
    }
}

/// Running RTU slaves on one serial line.
pub struct RtuSim {
    path: PathBuf,
    device: Arc<Device>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RtuSim {
    /// Opens `path` and serves `device` as the slaves `units` until [`RtuSim::stop`].
    pub fn start(
        path: &Path,
        line: RtuLine,
        device: Device,
        units: &[u8],
    ) -> std::io::Result<Self> {
        let port = open(path, line)?;
        let device = Arc::new(device);
        let units: Vec<UnitId> = units.iter().copied().map(UnitId::new).collect();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(port, Arc::clone(&device), units, stop_rx));
        info!("simulated RTU slaves on {}", path.display());
        Ok(Self {
            path: path.to_owned(),
            device,
            stop,
            task: Some(task),
        })
    }

    /// The serial device.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device memory.
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// Stops serving and closes the line.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }

    /// Waits until the line fails (a pty whose other side went away) or [`RtuSim::stop`].
    pub async fn finished(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn open(path: &Path, line: RtuLine) -> std::io::Result<serial2_tokio::SerialPort> {
    let parity = if line.even_parity {
        zonegate_policy::Parity::Even
    } else {
        zonegate_policy::Parity::None
    };
    crate::bus::open_serial(path, line.baud, parity, 8, 1)
}

async fn serve(
    port: serial2_tokio::SerialPort,
    device: Arc<Device>,
    units: Vec<UnitId>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 512];
    let mut resp = [0u8; 253];
    let mut frame = [0u8; rtu::MAX_RTU_ADU_LEN];
    loop {
        let read = port.read(&mut chunk);
        let got = if buf.is_empty() {
            tokio::select! {
                r = read => Some(r),
                _ = stop.changed() => return,
            }
        } else {
            tokio::select! {
                r = tokio::time::timeout(TORN_SILENCE, read) => r.ok(),
                _ = stop.changed() => return,
            }
        };
        match got {
            None => {
                debug!("sim rtu: {} bytes of a torn frame dropped", buf.len());
                buf.clear();
                continue;
            }
            Some(Ok(0)) | Some(Err(_)) => {
                info!("sim rtu: the line closed");
                return;
            }
            Some(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        loop {
            let (unit, pdu, wire) = match rtu::decode_adu(&buf, rtu::Direction::Request) {
                Ok(None) => break,
                Ok(Some(adu)) => (adu.address, adu.pdu.to_vec(), adu.wire_len()),
                Err(_) => {
                    // CRC error or noise: resynchronise on the next byte.
                    buf.remove(0);
                    if buf.is_empty() {
                        break;
                    }
                    continue;
                }
            };
            buf.drain(..wire);
            let mine = if units.is_empty() {
                true
            } else {
                units.contains(&unit)
            };
            if !(mine || unit.is_broadcast()) {
                continue;
            }
            let n = device.handle(&pdu, &mut resp);
            if unit.is_broadcast() {
                continue;
            }
            if let Ok(m) = rtu::encode_adu(unit, &resp[..n], &mut frame) {
                if port.write_all(&frame[..m]).await.is_err() {
                    return;
                }
            }
        }
    }
}
