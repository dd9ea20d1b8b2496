//! systemd's notify protocol without libsystemd (`Type=notify`, `WatchdogSec=`).
//!
//! The service manager passes a unix datagram socket in `$NOTIFY_SOCKET` (a path, or an
//! abstract name written `@name`); the service sends newline-separated `KEY=VALUE` lines to it:
//! `READY=1` once the listeners are up, `WATCHDOG=1` at least every `$WATCHDOG_USEC`
//! microseconds (we send at half of it), `STOPPING=1` when it shuts down. Outside systemd the
//! variable is absent and every call is a no-op. See sd_notify(3) and sd_watchdog_enabled(3).

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` to `$NOTIFY_SOCKET`; `Ok(false)` when there is none (not under systemd).
pub(crate) fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    send_to(&path.to_string_lossy(), state)?;
    Ok(true)
}

/// Sends one datagram to the notify socket named `path` (`@` = Linux abstract namespace).
pub(crate) fn send_to(path: &str, state: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract notify sockets exist only on Linux",
            ));
        }
    }
    socket.send_to(state.as_bytes(), path)?;
    Ok(())
}

/// The watchdog period asked for by the service manager (`$WATCHDOG_USEC`, for this process
/// when `$WATCHDOG_PID` is set), or `None`.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    watchdog_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog at half its period from a task of the runtime: a runtime that stops
/// scheduling tasks stops the pings, and systemd restarts the service.
pub(crate) fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let period = watchdog_interval()? / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period.max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            if let Err(e) = notify("WATCHDOG=1") {
                tracing::warn!("systemd watchdog ping failed: {e}");
            }
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_a_socket_the_test_binds() {
        let dir = std::env::temp_dir().join(format!("zg-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        send_to(path.to_str().unwrap(), "READY=1\nSTATUS=listening").unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=listening");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_socket_name_is_understood() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("zonegate-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        send_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn the_watchdog_period_is_for_this_process_only() {
        assert_eq!(
            watchdog_from(Some("20000000"), None, 7),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            watchdog_from(Some("20000000"), Some("7"), 7),
            Some(Duration::from_secs(20))
        );
        assert_eq!(watchdog_from(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
    }
}
