//! The conduit's connections to its device: a pool with a limit (`max_upstream_connections`),
//! lent to client sessions while they have requests at the device.
//!
//! Many PLCs accept only 4-16 Modbus/TCP connections; one device connection per client session
//! would let a crowd of clients (or one host opening many) take them all. A session borrows a
//! connection when it forwards a request and gives it back once every answer is in. When all
//! are lent, the session waits (at most `request_timeout`, then 0x0B) in one of two queues
//! (gate.rs): a client waiting for its one answer goes before clients with a pipeline queued,
//! and while anyone waits a session gives its connection back between two requests. A
//! connection that broke is never given back: the session drops it and the next borrow opens
//! a new one.
//!
//! The cost on the hot path is a permit (one short lock when one is free) and two short
//! `Mutex` sections (pop, push of an idle connection); nothing is allocated per request.
//!
//! A connection remembers the transaction ids of its requests answered 0x0B: the device may
//! still be working on them, so it is not sent the next request until the late answer came or
//! a quiet period passed ([`DeviceConn::busy_until`]).
//!
//! A `tls://` upstream is the same pool with a TLS connector: after the TCP connect, the
//! handshake (bounded by `connect_timeout` too) verifies the device certificate against `ca`
//! and `server_name` and presents the gateway's `cert`. A failed handshake answers 0x0A, like
//! an unreachable device, and says why ([`Unavailable::Handshake`]). TLS connections are
//! reused like TCP ones.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::io::{DeviceStream, Stream};
use crate::state::Settings;

mod gate;
mod shared;

pub(crate) use gate::Class;
use gate::{Gate, Permit};
use shared::SharedConn;
pub(crate) use shared::SharedPort;

/// How long the pool waits before it tries to connect to a device that just refused it.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// Why no connection could be lent.
#[derive(Debug)]
pub(crate) enum Unavailable {
    /// Every connection stayed lent for `request_timeout` (answered 0x0B).
    Busy,
    /// The device cannot be reached (answered 0x0A).
    Unreachable,
    /// The TLS handshake with the device failed, or its certificate did not verify (0x0A):
    /// why, for the record.
    Handshake(String),
}

/// One open connection to the device.
pub(crate) struct DeviceConn {
    pub(crate) stream: DeviceStream,
    /// The `host:port` it was opened to (a reload may point the conduit elsewhere).
    target: Arc<str>,
    /// The TLS configuration it was verified under: a reload makes a new one (a new CA, a
    /// new `server_name`), and a connection verified under the old one is not reused.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The session thread that opened it (workers.rs).
    home: usize,
    next_utid: u16,
    /// Transaction ids of the last requests answered 0x0B (a late answer from an unsolicited
    /// one).
    expired: [Option<u16>; 8],
    expired_pos: usize,
    /// Late answers still owed, and until when the connection waits for them.
    late_owed: u32,
    quiet_until: Option<Instant>,
}

impl DeviceConn {
    fn new(stream: DeviceStream, target: Arc<str>, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            stream,
            target,
            tls,
            home: crate::workers::home(),
            next_utid: 1,
            expired: [None; 8],
            expired_pos: 0,
            late_owed: 0,
            quiet_until: None,
        }
    }

    /// The transaction id of the next request sent on this connection.
    pub(crate) fn next_utid(&mut self) -> u16 {
        let utid = self.next_utid;
        self.next_utid = self.next_utid.wrapping_add(1);
        utid
    }

    /// Request `utid` was answered 0x0B: its answer may still come until `quiet_until`.
    pub(crate) fn expired(&mut self, utid: u16, quiet_until: Instant) {
        self.expired[self.expired_pos % self.expired.len()] = Some(utid);
        self.expired_pos = self.expired_pos.wrapping_add(1);
        self.late_owed = self.late_owed.saturating_add(1);
        self.quiet_until = Some(quiet_until);
    }

    /// Whether `utid` is a request already answered 0x0B (then its late answer is settled).
    pub(crate) fn take_late(&mut self, utid: u16) -> bool {
        let Some(i) = self.expired.iter().position(|e| *e == Some(utid)) else {
            return false;
        };
        self.expired[i] = None;
        self.late_owed = self.late_owed.saturating_sub(1);
        if self.late_owed == 0 {
            self.quiet_until = None;
        }
        true
    }

    /// While the device may still be working on an expired request: until when to wait
    /// before sending it anything else.
    pub(crate) fn busy_until(&self) -> Option<Instant> {
        self.quiet_until.filter(|_| self.late_owed > 0)
    }

    /// The quiet period passed: whatever still comes is unsolicited.
    pub(crate) fn quiet(&mut self) {
        self.late_owed = 0;
        self.quiet_until = None;
    }

    /// True when an idle connection still looks usable: no EOF, no stray bytes. Costs no
    /// system call unless the socket became readable while it was idle.
    fn still_usable(&mut self) -> bool {
        self.stream.still_usable()
    }
}

