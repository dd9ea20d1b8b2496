//! The bus task: the one owner of a line (a serial port or an RTU-over-TCP converter). It
//! takes the ports' queued requests round robin, keeps the RTU timing (t3.5 before each frame,
//! t1.5 inside one), writes the frame, reads the CRC-checked answer or discards what is not
//! one, retries, and reopens a line that went away. The facade the sessions use (ports,
//! queues, the registry of buses) is the parent module (bus.rs).

use std::io;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};
use zonegate_audit::{Event, Kind};
use zonegate_modbus::error::FrameError;
use zonegate_modbus::rtu;
use zonegate_modbus::{Access, ExceptionCode, Request};
use zonegate_policy::Parity;

use super::{mbap, BusTarget, Core, Job, LineKind, PortConfig, REOPEN_BACKOFF};

/// The open line.
enum LineIo {
    Serial(serial2_tokio::SerialPort),
    Tcp(TcpStream),
}

/// Opens a serial line raw, with its line settings and no flow control: the bus master's
/// line and the serial listener's line alike.
pub(crate) fn open_serial(
    path: &std::path::Path,
    baud: u32,
    parity: Parity,
    data_bits: u8,
    stop_bits: u8,
) -> io::Result<serial2_tokio::SerialPort> {
    serial2_tokio::SerialPort::open(path, move |mut s: serial2_tokio::Settings| {
        s.set_raw();
        s.set_baud_rate(baud)?;
        s.set_char_size(if data_bits == 7 {
            serial2_tokio::CharSize::Bits7
        } else {
            serial2_tokio::CharSize::Bits8
        });
        s.set_stop_bits(if stop_bits == 2 {
            serial2_tokio::StopBits::Two
        } else {
            serial2_tokio::StopBits::One
        });
        s.set_parity(match parity {
            Parity::Even => serial2_tokio::Parity::Even,
            Parity::Odd => serial2_tokio::Parity::Odd,
            _ => serial2_tokio::Parity::None,
        });
        s.set_flow_control(serial2_tokio::FlowControl::None);
        Ok(s)
    })
}

impl LineIo {
    async fn open(target: &BusTarget, connect_timeout: Duration) -> io::Result<Self> {
        match &target.line {
            LineKind::Serial {
                path,
                baud,
                parity,
                data_bits,
                stop_bits,
            } => {
                let port = open_serial(path, *baud, *parity, *data_bits, *stop_bits)?;
                if target.options.rs485 {
                    // Linux RS-485 direction control: the kernel drives RTS around each frame.
                    let config = serial2_tokio::rs4xx::Rs485Config::new();
                    port.set_rs4xx_mode(config).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot enable RS-485 mode (TIOCSRS485): {e}"),
                        )
                    })?;
                }
                // Whatever sat in the buffers before we owned the line is not an answer.
                let _ = port.discard_buffers();
                Ok(Self::Serial(port))
            }
            LineKind::Tcp { host, port } => {
                let connect = TcpStream::connect((host.as_str(), *port));
                let stream = tokio::time::timeout(connect_timeout, connect)
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer within {connect_timeout:?}"),
                        )
                    })??;
                let _ = stream.set_nodelay(true);
                Ok(Self::Tcp(stream))
            }
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Serial(p) => p.read(buf).await,
            Self::Tcp(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Serial(p) => p.write_all(buf).await,
            Self::Tcp(s) => s.write_all(buf).await,
        }
    }
}

/// How one attempt ended.
enum Attempt {
    /// A good answer (the PDU).
    Answer(Vec<u8>),
    /// No (valid) answer in time: retry or 0x0B.
    Failed(&'static str),
    /// The line failed.
    Lost(String),
}

/// The task that owns one line.
pub(super) struct BusTask {
    core: Arc<Core>,
    key: String,
    line: Option<LineIo>,
    /// What the open line was opened with (a reload may change baud rate or parity).
    opened: Option<LineKind>,
    /// The line may be sent the next frame once it was silent since then for the silence time.
    quiet_from: Instant,
    /// When the line failed, and the wall-clock time for the record; `None` while it works.
    down: Option<(Instant, SystemTime, String)>,
    last_open_attempt: Option<Instant>,
}

impl BusTask {
    pub(super) fn new(core: Arc<Core>, key: String) -> Self {
        Self {
            core,
            key,
            line: None,
            opened: None,
            quiet_from: Instant::now(),
            down: None,
            last_open_attempt: None,
        }
    }

