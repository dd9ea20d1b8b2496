//! Modbus RTU buses: the gateway as the master of a serial line (`rtu:///dev/ttyX`) or of an
//! RTU-over-TCP converter (`rtu+tcp://host:port`).
//!
//! ```text
//!  session ─MBAP─▶ Port ─┐                                    ┌─▶ line (serial2 / TCP)
//!  session ─MBAP─▶ Port ─┼─▶ per-port queues ─▶ bus task ─RTU─┤   one transaction at a time
//!  session ─MBAP─▶ Port ─┘   round robin       (one per line) └─◀ CRC-checked answer
//! ```
//!
//! One data path: a bus is a new kind of device *link*, not a second gateway. The session
//! (conn.rs) decides, records and matches answers exactly as for `tcp://`; what it holds as its
//! device connection is a [`Port`], which speaks MBAP to it (the session's own transaction ids)
//! and queues each request for the bus task. The bus task owns the line:
//!
//! - **Fairness**: one queue per port (a port is lent to one client session at a time), served
//!   round robin, so one busy HMI cannot starve the others. A port's queue is bounded
//!   (`max_queue_per_client`): beyond it the request is answered 0x06 (Server Device Busy)
//!   at once. A request still queued after `queue_timeout` gets 0x0B.
//! - **Timing** (Serial Line V1.02 §2.5.1.1): a silence of t3.5 before each frame, measured from
//!   the last byte sent or received; `request_timeout` from when the frame went on the wire;
//!   a frame whose bytes stop for the inter-character timeout is torn.
//! - **Faults** (CRC error, torn frame, an answer from another unit or with another function,
//!   noise): discarded, recorded as an `alert`, never forwarded. Then `retries` resends (never
//!   of a write unless `retry_writes`) and finally 0x0B.
//! - **Broadcast** (unit 0, sent only when a rule allowed it): written, no answer awaited, then
//!   `turnaround`. The TCP client gets the normal response of the write (what a device would
//!   have answered, FC 5/6/22 an echo, FC 15/16 address and quantity) once the frame is on the
//!   wire: a broadcast has no confirmation on a bus. A broadcast that is not a write is not sent
//!   and answered 0x01.
//! - **Loss**: a line that fails (a USB adapter unplugged, a converter gone) is closed; the
//!   next request reopens it (at most every [`REOPEN_BACKOFF`]); requests meanwhile get 0x0A.
//!   The outage is recorded when it starts and when it ends (with its length).
//!
//! This file is the facade the sessions use (targets, ports, per-port queues, the registry of
//! buses); [`line`](mod@line) is the bus task that owns the line (timing, framing, faults, reopening).
//!
//! All conduits that name one line share its bus (the registry is keyed by device path or
//! converter address); the bus task ends when the last port and pool handle are gone.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use zonegate_audit::Event;
use zonegate_modbus::rtu;
use zonegate_modbus::tcp;
use zonegate_modbus::{ExceptionCode, UnitId};
use zonegate_policy::{LineTiming, Parity, SerialOptions, Upstream};

use crate::record::Recorder;
use crate::state::Settings;

mod line;

use line::BusTask;
pub(crate) use line::{open_serial, wait_precisely};

/// How long a failed line is left alone before the next request tries to reopen it.
pub(crate) const REOPEN_BACKOFF: Duration = Duration::from_millis(500);
/// Slack added to the session's deadline of a request sent on a bus: the bus always answers
/// first (0x0B at the latest), the session's own timer is only a safety net.
const SESSION_SLACK: Duration = Duration::from_secs(1);

/// The physical side of a bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// A serial port.
    Serial {
        path: PathBuf,
        baud: u32,
        parity: Parity,
        data_bits: u8,
        stop_bits: u8,
    },
    /// An RTU-over-TCP converter.
    Tcp { host: String, port: u16 },
}

/// A bus upstream, as the data path uses it.
#[derive(Debug, Clone)]
pub(crate) struct BusTarget {
    pub(crate) line: LineKind,
    pub(crate) options: SerialOptions,
    pub(crate) timing: LineTiming,
    /// The silence before each frame: t3.5 on a serial line; none to a converter, which keeps
    /// the serial timing itself.
    pub(crate) silence: Duration,
    /// The inter-character timeout (see [`SerialOptions::char_timeout_for`]).
    pub(crate) char_timeout: Duration,
}

