//! Accepting client connections for one conduit's listener: the per-source and total
//! connection limits, and haproxy-`maxconn`-like backpressure at `max_connections` (stop
//! accepting, let the kernel backlog hold newcomers for at most `max_connections_wait`, then
//! refuse and record them), each admitted connection becoming a session task (conn.rs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;
use zonegate_audit::{Event, Kind};

use crate::conn::Session;
use crate::state::{ConduitShared, ConnectionPermit, Mode};

/// Refuses an accepted connection: closes it and records why (aggregated by the recorder per
/// source and reason, so a flood of refusals cannot flood the log). `src` is the address
/// without the port: the port of a refused connection tells nothing and would defeat the
/// aggregation.
fn refuse(
    shared: &ConduitShared,
    listener: &Arc<str>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    reason: &'static str,
    message: String,
    last_log: &mut Option<Instant>,
) {
    drop(socket);
    shared.metrics.refused(&shared.conduit, listener, reason);
    if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        warn!(conduit = %shared.conduit, %peer, "{message}");
        *last_log = Some(Instant::now());
    }
    let mut ev = Event::new(Kind::Connection);
    ev.conduit = Some(Arc::clone(&shared.conduit));
    // The address only: the record stands for every refused connection of this source in
    // the aggregation interval, whatever their ports.
    ev.src = Some(peer.ip().to_string().into());
    ev.reason = Some(reason.into());
    ev.message = Some(message);
    shared.recorder.record_denial(ev);
}

/// A connection already waiting in the listen backlog, if any (never waits).
async fn accept_now(
    listener: &TcpListener,
) -> Option<std::io::Result<(tokio::net::TcpStream, SocketAddr)>> {
    std::future::poll_fn(|cx| match listener.poll_accept(cx) {
        std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// Backpressure at `max_connections`, as haproxy's `maxconn`: while the listener is full it
/// accepts nothing, so newcomers wait in the kernel's listen backlog (their SYN is answered,
/// they are not reset) until a connection ends. When none ends within `max_connections_wait`
/// the connections then in the backlog are accepted and refused (recorded, reason
/// `max_connections`), and the wait starts again. Returns false at shutdown.
async fn wait_for_slot(
    listener: &TcpListener,
    label: &Arc<str>,
    shared: &ConduitShared,
    shutdown: &mut watch::Receiver<bool>,
    last_log: &mut Option<Instant>,
) -> bool {
    let (max, wait) = {
        let state = shared.state.load();
        (
            state.settings.max_connections,
            state.settings.max_connections_wait,
        )
    };
    shared.metrics.backlog_wait(&shared.conduit, label);
    let deadline = Instant::now() + wait;
    while shared.admitted.is_full(max) {
        tokio::select! {
            () = shared.admitted.freed.notified() => {}
            () = tokio::time::sleep_until(deadline) => {
                // Bounded so that a flood cannot keep the loop here: at most one backlog's worth.
                for _ in 0..4096 {
                    if !shared.admitted.is_full(max) {
                        break;
                    }
                    match accept_now(listener).await {
                        Some(Ok((socket, peer))) => refuse(
                            shared,
                            label,
                            socket,
                            peer,
                            "max_connections",
                            format!(
                                "refused: max_connections ({max}) open for max_connections_wait \
                                 ({wait:?})"
                            ),
                            last_log,
                        ),
                        Some(Err(_)) | None => break,
                    }
                }
                return true;
            }
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return false;
                }
            }
        }
    }
    true
}

/// Accepts clients until shutdown. In enforce mode a source no rule of the conduit names is
/// refused at once (it could only ever be denied, and must not hold a connection slot that
/// an operator needs); a monitor-mode conduit is for learning what talks to the device, so it
/// accepts every source (its requests are recorded `would_deny`). Then `max_connections`
/// (backpressure, [`wait_for_slot`]) and `max_connections_per_source` (refused) apply, in
/// every mode.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<ConduitShared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut last_refusal_log: Option<Instant> = None;
    let label: Arc<str> = listener
        .local_addr()
        .map_or_else(|_| Arc::from("unknown"), |a| Arc::from(a.to_string()));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let max = shared.state.load().settings.max_connections;
        if shared.admitted.is_full(max) {
            if !wait_for_slot(
                &listener,
                &label,
                &shared,
                &mut shutdown,
                &mut last_refusal_log,
            )
            .await
            {
                break;
            }
            continue;
        }
        tokio::select! {
            r = listener.accept() => match r {
                Ok((socket, peer)) => {
                    let state = shared.state.load();
                    if state.settings.mode == Mode::Enforce && !state.may_match_source(peer.ip()) {
                        let (reason, message) = if state.index.is_none() {
                            ("conduit_removed", "refused: the conduit is no longer in the model".to_owned())
                        } else {
                            ("no_rule_for_source", "refused: no rule of the conduit names this source".to_owned())
                        };
                        refuse(&shared, &label, socket, peer, reason, message, &mut last_refusal_log);
                        continue;
                    }
                    let admitted = ConnectionPermit::admit(
                        &shared,
                        peer.ip(),
                        state.settings.max_connections,
                        state.settings.max_connections_per_source,
                    );
                    drop(state);
                    match admitted {
                        Ok(permit) => {
                            shared.tracker.enter();
                            let open = shared.metrics.accepted(&shared.conduit, &label);
                            let session_shared = Arc::clone(&shared);
                            let serve = move |socket| async move {
                                // Held for the whole session, dropped however it ends.
                                let _permit = permit;
                                let _open = open;
                                Session::serve(socket, peer, session_shared).await;
                            };
                            match &shared.sessions {
                                Some(threads) => threads.spawn(socket, serve),
                                None => drop(tokio::spawn(serve(socket))),
                            }
                        }
                        Err(refusal) => refuse(
                            &shared,
                            &label,
                            socket,
                            peer,
                            refusal.reason(),
                            refusal.message(),
                            &mut last_refusal_log,
                        ),
                    }
                }
                Err(e) => {
                    warn!(conduit = %shared.conduit, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}