/// One session counted in [`UpstreamPool::contended`] while it waits (a cancelled wait, a
/// timeout or a session that ended, uncounts itself).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection lent to a session; give it back with [`UpstreamPool::give_back`].
pub(crate) struct Link {
    pub(crate) conn: DeviceConn,
    permit: Permit,
}

/// Whether a connection verified under `tls` (`None`: plaintext) may serve `settings` now: a
/// reload makes a new TLS configuration (a new CA, a new `server_name`), and a connection
/// verified under the old one is not reused.
fn same_tls(tls: Option<&Arc<rustls::ClientConfig>>, settings: &Settings) -> bool {
    match (tls, &settings.upstream.tls) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, &b.config),
        _ => false,
    }
}

impl Link {
    /// Whether it is a port of a shared device connection (shared.rs).
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.conn.stream, Stream::Shared(_))
    }

    /// Whether a shared port still suits the conduit's settings (same device, same TLS
    /// configuration, still shared) after a reload.
    pub(crate) fn suits(&self, settings: &Settings) -> bool {
        self.conn.target == settings.upstream.label
            && same_tls(self.conn.tls.as_ref(), settings)
            && (settings.max_upstream_in_flight > 1) == self.is_shared()
    }
}

/// The pool of one conduit (see the module docs).
pub(crate) struct UpstreamPool {
    permits: Arc<Gate>,
    /// The limit the permits were sized for (follows `max_upstream_connections` on reload).
    size: AtomicUsize,
    /// Serializes resizing (rare: the first borrow and reloads that change the limit).
    resizing: Mutex<()>,
    /// Permits to retire as lent connections come back (a reload lowered the limit).
    shrink: AtomicUsize,
    idle: Mutex<Vec<DeviceConn>>,
    /// The shared device connections (`max_upstream_in_flight` above 1; shared.rs).
    shared: Mutex<Vec<SharedConn>>,
    /// Held while a shared connection is being opened, so that a crowd of sessions arriving
    /// together opens one, not one each.
    opening: tokio::sync::Mutex<()>,
    /// Sessions waiting for a connection to come back ([`UpstreamPool::contended`]).
    waiting: AtomicUsize,
    /// When connecting last failed (reconnect backoff, and one warning per outage).
    failed_at: Mutex<Option<Instant>>,
    /// Where failed connects are counted (set once by the server; metrics.rs).
    pub(crate) metrics: std::sync::OnceLock<Arc<crate::metrics::Metrics>>,
}

impl Default for UpstreamPool {
    /// An empty pool; the first borrow sizes it to `max_upstream_connections`.
    fn default() -> Self {
        Self {
            permits: Arc::new(Gate::default()),
            size: AtomicUsize::new(0),
            resizing: Mutex::new(()),
            shrink: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(Vec::new()),
            opening: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            failed_at: Mutex::new(None),
            metrics: std::sync::OnceLock::new(),
        }
    }
}