impl BusTarget {
    /// The bus of an `rtu://` or `rtu+tcp://` upstream; `None` for other kinds.
    pub(crate) fn for_upstream(
        upstream: &Upstream,
        options: Option<&SerialOptions>,
    ) -> Option<Self> {
        let options = options.cloned().unwrap_or_default();
        let (line, timing, serial) = match upstream {
            Upstream::Rtu {
                path,
                baud,
                parity,
                data_bits,
                stop_bits,
            } => (
                LineKind::Serial {
                    path: path.clone(),
                    baud: *baud,
                    parity: *parity,
                    data_bits: *data_bits,
                    stop_bits: *stop_bits,
                },
                LineTiming::new(*baud, *parity, *data_bits, *stop_bits),
                true,
            ),
            Upstream::RtuTcp { host, port } => (
                LineKind::Tcp {
                    host: host.clone(),
                    port: *port,
                },
                // What a converter's line most often runs; only the torn-frame timeout uses it.
                LineTiming::new(19_200, Parity::Even, 8, 1),
                false,
            ),
            _ => return None,
        };
        Some(Self {
            silence: if serial { timing.t3_5 } else { Duration::ZERO },
            char_timeout: options.char_timeout_for(&timing),
            line,
            options,
            timing,
        })
    }

    /// The registry key: one bus per device path or converter address.
    fn key(&self) -> String {
        match &self.line {
            LineKind::Serial { path, .. } => format!("serial:{}", path.display()),
            LineKind::Tcp { host, port } => format!("tcp:{host}:{port}"),
        }
    }
}

impl Settings {
    /// How long the session waits for the answer to a request it sent to its device link:
    /// `request_timeout` on TCP; on a bus the longest the bus can take (queue, every attempt,
    /// turnaround), plus slack, because the bus answers every request itself.
    pub(crate) fn answer_within(&self) -> Duration {
        match &self.upstream.bus {
            None => self.request_timeout,
            Some(bus) => {
                let o = &bus.options;
                let attempts = u32::from(o.retries) + 1;
                let frames = bus.timing.chars(2 * rtu::MAX_RTU_ADU_LEN) + bus.silence;
                o.queue_timeout
                    + (self.request_timeout + frames + bus.char_timeout).saturating_mul(attempts)
                    + o.turnaround
                    + SESSION_SLACK
            }
        }
    }
}

/// The start-up probe of a bus: the serial device exists, or the converter accepts a TCP
/// connection (closed at once; the bus opens its own on the first request).
pub(crate) async fn probe(target: &BusTarget, timeout: Duration) -> Result<(), String> {
    match &target.line {
        LineKind::Serial { path, .. } => std::fs::metadata(path)
            .map(|_| ())
            .map_err(|e| format!("serial device {}: {e}", path.display())),
        LineKind::Tcp { host, port } => {
            match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), *port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        }
    }
}

/// What a port's requests need from their conduit (refreshed each time the pool lends it).
pub(crate) struct PortConfig {
    pub(crate) conduit: Arc<str>,
    pub(crate) label: Arc<str>,
    /// `None` for a master outside a gateway that keeps no chain (`rtu_master` without audit).
    pub(crate) recorder: Option<Recorder>,
    pub(crate) target: BusTarget,
    pub(crate) request_timeout: Duration,
    /// Connecting to an RTU-over-TCP converter.
    pub(crate) connect_timeout: Duration,
}

impl PortConfig {
    /// The config of a port lent under `settings` (`None` when the upstream is no bus).
    pub(crate) fn new(settings: &Settings, conduit: &str, recorder: &Recorder) -> Option<Self> {
        let target = settings.upstream.bus.clone()?;
        Some(Self {
            conduit: Arc::from(conduit),
            label: Arc::clone(&settings.upstream.label),
            recorder: Some(recorder.clone()),
            target,
            request_timeout: settings.request_timeout,
            connect_timeout: settings.connect_timeout,
        })
    }
}

impl PortConfig {
    fn record(&self, ev: Event) {
        if let Some(r) = &self.recorder {
            r.record(ev);
        }
    }
}

/// One queued request.
struct Job {
    utid: u16,
    unit: UnitId,
    pdu: Vec<u8>,
    queued: Instant,
    config: Arc<PortConfig>,
}

/// The queue of one port, and where its answers go.
struct PortQueue {
    id: u64,
    jobs: VecDeque<Job>,
    answers: mpsc::UnboundedSender<Vec<u8>>,
}

#[derive(Default)]
struct Queues {
    ports: Vec<PortQueue>,
    /// The next port the round robin serves.
    cursor: usize,
}

struct Core {
    queues: Mutex<Queues>,
}

/// A bus handle: the task lives while one exists (ports hold one).
pub(crate) struct Bus {
    core: Arc<Core>,
    kick: mpsc::Sender<()>,
    next_port: AtomicU64,
}

