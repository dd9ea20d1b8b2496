//! Shared helpers: a model template, a gateway + simulated device on loopback, a small raw
//! Modbus TCP client that can pick its source address (127.0.0.x), and audit log reading.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use zonegate_audit::Event;
use zonegate_gateway::sim::{Device, Sim};
use zonegate_gateway::{AuditStorageFactory, Gateway, GatewayOptions};
use zonegate_modbus::tcp::{decode_adu, encode_adu};
use zonegate_modbus::{Request, UnitId};

/// The historian in [`model`].
pub(crate) const HISTORIAN: &str = "127.0.0.2";
/// The engineering workstation in [`model`].
pub(crate) const EWS: &str = "127.0.0.3";
/// A source no rule lists.
pub(crate) const STRANGER: &str = "127.0.0.9";

/// Every test waits at most this long for one answer.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A fresh directory under the system temp dir.
pub(crate) fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "zonegate-gw-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The test model: `gateway` lines (indented 6) are added to the gateway block, `rules` lines
/// (indented 6) replace the default rules.
pub(crate) fn model(
    upstream: SocketAddr,
    audit: &Path,
    gateway: &str,
    rules: Option<&str>,
) -> String {
    let default_rules = "      - id: historian-read
        from: [HIST]
        functions: [read]
        holding: 0-199
        input: 0-99
      - id: ews-setpoints
        from: [EWS]
        functions: [write_single_register, write_multiple_registers]
        holding: 100-109
        values: {min: 180, max: 240}
        rate: 5/s
";
    format!(
        "facility: test
zones:
  - zone_id: OPS
    assets:
      - id: HIST
        address: {HISTORIAN}
      - id: EWS
        address: {EWS}
  - zone_id: CTRL
    assets: [\"the device\"]
conduits:
  - conduit_id: C1
    connects: [OPS, CTRL]
    gateway:
      listen: 127.0.0.1:0
      upstream: tcp://{upstream}
      request_timeout: 1s
{gateway}    rules:
{rules}audit:
  path: {audit}
  sync: writes
",
        rules = rules.unwrap_or(default_rules),
        audit = audit.display()
    )
}

/// A simulated device, a gateway in front of it, and where things are.
pub(crate) struct Rig {
    pub(crate) sim: Sim,
    pub(crate) gateway: Gateway,
    pub(crate) addr: SocketAddr,
    pub(crate) dir: PathBuf,
    pub(crate) model_path: PathBuf,
    pub(crate) audit: PathBuf,
}

impl Rig {
    /// Starts the HVAC sim and a gateway with [`model`] (`gateway` extra lines, optional rules).
    pub(crate) async fn start(gateway_lines: &str, rules: Option<&str>) -> Self {
        let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
            .await
            .unwrap();
        Self::start_with_upstream(sim, gateway_lines, rules).await
    }

    /// Like [`Rig::start`] with a given sim.
    pub(crate) async fn start_with_upstream(
        sim: Sim,
        gateway_lines: &str,
        rules: Option<&str>,
    ) -> Self {
        let upstream = sim.local_addr();
        Self::start_at(sim, upstream, gateway_lines, rules).await
    }

    /// A gateway whose upstream is `upstream` (a sim still runs for the device memory).
    pub(crate) async fn start_at(
        sim: Sim,
        upstream: SocketAddr,
        gateway_lines: &str,
        rules: Option<&str>,
    ) -> Self {
        Self::launch(sim, upstream, gateway_lines, rules, "", None).await
    }

    /// Like [`Rig::launch`] (default gateway and rules) with a storage factory that must learn
    /// the audit path first: `hook` gets it before the gateway starts.
    pub(crate) async fn launch_with_path_hook(
        sim: Sim,
        upstream: SocketAddr,
        audit_lines: &str,
        storage: AuditStorageFactory,
        hook: impl FnOnce(&Path),
    ) -> Self {
        Self::launch_inner(sim, upstream, "", None, audit_lines, Some(storage), hook).await
    }

    /// The general form: `audit_lines` (indented 2) are added to the audit section, `storage`
    /// replaces the audit file's byte sink.
    pub(crate) async fn launch(
        sim: Sim,
        upstream: SocketAddr,
        gateway_lines: &str,
        rules: Option<&str>,
        audit_lines: &str,
        storage: Option<AuditStorageFactory>,
    ) -> Self {
        Self::launch_inner(
            sim,
            upstream,
            gateway_lines,
            rules,
            audit_lines,
            storage,
            |_| {},
        )
        .await
    }

    /// Everything at once: gateway lines, rules, audit lines, a storage factory and a hook
    /// that learns the audit path before the gateway starts.
    pub(crate) async fn launch_inner(
        sim: Sim,
        upstream: SocketAddr,
        gateway_lines: &str,
        rules: Option<&str>,
        audit_lines: &str,
        storage: Option<AuditStorageFactory>,
        hook: impl FnOnce(&Path),
    ) -> Self {
        Self::launch_all(
            sim,
            upstream,
            gateway_lines,
            rules,
            audit_lines,
            storage,
            hook,
            |_| {},
        )
        .await
    }

    /// A gateway whose upstream is `upstream`, with `drain` as its shutdown drain timeout.
    pub(crate) async fn start_draining(sim: Sim, upstream: SocketAddr, drain: Duration) -> Self {
        Self::launch_all(
            sim,
            upstream,
            "",
            None,
            "",
            None,
            |_| {},
            move |o| {
                o.drain_timeout = drain;
            },
        )
        .await
    }

    /// Like [`Rig::start_at`], with the sessions on `threads` session threads of their own
    /// (`zonegate run`'s default) instead of the test's runtime.
    pub(crate) async fn start_at_threads(
        sim: Sim,
        upstream: SocketAddr,
        gateway_lines: &str,
        threads: usize,
    ) -> Self {
        Self::launch_all(
            sim,
            upstream,
            gateway_lines,
            None,
            "",
            None,
            |_| {},
            move |o| {
                o.session_threads = threads;
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn launch_all(
        sim: Sim,
        upstream: SocketAddr,
        gateway_lines: &str,
        rules: Option<&str>,
        audit_lines: &str,
        storage: Option<AuditStorageFactory>,
        hook: impl FnOnce(&Path),
        tune: impl FnOnce(&mut GatewayOptions),
    ) -> Self {
        let dir = temp_dir();
        let audit = dir.join("audit.log");
        hook(&audit);
        let model_path = dir.join("model.yaml");
        let text = model(upstream, &audit, gateway_lines, rules) + audit_lines;
        std::fs::write(&model_path, text).unwrap();
        let mut options = GatewayOptions {
            drain_timeout: Duration::from_secs(2),
            watch_interval: Duration::from_millis(50),
            audit_storage: storage,
            // Some test devices accept exactly one connection: the start-up probe would take
            // it (the probe has its own test, probe.rs).
            probe_upstreams: false,
            ..GatewayOptions::default()
        };
        tune(&mut options);
        let gateway = match Gateway::start_file(&model_path, options).await {
            Ok(g) => g,
            Err(e) => panic!("gateway did not start: {e}"),
        };
        let addr = gateway.listeners()[0].addr;
        Self {
            sim,
            gateway,
            addr,
            dir,
            model_path,
            audit,
        }
    }

    /// Connects a client from `source` (a 127.0.0.x address).
    pub(crate) async fn client(&self, source: &str) -> Client {
        Client::connect(self.addr, source).await
    }

    /// The audit records written so far (waits until `pred` holds or 5 s pass).
    pub(crate) async fn events_until(&self, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let mut last = Vec::new();
        for _ in 0..100 {
            last = read_events(&self.audit);
            if pred(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    }

    /// Shuts the gateway and the sim down.
    pub(crate) async fn stop(self) {
        self.gateway.shutdown().await;
        self.sim.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parses every complete line of an audit log.
pub(crate) fn read_events(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .collect()
}

/// A raw Modbus TCP client.
pub(crate) struct Client {
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
    next_tid: u16,
}

impl Client {
    /// Connects to `addr` from `source`.
    pub(crate) async fn connect(addr: SocketAddr, source: &str) -> Self {
        let ip: IpAddr = source.parse().unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
            next_tid: 1,
        }
    }

    /// A client on a stream connected some other way.
    pub(crate) fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            next_tid: 1,
        }
    }

    /// Encodes a request as an ADU with a new transaction id; returns (tid, bytes).
    pub(crate) fn adu(&mut self, unit: u8, request: &Request<'_>) -> (u16, Vec<u8>) {
        let mut pdu = [0u8; 253];
        let n = request.encode(&mut pdu).unwrap();
        self.raw_adu(unit, &pdu[..n])
    }

    /// An ADU around raw PDU bytes with a new transaction id.
    pub(crate) fn raw_adu(&mut self, unit: u8, pdu: &[u8]) -> (u16, Vec<u8>) {
        let tid = self.next_tid;
        self.next_tid = self.next_tid.wrapping_add(1);
        let mut out = [0u8; 260];
        let n = encode_adu(tid, UnitId::new(unit), pdu, &mut out).unwrap();
        (tid, out[..n].to_vec())
    }

    /// Sends raw bytes.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one ADU: Some((tid, unit, pdu)), or None on timeout or EOF.
    pub(crate) async fn recv_within(&mut self, limit: Duration) -> Option<(u16, u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(adu)) = decode_adu(&self.buf) {
                let out = (
                    adu.header.transaction_id,
                    adu.header.unit_id.get(),
                    adu.pdu.to_vec(),
                );
                let n = adu.wire_len();
                self.buf.drain(..n);
                return Some(out);
            }
            let mut chunk = [0u8; 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends one request and returns the response PDU (panics on timeout or tid mismatch).
    pub(crate) async fn call(&mut self, unit: u8, request: &Request<'_>) -> Vec<u8> {
        let (tid, bytes) = self.adu(unit, request);
        self.send(&bytes).await;
        let (rtid, runit, pdu) = self.recv_within(WAIT).await.expect("no answer");
        assert_eq!(rtid, tid, "transaction id");
        assert_eq!(runit, unit, "unit id");
        pdu
    }

    /// Sends a raw PDU and returns the response PDU.
    pub(crate) async fn call_raw(&mut self, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let (tid, bytes) = self.raw_adu(unit, pdu);
        self.send(&bytes).await;
        let (rtid, _, pdu) = self.recv_within(WAIT).await.expect("no answer");
        assert_eq!(rtid, tid, "transaction id");
        pdu
    }

    /// True when the peer closed the connection within `limit`.
    pub(crate) async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(limit, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

/// FC 3 read of holding registers.
pub(crate) fn read_holding(start: u16, count: u16) -> Request<'static> {
    Request::ReadHoldingRegisters(zonegate_modbus::AddressRange::new(start, count).unwrap())
}

/// FC 4 read of input registers.
pub(crate) fn read_input(start: u16, count: u16) -> Request<'static> {
    Request::ReadInputRegisters(zonegate_modbus::AddressRange::new(start, count).unwrap())
}

/// FC 6 write.
pub(crate) fn write_one(address: u16, value: u16) -> Request<'static> {
    Request::WriteSingleRegister { address, value }
}

/// The exception code of a response PDU, if it is an exception.
pub(crate) fn exception_of(pdu: &[u8]) -> Option<u8> {
    (pdu.len() == 2 && pdu[0] & 0x80 != 0).then_some(pdu[1])
}

/// The register values of an FC 3/4 response.
pub(crate) fn registers_of(pdu: &[u8]) -> Vec<u16> {
    assert!(pdu[0] & 0x80 == 0, "exception {pdu:02x?}");
    pdu[2..]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// A TCP relay in front of a device that counts the connections open through it at once.
pub(crate) struct CountingProxy {
    pub(crate) addr: SocketAddr,
    /// Connections open right now, and the most ever open at once.
    pub(crate) open: std::sync::Arc<AtomicUsize>,
    pub(crate) most: std::sync::Arc<AtomicUsize>,
    /// Connections accepted in all.
    pub(crate) accepted: std::sync::Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Relays every connection to `target` (at most `limit` connections in the proxy's life).
    pub(crate) async fn start(target: SocketAddr, limit: usize) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let open = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::new(AtomicUsize::new(0));
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let (o, m, a) = (open.clone(), most.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            for _ in 0..limit {
                let Ok((mut inbound, _)) = l.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = outbound.set_nodelay(true);
                        let _ = inbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            open,
            most,
            accepted,
            task,
        }
    }

    /// Stops accepting (relays already open run until their peers close).
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// The real audit file, with a switch that makes every operation fail like a full disk.
pub(crate) struct Faulty {
    pub(crate) inner: zonegate_audit::FileStorage,
    pub(crate) failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Faulty {
    fn check(&self) -> std::io::Result<()> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err(std::io::Error::other("no space left on device (simulated)"))
        } else {
            Ok(())
        }
    }
}

impl zonegate_audit::Storage for Faulty {
    fn open(&mut self) -> std::io::Result<u64> {
        self.check()?;
        self.inner.open()
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write_all(buf)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len)
    }
    fn can_rotate(&self) -> bool {
        self.inner.can_rotate()
    }
    fn rotate(&mut self) -> std::io::Result<()> {
        self.check()?;
        self.inner.rotate()
    }
}