impl UpstreamPool {
    /// Lends a connection: an idle one, or a new one while under the limit; waits at most
    /// `request_timeout` for one to come back when all are lent, in the queue of `class`.
    pub(crate) async fn borrow(
        &self,
        settings: &Settings,
        conduit: &str,
        recorder: &crate::record::Recorder,
        class: Class,
    ) -> Result<Link, Unavailable> {
        // A bus port is no device connection: the bus queues fairly behind it, so every
        // session may hold one (the line's limit is one transaction at a time).
        let bus = crate::bus::PortConfig::new(settings, conduit, recorder).map(Arc::new);
        // Shared device connections: every session may hold a port too; the connections'
        // number and their requests in flight are bounded in shared.rs.
        let shared = bus.is_none() && settings.max_upstream_in_flight > 1;
        self.resize(if bus.is_some() || shared {
            settings.max_connections
        } else {
            settings.max_upstream_connections
        });
        let permit = match self.permits.try_acquire(class) {
            Some(p) => p,
            None => {
                let _counted = Waiting::count(&self.waiting);
                match self.permits.acquire(class, settings.request_timeout).await {
                    Some(p) => p,
                    None => return Err(Unavailable::Busy),
                }
            }
        };
        let target = &settings.upstream.label;
        while let Some(mut conn) = self.pop_idle() {
            // A connection to the old target after a reload, or one the device closed while
            // it was idle, is dropped here rather than failing a request.
            let same_tls = same_tls(conn.tls.as_ref(), settings);
            let same_kind = matches!(conn.stream, Stream::Shared(_)) == shared;
            if conn.target == *target && same_tls && same_kind && conn.still_usable() {
                match (&mut conn.stream, &bus) {
                    (Stream::Bus(port), Some(config)) => port.configure(Arc::clone(config)),
                    (Stream::Shared(port), _) => {
                        port.configure(settings.max_upstream_in_flight, settings.request_timeout)
                    }
                    _ => {}
                }
                return Ok(Link { conn, permit });
            }
        }
        let stream = match bus {
            Some(config) => {
                let line = crate::bus::Bus::for_target(&config.target);
                Stream::Bus(Box::new(line.open_port(config)))
            }
            None if shared => self.shared_port(settings, conduit).await?,
            None => self.connect(settings, conduit).await?,
        };
        Ok(Link {
            conn: DeviceConn::new(
                stream,
                Arc::clone(target),
                settings
                    .upstream
                    .tls
                    .as_ref()
                    .map(|t| Arc::clone(&t.config)),
            ),
            permit,
        })
    }

    /// A port on a shared device connection: on the least used open one, or on a new one
    /// while every open one has as many ports as requests it may have in flight (and the
    /// conduit is under `max_upstream_connections`).
    async fn shared_port(
        &self,
        settings: &Settings,
        conduit: &str,
    ) -> Result<DeviceStream, Unavailable> {
        let target = &settings.upstream.label;
        let tls = settings.upstream.tls.as_ref().map(|t| &t.config);
        let in_flight = settings.max_upstream_in_flight;
        let suits = |c: &SharedConn| c.target == *target && same_tls(c.tls.as_ref(), settings);
        let here = crate::workers::home();
        let pick = || {
            let mut conns = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            // Ended ones, and those to an old target after a reload, go (their task ends
            // with their last port).
            conns.retain(|c| c.is_open() && suits(c));
            // One of this session thread's own connections with room; a new one while under
            // the limit; at the limit, the least loaded of any thread's.
            let own = conns
                .iter()
                .filter(|c| c.home == here)
                .min_by_key(|c| c.ports());
            if let Some(own) = own.filter(|c| c.ports() < in_flight) {
                return own.open_port(in_flight, settings.request_timeout);
            }
            if conns.len() >= settings.max_upstream_connections {
                let least = conns.iter().min_by_key(|c| c.ports())?;
                return least.open_port(in_flight, settings.request_timeout);
            }
            None
        };
        if let Some(port) = pick() {
            return Ok(Stream::Shared(Box::new(port)));
        }
        let _opening = self.opening.lock().await;
        // Another session may have opened one while this one waited.
        if let Some(port) = pick() {
            return Ok(Stream::Shared(Box::new(port)));
        }
        let stream = self.connect(settings, conduit).await?;
        let conn = SharedConn::start(
            stream,
            Arc::clone(target),
            tls.cloned(),
            Arc::from(conduit),
            settings.request_timeout,
            self.metrics.get().map(|m| &**m),
        );
        let port = conn.open_port(in_flight, settings.request_timeout);
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        // Just opened: it ends only on a failure, which the session then sees as one.
        port.map(|p| Stream::Shared(Box::new(p)))
            .ok_or(Unavailable::Unreachable)
    }

    /// Whether a borrow would have to wait for a connection to come back.
    pub(crate) fn all_lent(&self) -> bool {
        self.permits.available() == 0
    }