    pub(super) async fn run(mut self, mut kicked: mpsc::Receiver<()>) {
        loop {
            match self.next_job() {
                Some((job, answers)) => {
                    let answer = self.transact(&job).await;
                    // The port may be gone (its session ended): the answer is then dropped.
                    let _ = answers.send(mbap(job.utid, job.unit, &answer));
                }
                None => {
                    if kicked.recv().await.is_none() {
                        // No handle left: close the line.
                        info!(bus = %self.key, "bus unused, line closed");
                        return;
                    }
                }
            }
        }
    }

    /// The next request, round robin over the ports; requests that waited past
    /// `queue_timeout` are answered 0x0B on the way.
    pub(super) fn next_job(&mut self) -> Option<(Job, mpsc::UnboundedSender<Vec<u8>>)> {
        let now = Instant::now();
        let mut q = self
            .core
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for port in &mut q.ports {
            while let Some(job) = port.jobs.front() {
                if now.saturating_duration_since(job.queued)
                    < job.config.target.options.queue_timeout
                {
                    break;
                }
                if let Some(job) = port.jobs.pop_front() {
                    let fc = job.pdu.first().copied().unwrap_or(0);
                    alert(
                        &job.config,
                        Some(job.unit.get()),
                        Some(fc),
                        "rtu_queue_timeout",
                        format!(
                            "waited {:?} for the bus (queue_timeout): answered 0x0B, never sent",
                            now.saturating_duration_since(job.queued)
                        ),
                    );
                    let _ = port.answers.send(mbap(
                        job.utid,
                        job.unit,
                        &exception(fc, ExceptionCode::GatewayTargetFailedToRespond),
                    ));
                }
            }
        }
        let n = q.ports.len();
        for i in 0..n {
            let idx = (q.cursor + i) % n;
            let port = &mut q.ports[idx];
            if let Some(job) = port.jobs.pop_front() {
                let answers = port.answers.clone();
                q.cursor = idx + 1;
                return Some((job, answers));
            }
        }
        None
    }

    /// Makes sure the line is open with the job's settings; `Err` answers 0x0A.
    async fn ensure_line(&mut self, config: &PortConfig) -> Result<(), ()> {
        if self.opened.as_ref() != Some(&config.target.line) {
            // A reload changed the line settings: reopen.
            self.line = None;
        }
        if self.line.is_some() {
            return Ok(());
        }
        if self
            .last_open_attempt
            .is_some_and(|t| t.elapsed() < REOPEN_BACKOFF)
        {
            return Err(());
        }
        self.last_open_attempt = Some(Instant::now());
        match LineIo::open(&config.target, config.connect_timeout).await {
            Ok(line) => {
                self.line = Some(line);
                self.opened = Some(config.target.line.clone());
                self.quiet_from = Instant::now();
                if let Some((since, _, why)) = self.down.take() {
                    let outage = since.elapsed();
                    info!(bus = %config.label, "line back after {outage:?}");
                    let mut ev = bus_event(config, Kind::Connection, "bus_line_restored");
                    ev.message = Some(format!(
                        "line reopened after an outage of {:.3} s ({why})",
                        outage.as_secs_f64()
                    ));
                    config.record(ev);
                }
                Ok(())
            }
            Err(e) => {
                self.lost(config, &format!("cannot open the line: {e}"));
                Err(())
            }
        }
    }

    /// The line failed: close it and record the outage's start (once per outage).
    fn lost(&mut self, config: &PortConfig, why: &str) {
        self.line = None;
        self.opened = None;
        if self.down.is_none() {
            warn!(bus = %config.label, "bus line lost ({why}); answering 0x0A until it is back");
            let mut ev = bus_event(config, Kind::Alert, "bus_line_lost");
            ev.message = Some(why.to_owned());
            config.record(ev);
            self.down = Some((Instant::now(), SystemTime::now(), why.to_owned()));
        }
    }