/// The registry: (line key, bus) pairs.
type Registry = Mutex<Vec<(String, Weak<Bus>)>>;

/// The buses of this process (shared by every conduit, and by gateways in one test process).
fn registry() -> &'static Registry {
    static BUSES: OnceLock<Registry> = OnceLock::new();
    BUSES.get_or_init(Mutex::default)
}

impl Bus {
    /// The bus of `target`'s line, started if nobody holds it.
    pub(crate) fn for_target(target: &BusTarget) -> Arc<Self> {
        let key = target.key();
        let mut buses = registry().lock().unwrap_or_else(PoisonError::into_inner);
        buses.retain(|(_, w)| w.strong_count() > 0);
        if let Some(bus) = buses
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return bus;
        }
        let core = Arc::new(Core {
            queues: Mutex::default(),
        });
        let (kick, kicked) = mpsc::channel(1);
        let bus = Arc::new(Self {
            core: Arc::clone(&core),
            kick,
            next_port: AtomicU64::new(1),
        });
        tokio::spawn(BusTask::new(core, key.clone()).run(kicked));
        buses.push((key, Arc::downgrade(&bus)));
        bus
    }

    /// A new port (one client session's place in the round robin).
    pub(crate) fn open_port(self: &Arc<Self>, config: Arc<PortConfig>) -> Port {
        let id = self.next_port.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.core
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ports
            .push(PortQueue {
                id,
                jobs: VecDeque::new(),
                answers: tx,
            });
        Port {
            bus: Arc::clone(self),
            id,
            config,
            inbuf: BytesMut::new(),
            ready: BytesMut::new(),
            answers: rx,
        }
    }
}

/// A session's link to a bus: MBAP in (its requests), MBAP out (the answers, same ids).
pub(crate) struct Port {
    bus: Arc<Bus>,
    id: u64,
    config: Arc<PortConfig>,
    /// Request bytes not yet a whole MBAP ADU.
    inbuf: BytesMut,
    /// Answers made at once (0x06), before any from the bus.
    ready: BytesMut,
    answers: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Drop for Port {
    fn drop(&mut self) {
        // Its queued requests go with it: nobody waits for their answers any more.
        let mut q = self
            .bus
            .core
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        q.ports.retain(|p| p.id != self.id);
    }
}

impl Port {
    /// Follows the conduit's current settings (the pool calls it on every lend).
    pub(crate) fn configure(&mut self, config: Arc<PortConfig>) {
        self.config = config;
    }

    /// The session writes its requests (MBAP ADUs): each goes into this port's queue, or is
    /// answered 0x06 when the queue is full.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inbuf.extend_from_slice(buf);
        let mut queued = false;
        loop {
            let (utid, unit, pdu, wire) = match tcp::decode_adu(&self.inbuf) {
                Ok(None) => break,
                Ok(Some(adu)) => (
                    adu.header.transaction_id,
                    adu.header.unit_id,
                    adu.pdu.to_vec(),
                    adu.wire_len(),
                ),
                Err(e) => {
                    self.inbuf.clear();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
            };
            self.inbuf.advance(wire);
            let fc = pdu.first().copied().unwrap_or(0);
            let mut q = self
                .bus
                .core
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(mine) = q.ports.iter_mut().find(|p| p.id == self.id) else {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "bus port closed"));
            };
            if mine.jobs.len() >= self.config.target.options.max_queue_per_client {
                drop(q);
                let _ = push_mbap(
                    &mut self.ready,
                    utid,
                    unit,
                    &[fc | 0x80, ExceptionCode::ServerDeviceBusy.to_u8()],
                );
                continue;
            }
            mine.jobs.push_back(Job {
                utid,
                unit,
                pdu,
                queued: Instant::now(),
                config: Arc::clone(&self.config),
            });
            queued = true;
        }
        if queued {
            // Capacity 1: a kick already pending is as good as a new one.
            let _ = self.bus.kick.try_send(());
        }
        Ok(())
    }

    /// The next answers (MBAP), waiting for one; 0 when the bus is gone.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if !self.ready.is_empty() {
            let n = self.ready.len();
            buf.extend_from_slice(&self.ready);
            self.ready.clear();
            return Ok(n);
        }
        match self.answers.recv().await {
            Some(adu) => {
                buf.extend_from_slice(&adu);
                Ok(adu.len())
            }
            None => Ok(0),
        }
    }

    /// An idle port is usable when nothing stray is waiting in it.
    pub(crate) fn still_usable(&mut self) -> bool {
        self.ready.is_empty() && self.inbuf.is_empty() && self.answers.is_empty()
    }
}

