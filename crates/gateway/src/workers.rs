//! Session threads: where the data path runs when `zonegate run --threads N` asks for them.
//!
//! Each of the N threads runs its own single-threaded tokio runtime, and the accept loops hand
//! each admitted connection to the next thread in turn, as haproxy's `nbthread` does. A
//! session then never moves: its socket, its timers and the device connections it opens are
//! driven by its own thread, and no work-stealing scheduler wakes the other core for it. The
//! device connections remember the thread that opened them ([`home`]); the pool lends a
//! session one of its own thread's first and shares one only among sessions of one thread
//! (upstream.rs), so a request and its answer cross no thread on the way through.
//!
//! What crosses threads is what already did: the conduit's policy (an `ArcSwap`), the
//! records to the audit writer's thread, the transactions to the monitor's thread, the
//! metrics. The accept loops, reloads and the admin endpoint stay on the main runtime.
//!
//! Measured (scripts/BENCH.md, "Session threads"): on the 2-core benchmark machine, 6-14 %
//! more requests per second at 16 and 64 connections than the same sessions on tokio's
//! work-stealing runtime with as many workers; p99 at 64 connections is worse (a session
//! thread the kernel preempts holds back its sessions; nothing moves them).
//!
//! Without session threads (`GatewayOptions::session_threads` 0: tests, the demo) a session
//! is a task of the runtime the gateway was started on.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::warn;

thread_local! {
    /// This thread's number: 1..=N on a session thread, 0 elsewhere.
    static HOME: Cell<usize> = const { Cell::new(0) };
}

/// The session thread the caller runs on (1..=N), or 0 off them. A device connection
/// records it when opened, and the pool prefers a session's own thread's connections.
pub(crate) fn home() -> usize {
    HOME.with(Cell::get)
}

/// The running session threads. Dropping it stops them: each runtime then drops its
/// remaining tasks (the gateway has drained its sessions before that).
pub(crate) struct SessionThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// One per thread: dropped (or sent) to end its runtime.
    stops: Vec<oneshot::Sender<()>>,
}

impl std::fmt::Debug for SessionThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionThreads")
            .field("threads", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl SessionThreads {
    /// Starts `n` (at least 1) threads, each with a single-threaded runtime.
    pub(crate) fn start(n: usize) -> io::Result<Self> {
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for number in 1..=n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("zonegate-sess-{number}"))
                .spawn(move || {
                    HOME.with(|home| home.set(number));
                    // Either a stop or the sender dropped ends it.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            stops,
        })
    }

    /// Runs the session `serve(socket)` on the next thread in turn. The socket moves to that
    /// thread's reactor; if it cannot (a socket error), the connection is closed and logged.
    pub(crate) fn spawn<F, Fut>(&self, socket: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                warn!("accepted connection lost before its session started: {e}");
                return;
            }
        };
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[at].spawn(async move {
            // Registered with the reactor of the thread that runs it.
            match TcpStream::from_std(socket) {
                Ok(socket) => serve(socket).await,
                Err(e) => warn!("accepted connection lost before its session started: {e}"),
            }
        });
    }
}

impl Drop for SessionThreads {
    fn drop(&mut self) {
        for stop in std::mem::take(&mut self.stops) {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_go_to_the_threads_in_turn_and_know_their_home() {
        let threads = SessionThreads::start(2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let homes = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut clients = Vec::new();
            for _ in 0..4 {
                clients.push(TcpStream::connect(addr).await.unwrap());
                let (socket, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                threads.spawn(socket, move |mut socket| async move {
                    // The socket works on its new thread's reactor.
                    use tokio::io::AsyncWriteExt;
                    socket.write_all(b"x").await.unwrap();
                    tx.send(home()).unwrap();
                });
            }
            let mut homes = Vec::new();
            for _ in 0..4 {
                homes.push(rx.recv().await.unwrap());
            }
            for mut c in clients {
                use tokio::io::AsyncReadExt;
                let mut b = [0u8; 1];
                c.read_exact(&mut b).await.unwrap();
                assert_eq!(&b, b"x");
            }
            homes
        });
        let mut sorted = homes.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 1, 2, 2], "{homes:?}");
        assert_eq!(home(), 0, "off the session threads");
    }
}