    /// One request on the wire: the answer PDU for the client (the device's, or an exception).
    async fn transact(&mut self, job: &Job) -> Vec<u8> {
        let config = &*job.config;
        let fc = job.pdu.first().copied().unwrap_or(0);
        let Ok(request) = Request::parse(&job.pdu) else {
            // The session parsed it before forwarding; cannot happen.
            return exception(fc, ExceptionCode::ServerDeviceFailure);
        };
        let broadcast = job.unit.is_broadcast();
        if broadcast && request.access() != Access::Write {
            return exception(fc, ExceptionCode::IllegalFunction);
        }
        if self.ensure_line(config).await.is_err() {
            return exception(fc, ExceptionCode::GatewayPathUnavailable);
        }
        let mut frame = [0u8; rtu::MAX_RTU_ADU_LEN];
        let Ok(len) = rtu::encode_adu(job.unit, &job.pdu, &mut frame) else {
            return exception(fc, ExceptionCode::ServerDeviceFailure);
        };
        let frame = &frame[..len];
        let o = &config.target.options;
        let attempts = if request.access() == Access::Write && !o.retry_writes {
            1
        } else {
            1 + u32::from(o.retries)
        };
        for attempt in 1..=attempts {
            if let Err(why) = self.drain_stray(config).await {
                self.lost(config, &why);
                return exception(fc, ExceptionCode::GatewayPathUnavailable);
            }
            // t3.5 of silence before the frame.
            wait_precisely(self.quiet_from + config.target.silence).await;
            let Some(line) = &mut self.line else {
                return exception(fc, ExceptionCode::GatewayPathUnavailable);
            };
            if let Err(e) = line.write_all(frame).await {
                self.lost(config, &format!("write failed: {e}"));
                return exception(fc, ExceptionCode::GatewayPathUnavailable);
            }
            let sent = Instant::now();
            // The frame is on the wire until its last character left.
            let on_wire_until = sent + config.target.timing.chars(len);
            self.quiet_from = on_wire_until;
            if o.echo {
                match self.read_echo(config, frame, on_wire_until).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(why) => {
                        self.lost(config, &why);
                        return exception(fc, ExceptionCode::GatewayPathUnavailable);
                    }
                }
            }
            if broadcast {
                // No device answers a broadcast; the next frame waits the turnaround delay.
                tokio::time::sleep_until(on_wire_until + o.turnaround).await;
                self.quiet_from = Instant::now();
                return broadcast_answer(&job.pdu);
            }
            let deadline = on_wire_until + config.request_timeout;
            match self.read_answer(job, &request, deadline).await {
                Attempt::Answer(pdu) => return pdu,
                Attempt::Failed(why) => {
                    if attempt < attempts {
                        info!(bus = %config.label, unit = job.unit.get(), "{why}; retrying ({attempt}/{})", attempts - 1);
                    }
                }
                Attempt::Lost(why) => {
                    self.lost(config, &why);
                    return exception(fc, ExceptionCode::GatewayPathUnavailable);
                }
            }
        }
        exception(fc, ExceptionCode::GatewayTargetFailedToRespond)
    }

    /// Reads and drops bytes already waiting (a late answer, noise), recording them.
    async fn drain_stray(&mut self, config: &PortConfig) -> Result<(), String> {
        let Some(line) = &mut self.line else {
            return Ok(());
        };
        let mut junk = [0u8; 512];
        let mut total = 0usize;
        for _ in 0..64 {
            match tokio::time::timeout(Duration::ZERO, line.read(&mut junk)).await {
                Err(_) => break,
                Ok(Ok(0)) => return Err("the line closed".to_owned()),
                Ok(Ok(n)) => total += n,
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
            }
        }
        if total > 0 {
            self.quiet_from = Instant::now();
            alert(
                config,
                None,
                None,
                "rtu_unsolicited",
                format!("{total} bytes on the line between transactions (a late answer or noise), dropped"),
            );
        }
        Ok(())
    }