/// Appends the MBAP frame of `pdu` to `out`; false (nothing appended) for a PDU too long to
/// frame, which a PDU taken out of a decoded frame never is.
pub(crate) fn push_mbap(out: &mut BytesMut, utid: u16, unit: UnitId, pdu: &[u8]) -> bool {
    let mut adu = [0u8; tcp::MAX_TCP_ADU_LEN];
    match tcp::encode_adu(utid, unit, pdu, &mut adu) {
        Ok(n) => {
            out.extend_from_slice(&adu[..n]);
            true
        }
        Err(_) => false,
    }
}

/// The MBAP frame of `pdu` (see [`push_mbap`]).
pub(crate) fn mbap(utid: u16, unit: UnitId, pdu: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(7 + pdu.len());
    push_mbap(&mut out, utid, unit, pdu);
    out.to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::line::broadcast_answer;
    use super::*;

    #[test]
    fn a_broadcast_write_gets_the_normal_response() {
        // FC 6 | addr 0x0001 | value 0x0003: the echo.
        assert_eq!(broadcast_answer(&[6, 0, 1, 0, 3]), vec![6, 0, 1, 0, 3]);
        // FC 16 | addr 0x0000 | qty 2 | bc 4 | values: address and quantity.
        assert_eq!(
            broadcast_answer(&[16, 0, 0, 0, 2, 4, 0, 1, 0, 2]),
            vec![16, 0, 0, 0, 2]
        );
    }

    /// A port config on a pty path nobody opens (the test never runs the task).
    fn config() -> Arc<PortConfig> {
        let model = zonegate_policy::load_str(
            "conduits:\n  - conduit_id: C1\n    gateway:\n      listen: 127.0.0.1:0\n      upstream: rtu:///nonexistent/tty?parity=none\n    rules: []\n",
            "m.yaml",
        )
        .unwrap();
        let policy = Arc::new(zonegate_policy::Policy::compile(&model).unwrap());
        let state = crate::settings::conduit_state(&policy, Some(0), None).unwrap();
        let handle =
            zonegate_audit::AuditLog::start(zonegate_audit::AuditConfig::default()).unwrap();
        let recorder = Recorder::new(
            handle,
            zonegate_audit::SyncMode::Batch,
            zonegate_audit::OnFailure::BlockWrites,
        );
        Arc::new(PortConfig::new(&state.settings, "C1", &recorder).unwrap())
    }

    #[test]
    fn one_busy_client_cannot_starve_the_others() {
        // Port 1 queues 6 requests at once (a busy HMI), ports 2 and 3 one each: the bus
        // serves 1, 2, 3, then the rest of 1 — round robin, not arrival order.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let config = config();
            let core = Arc::new(Core {
                queues: Mutex::default(),
            });
            let mut keep = Vec::new();
            {
                let mut q = core.queues.lock().unwrap();
                for (id, n) in [(1u64, 6u16), (2, 1), (3, 1)] {
                    let (tx, rx) = mpsc::unbounded_channel();
                    keep.push(rx);
                    let jobs = (0..n)
                        .map(|i| Job {
                            utid: (id as u16) * 100 + i,
                            unit: UnitId::new(1),
                            pdu: vec![3, 0, 0, 0, 1],
                            queued: Instant::now(),
                            config: Arc::clone(&config),
                        })
                        .collect();
                    q.ports.push(PortQueue {
                        id,
                        jobs,
                        answers: tx,
                    });
                }
            }
            let mut task = BusTask::new(Arc::clone(&core), "test".into());
            let mut order = Vec::new();
            while let Some((job, _)) = task.next_job() {
                order.push(job.utid);
            }
            assert_eq!(order, vec![100, 200, 300, 101, 102, 103, 104, 105]);
        });
    }

    #[test]
    fn the_session_waits_longer_than_the_bus() {
        let upstream = Upstream::Rtu {
            path: "/dev/null".into(),
            baud: 9600,
            parity: Parity::None,
            data_bits: 8,
            stop_bits: 1,
        };
        let bus = BusTarget::for_upstream(&upstream, None).unwrap();
        assert_eq!(bus.silence, bus.timing.t3_5);
        assert_eq!(bus.char_timeout, SerialOptions::MIN_DEFAULT_CHAR_TIMEOUT);
        let tcp = BusTarget::for_upstream(
            &Upstream::RtuTcp {
                host: "127.0.0.1".into(),
                port: 1,
            },
            None,
        )
        .unwrap();
        assert_eq!(tcp.silence, Duration::ZERO);
        assert_ne!(bus.key(), tcp.key());
    }
}