    /// Whether some session waits for a connection now: then a session gives its own back
    /// between two requests instead of keeping it for a whole pipeline, and borrows again
    /// behind the others (gate.rs: a client waiting for its answer first, then pipelines).
    pub(crate) fn contended(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// Takes back a connection whose answers are all in (never one that broke: drop that).
    pub(crate) fn give_back(&self, link: Link) {
        let Link { conn, permit } = link;
        let retire = self
            .shrink
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if retire {
            permit.forget();
            return;
        }
        // The connection goes back before the permit, so the waiter the permit wakes finds it.
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        drop(permit);
    }

    /// An idle connection, one opened on the caller's session thread first (workers.rs):
    /// its socket is driven by that thread's reactor.
    fn pop_idle(&self) -> Option<DeviceConn> {
        let here = crate::workers::home();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        match idle.iter().rposition(|c| c.home == here) {
            Some(at) => Some(idle.swap_remove(at)),
            None => idle.pop(),
        }
    }

    /// Follows the configured limit: adds permits, or retires them (free ones at once, lent
    /// ones as they come back).
    fn resize(&self, limit: usize) {
        if self.size.load(Ordering::Acquire) == limit {
            return;
        }
        let _guard = self.resizing.lock().unwrap_or_else(PoisonError::into_inner);
        let size = self.size.load(Ordering::Acquire);
        if limit > size {
            let mut add = limit - size;
            // Cancel retirements still owed before adding new permits.
            while add > 0
                && self
                    .shrink
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
            {
                add -= 1;
            }
            self.permits.release(add);
        } else if limit < size {
            let cut = size - limit;
            let gone = self.permits.forget_free(cut);
            self.shrink.fetch_add(cut - gone, Ordering::AcqRel);
            // Idle connections beyond the new limit are closed.
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.truncate(limit);
        }
        self.permits.size_for(limit);
        self.size.store(limit, Ordering::Release);
    }

    async fn connect(
        &self,
        settings: &Settings,
        conduit: &str,
    ) -> Result<DeviceStream, Unavailable> {
        if let Some(t) = *self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            if t.elapsed() < RECONNECT_BACKOFF {
                return Err(Unavailable::Unreachable);
            }
        }
        let target = &settings.upstream;
        let started = Instant::now();
        let connecting = TcpStream::connect((target.host.as_str(), target.port));
        let why = match tokio::time::timeout(settings.connect_timeout, connecting).await {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    debug!("cannot set TCP_NODELAY on the upstream socket: {e}");
                }
                let stream = match &target.tls {
                    None => Stream::Plain(stream),
                    Some(tls) => {
                        let left = settings.connect_timeout.saturating_sub(started.elapsed());
                        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                        let handshake = connector.connect(tls.server_name.clone(), stream);
                        match tokio::time::timeout(left, handshake).await {
                            Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                            outcome => {
                                let why = match outcome {
                                    Ok(Err(e)) => format!("TLS handshake with the device failed: {e}"),
                                    _ => format!(
                                        "TLS handshake with the device did not complete within {:?}",
                                        settings.connect_timeout
                                    ),
                                };
                                warn!(conduit, upstream = %target.label, "{why}; answering 0x0A");
                                if let Some(m) = self.metrics.get() {
                                    m.upstream_failed(conduit, false, &why, true);
                                }
                                *self
                                    .failed_at
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                                return Err(Unavailable::Handshake(why));
                            }
                        }
                    }
                };
                *self
                    .failed_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                return Ok(stream);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", settings.connect_timeout),
        };
        let mut failed = self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if failed.is_none() {
            warn!(
                conduit, upstream = %target.label,
                "device unreachable ({why}); answering 0x0A"
            );
        }
        let timed_out = why.starts_with("no answer within");
        if let Some(m) = self.metrics.get() {
            m.upstream_failed(conduit, timed_out, &why, failed.is_none());
        }
        *failed = Some(Instant::now());
        Err(Unavailable::Unreachable)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_late_answer_settles_the_busy_connection() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let stream = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let mut c = DeviceConn::new(Stream::Plain(stream), Arc::from("x"), None);
            let until = Instant::now() + Duration::from_secs(1);
            assert_eq!(c.next_utid(), 1);
            c.expired(1, until);
            assert_eq!(c.busy_until(), Some(until));
            assert!(!c.take_late(9), "not an expired id");
            assert!(c.take_late(1));
            assert_eq!(c.busy_until(), None);
            assert!(!c.take_late(1), "settled once");
            c.expired(2, until);
            c.quiet();
            assert_eq!(c.busy_until(), None);
        });
    }
}