    /// A 2-wire adapter echoes the frame: read it back. `Ok(false)` = it did not come back
    /// right (a collision): the attempt failed.
    async fn read_echo(
        &mut self,
        config: &PortConfig,
        frame: &[u8],
        on_wire_until: Instant,
    ) -> Result<bool, String> {
        let Some(line) = &mut self.line else {
            return Ok(false);
        };
        let mut echo = vec![0u8; frame.len()];
        let mut got = 0;
        let deadline = on_wire_until + config.target.char_timeout + config.request_timeout / 4;
        while got < echo.len() {
            match tokio::time::timeout_at(deadline, line.read(&mut echo[got..])).await {
                Err(_) => break,
                Ok(Ok(0)) => return Err("the line closed".to_owned()),
                Ok(Ok(n)) => got += n,
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
            }
        }
        self.quiet_from = Instant::now().max(self.quiet_from);
        if echo[..got] == *frame {
            return Ok(true);
        }
        alert(
            config,
            frame.first().copied(),
            frame.get(1).copied(),
            "rtu_echo_mismatch",
            format!(
                "echo: true, but {got} of {} bytes came back{} (a collision on the bus?)",
                frame.len(),
                if got == frame.len() { " different" } else { "" }
            ),
        );
        Ok(false)
    }

    /// Waits for the answer to `job` until `deadline`: skips noise, drops (and records) torn
    /// frames, CRC errors and answers from another unit or with another function.
    async fn read_answer(
        &mut self,
        job: &Job,
        request: &Request<'_>,
        deadline: Instant,
    ) -> Attempt {
        let config = &*job.config;
        let fc = job.pdu.first().copied().unwrap_or(0);
        let unit = job.unit.get();
        let char_timeout = config.target.char_timeout;
        let mut buf: Vec<u8> = Vec::with_capacity(rtu::MAX_RTU_ADU_LEN * 2);
        let mut chunk = [0u8; 512];
        let mut last_byte: Option<Instant> = None;
        // The device answered, but not usably: give up at the next silence, not the deadline.
        let mut answered_badly = false;
        let mut noise = 0usize;
        let mut crc_reported = false;
        loop {
            let Some(line) = &mut self.line else {
                return Attempt::Lost("the line closed".to_owned());
            };
            let until = match last_byte {
                Some(t) if !buf.is_empty() => deadline.min(t + char_timeout),
                _ => deadline,
            };
            match tokio::time::timeout_at(until, line.read(&mut chunk)).await {
                Err(_) => {
                    let now = Instant::now();
                    if !buf.is_empty() {
                        // Silence inside a frame: a frame the length rules could not frame
                        // (user-defined codes) may still be whole; else it is torn.
                        if let Ok(adu) = rtu::decode_frame(&buf, rtu::Direction::Response) {
                            if adu.address == job.unit
                                && adu.pdu.first().is_some_and(|&f| f & 0x7F == fc)
                            {
                                return Attempt::Answer(adu.pdu.to_vec());
                            }
                        }
                        alert(
                            config,
                            Some(unit),
                            Some(fc),
                            "rtu_torn_frame",
                            format!(
                                "{} bytes, then silence for {char_timeout:?} (torn frame), dropped",
                                buf.len()
                            ),
                        );
                        buf.clear();
                        answered_badly = true;
                    }
                    if answered_badly || now >= deadline {
                        if noise > 0 {
                            alert(
                                config,
                                Some(unit),
                                Some(fc),
                                "rtu_noise",
                                format!("{noise} bytes of noise skipped"),
                            );
                        }
                        return Attempt::Failed(if answered_badly {
                            "no valid answer (see the alert)"
                        } else {
                            "no answer within request_timeout"
                        });
                    }
                }
                Ok(Ok(0)) => return Attempt::Lost("the line closed".to_owned()),
                Ok(Err(e)) => return Attempt::Lost(format!("read failed: {e}")),
                Ok(Ok(n)) => {
                    let now = Instant::now();
                    last_byte = Some(now);
                    self.quiet_from = now;
                    buf.extend_from_slice(&chunk[..n]);
                    // Frame as much as is there.
                    loop {
                        match rtu::decode_response(&buf, request) {
                            Ok(None) => break,
                            Ok(Some(adu)) => {
                                let wire = adu.wire_len();
                                let got_fc = adu.pdu.first().copied().unwrap_or(0);
                                if adu.address != job.unit {
                                    alert(
                                        config,
                                        Some(adu.address.get()),
                                        Some(got_fc),
                                        "rtu_wrong_unit",
                                        format!(
                                            "answer from unit {} to a request to unit {unit}, dropped",
                                            adu.address.get()
                                        ),
                                    );
                                    answered_badly = true;
                                } else if got_fc & 0x7F != fc {
                                    alert(
                                        config,
                                        Some(unit),
                                        Some(got_fc),
                                        "rtu_wrong_function",
                                        format!("answer with function {got_fc} to function {fc}, dropped"),
                                    );
                                    answered_badly = true;
                                } else {
                                    if noise > 0 {
                                        alert(
                                            config,
                                            Some(unit),
                                            Some(fc),
                                            "rtu_noise",
                                            format!(
                                                "{noise} bytes of noise skipped before the answer"
                                            ),
                                        );
                                    }
                                    return Attempt::Answer(adu.pdu.to_vec());
                                }
                                buf.drain(..wire.min(buf.len()));
                            }
                            Err(FrameError::Crc { computed, received }) => {
                                if !crc_reported {
                                    alert(
                                        config,
                                        Some(unit),
                                        Some(fc),
                                        "rtu_crc_error",
                                        format!("CRC {received:#06x} on the wire, {computed:#06x} computed: frame dropped"),
                                    );
                                    crc_reported = true;
                                }
                                answered_badly = true;
                                // Resynchronise: the next valid frame may start anywhere.
                                buf.remove(0);
                                noise += 1;
                            }
                            Err(_) => {
                                // Not the start of a frame: noise, skipped byte by byte.
                                buf.remove(0);
                                noise += 1;
                            }
                        }
                        if buf.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Sleeps until `until` to within ~0.1 ms. tokio's timer has a 1 ms tick and rounds up, which
/// would add up to a millisecond to every t3.5 (1.75-4 ms): a bus at 19200 baud would lose 5 %
/// of its capacity to the timer alone (scripts/BENCH.md). Short waits therefore sleep on a
/// blocking-pool thread (`nanosleep`), long ones on the tokio timer.
pub(crate) async fn wait_precisely(until: Instant) {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return;
    }
    if left > Duration::from_millis(20) {
        tokio::time::sleep_until(until).await;
        return;
    }
    if tokio::task::spawn_blocking(move || std::thread::sleep(left))
        .await
        .is_err()
    {
        tokio::time::sleep_until(until).await;
    }
}

/// `fc | 0x80`, `code`.
fn exception(fc: u8, code: ExceptionCode) -> Vec<u8> {
    vec![fc | 0x80, code.to_u8()]
}

/// What the TCP client gets for a broadcast write that went on the wire: the normal
/// response of the write (see the module docs).
pub(super) fn broadcast_answer(pdu: &[u8]) -> Vec<u8> {
    match pdu.first() {
        Some(15 | 16) => pdu.get(..5).unwrap_or(pdu).to_vec(),
        _ => pdu.to_vec(),
    }
}

fn bus_event(config: &PortConfig, kind: Kind, reason: &'static str) -> Event {
    Event {
        kind,
        conduit: Some(Arc::clone(&config.conduit)),
        dst: Some(Arc::clone(&config.label)),
        reason: Some(reason.into()),
        ..Event::default()
    }
}

/// Records a bus fault as an `alert` (and logs it).
fn alert(
    config: &PortConfig,
    unit: Option<u8>,
    fc: Option<u8>,
    reason: &'static str,
    message: String,
) {
    warn!(bus = %config.label, ?unit, ?fc, reason, "{message}");
    let mut ev = bus_event(config, Kind::Alert, reason);
    ev.unit = unit;
    ev.fc = fc;
    ev.message = Some(message);
    config.record(ev);
}
