//! Modbus RTU bus settings: the `serial:` block of a gateway whose upstream is a bus
//! (`rtu:///dev/ttyX` or `rtu+tcp://host:port`), and the line timings the spec derives from the
//! line settings.
//!
//! Spec: Modbus over Serial Line V1.02 §2.5.1.1 (t1.5 and t3.5 in characters; above 19200 baud
//! fixed at 750 µs and 1.750 ms) and §2.4.1 (after a broadcast the master waits a
//! "turnaround delay" before the next request).
//!
//! ```yaml
//! gateway:
//!   upstream: rtu:///dev/ttyUSB0?baud=19200&parity=even
//!   serial:
//!     rs485: true          # Linux RS-485 direction control (TIOCSRS485)
//!     echo: false          # a 2-wire adapter that echoes what the gateway sends
//!     retries: 0           # resends after no (valid) answer; never a write unless retry_writes
//!     retry_writes: false
//!     turnaround: 100ms    # pause after a broadcast
//!     queue_timeout: 5s    # a request waiting longer for the bus gets 0x0B
//!     max_queue_per_client: 8   # beyond it: 0x06
//!     char_timeout: 20ms   # a frame with a gap this long is torn (default: see below)
//! ```
//!
//! Every key is checked where it is read: a bad value names the file, line and key.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::decode::{parsed, uint, Cx, Fields};
use crate::model::Parity;
use crate::syntax;
use crate::yaml::Node;

/// The bus options of a gateway (`serial:` block), with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SerialOptions {
    /// Switch the transceiver with the kernel's RS-485 mode (TIOCSRS485) when the line opens.
    pub rs485: bool,
    /// The adapter echoes every frame the gateway sends: read it back and drop it.
    pub echo: bool,
    /// Resends after a missing, torn or corrupt answer (0..=5).
    pub retries: u8,
    /// Retry writes too (a write the device did execute would run twice).
    pub retry_writes: bool,
    /// Pause after a broadcast before the next frame.
    pub turnaround: Duration,
    /// A request still waiting for the bus after this long gets 0x0B.
    pub queue_timeout: Duration,
    /// Requests of one client connection waiting for the bus at once; beyond: 0x06.
    pub max_queue_per_client: usize,
    /// A frame whose bytes stop for this long is torn. `None`: the spec's t1.5, but at least
    /// [`SerialOptions::MIN_DEFAULT_CHAR_TIMEOUT`], because USB adapters and ptys deliver a
    /// frame in bursts (an FTDI chip's latency timer alone is 16 ms).
    pub char_timeout: Option<Duration>,
    /// 1-based line of the `serial:` block (0 when absent).
    pub line: u32,
}

impl SerialOptions {
    /// Default `turnaround` (the spec suggests 100-200 ms).
    pub const DEFAULT_TURNAROUND: Duration = Duration::from_millis(100);
    /// Default `queue_timeout`.
    pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default `max_queue_per_client`.
    pub const DEFAULT_MAX_QUEUE_PER_CLIENT: usize = 8;
    /// The floor of the default inter-character timeout.
    pub const MIN_DEFAULT_CHAR_TIMEOUT: Duration = Duration::from_millis(20);
    /// Most `retries`.
    pub const MAX_RETRIES: u8 = 5;

    /// The inter-character timeout that applies on a line with `timing`.
    pub fn char_timeout_for(&self, timing: &LineTiming) -> Duration {
        self.char_timeout
            .unwrap_or_else(|| timing.t1_5.max(Self::MIN_DEFAULT_CHAR_TIMEOUT))
    }
}

impl Default for SerialOptions {
    fn default() -> Self {
        Self {
            rs485: false,
            echo: false,
            retries: 0,
            retry_writes: false,
            turnaround: Self::DEFAULT_TURNAROUND,
            queue_timeout: Self::DEFAULT_QUEUE_TIMEOUT,
            max_queue_per_client: Self::DEFAULT_MAX_QUEUE_PER_CLIENT,
            char_timeout: None,
            line: 0,
        }
    }
}

/// The time of one character and the spec's silent intervals on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTiming {
    /// Bits per character: start + data + parity + stop.
    pub bits: u32,
    /// One character on the wire.
    pub char_time: Duration,
    /// t1.5: the longest gap allowed inside a frame.
    pub t1_5: Duration,
    /// t3.5: the silence that separates frames.
    pub t3_5: Duration,
}

impl LineTiming {
    /// The timings of a line; above 19200 baud the spec's fixed 750 µs and 1.750 ms.
    pub fn new(baud: u32, parity: Parity, data_bits: u8, stop_bits: u8) -> Self {
        let bits =
            1 + u32::from(data_bits) + u32::from(parity != Parity::None) + u32::from(stop_bits);
        let baud = u64::from(baud.max(1));
        // Nanoseconds per character: bits * 1e9 / baud.
        let char_ns = u64::from(bits) * 1_000_000_000 / baud;
        let (t1_5, t3_5) = if baud > 19_200 {
            (Duration::from_micros(750), Duration::from_micros(1_750))
        } else {
            (
                Duration::from_nanos(char_ns * 3 / 2),
                Duration::from_nanos(char_ns * 7 / 2),
            )
        };
        Self {
            bits,
            char_time: Duration::from_nanos(char_ns),
            t1_5,
            t3_5,
        }
    }

    /// How long `chars` characters take on the wire.
    pub fn chars(&self, chars: usize) -> Duration {
        self.char_time
            .saturating_mul(u32::try_from(chars).unwrap_or(u32::MAX))
    }
}

/// A serial line the gateway listens on as a slave: `listen: rtu:///dev/ttyY?baud=..&parity=..`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SerialLine {
    /// Serial device path.
    pub path: PathBuf,
    /// Baud rate.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Data bits, 7 or 8.
    pub data_bits: u8,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

impl SerialLine {
    /// `rtu:///dev/ttyY?baud=..&parity=..&data_bits=..&stop_bits=..`.
    pub fn url(&self) -> String {
        format!(
            "rtu://{}?baud={}&parity={}&data_bits={}&stop_bits={}",
            self.path.display(),
            self.baud,
            self.parity.as_str(),
            self.data_bits,
            self.stop_bits
        )
    }
}

/// The source identity of a request that arrived on the serial line `path` (a serial listener):
/// an address in the IPv6 discard prefix 100::/64 (RFC 6666), derived from the path. No packet
/// from a network can carry it (the prefix is never routed and a TCP peer never has it), so a
/// rule whose `from:` names a zone with `serial: [path]` matches requests from that line, and
/// from nothing else. FNV-1a of the path gives the interface id.
pub fn line_source(path: &Path) -> IpAddr {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let w = |i: u32| u16::try_from((h >> (16 * i)) & 0xFFFF).unwrap_or(0);
    IpAddr::V6(Ipv6Addr::new(0x0100, 0, 0, 0, w(3), w(2), w(1), w(0)))
}

fn flag(cx: &mut Cx, n: &Node, p: &str) -> Option<bool> {
    parsed(cx, n, p, |s| match s.trim() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        other => Err(format!("`{other}`: write true or false")),
    })
}

fn duration(cx: &mut Cx, n: &Node, p: &str, allow_zero: bool) -> Option<Duration> {
    let d = parsed(cx, n, p, syntax::parse_duration)?;
    if d.is_zero() && !allow_zero {
        cx.error(n, p, "a duration of 0 is not allowed");
        return None;
    }
    if d > Duration::from_secs(3600) {
        cx.error(n, p, "more than an hour is not a bus timing");
        return None;
    }
    Some(d)
}

/// Decodes a `serial:` block.
pub(crate) fn decode_serial(cx: &mut Cx, n: &Node, p: &str) -> Option<SerialOptions> {
    let mut f = Fields::open(cx, n, p, "a serial block")?;
    let d = SerialOptions::default();
    let rs485 = f.opt(cx, "rs485", flag).unwrap_or(d.rs485);
    let echo = f.opt(cx, "echo", flag).unwrap_or(d.echo);
    let retries = f
        .opt(cx, "retries", |cx, n, p| {
            uint(cx, n, p, u64::from(SerialOptions::MAX_RETRIES))
        })
        .and_then(|v| u8::try_from(v).ok())
        .unwrap_or(d.retries);
    let retry_writes = f.opt(cx, "retry_writes", flag).unwrap_or(d.retry_writes);
    let turnaround = f
        .opt(cx, "turnaround", |cx, n, p| duration(cx, n, p, true))
        .unwrap_or(d.turnaround);
    let queue_timeout = f
        .opt(cx, "queue_timeout", |cx, n, p| duration(cx, n, p, false))
        .unwrap_or(d.queue_timeout);
    let max_queue_per_client = f
        .opt(cx, "max_queue_per_client", |cx, n, p| {
            let v = uint(cx, n, p, 1024)?;
            if v == 0 {
                cx.error(n, p, "must be at least 1");
                return None;
            }
            usize::try_from(v).ok()
        })
        .unwrap_or(d.max_queue_per_client);
    let char_timeout = f.opt(cx, "char_timeout", |cx, n, p| duration(cx, n, p, false));
    f.finish(cx);
    Some(SerialOptions {
        rs485,
        echo,
        retries,
        retry_writes,
        turnaround,
        queue_timeout,
        max_queue_per_client,
        char_timeout,
        line: n.line,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::load_str;

    fn gateway(upstream: &str, serial: &str) -> Result<crate::GatewaySettings, crate::LoadErrors> {
        let text = format!(
            "conduits:\n  - conduit_id: C1\n    gateway:\n      listen: 127.0.0.1:5020\n      upstream: {upstream}\n{serial}    rules: []\n"
        );
        load_str(&text, "m.yaml").map(|m| m.conduits[0].gateway.clone().unwrap())
    }

    #[test]
    fn timings_follow_the_spec() {
        // 19200 8E1: 11 bits = 572.9 µs a character, t3.5 = 2.005 ms.
        let t = LineTiming::new(19_200, Parity::Even, 8, 1);
        assert_eq!(t.bits, 11);
        assert_eq!(t.char_time.as_micros(), 572);
        assert_eq!(t.t3_5.as_micros(), 2_005);
        assert_eq!(t.t1_5.as_micros(), 859);
        // 9600 8N2 is 11 bits too: t3.5 = 4.010 ms.
        let t = LineTiming::new(9_600, Parity::None, 8, 2);
        assert_eq!(t.t3_5.as_micros(), 4_010);
        // Above 19200: fixed.
        let t = LineTiming::new(115_200, Parity::None, 8, 1);
        assert_eq!(t.t3_5, Duration::from_micros(1_750));
        assert_eq!(t.t1_5, Duration::from_micros(750));
        assert_eq!(
            SerialOptions::default().char_timeout_for(&t),
            SerialOptions::MIN_DEFAULT_CHAR_TIMEOUT
        );
    }

    #[test]
    fn a_serial_listener_and_its_zone_line_are_a_rule_source() {
        let text = "zones:
  - zone_id: PANEL
    serial: [/dev/ttyS3]
  - zone_id: FIELD
    assets: [plc]
conduits:
  - conduit_id: C1
    connects: [PANEL, FIELD]
    gateway:
      listen: rtu:///dev/ttyS3?baud=9600&parity=none
      upstream: tcp://10.0.0.1:502
    rules:
      - id: panel-read
        from: [PANEL]
        functions: [read_holding_registers]
        holding: 0-9
";
        let model = load_str(text, "m.yaml").unwrap();
        let g = model.conduits[0].gateway.clone().unwrap();
        let line = g.listen_serial.unwrap();
        assert_eq!(line.baud, 9600);
        assert_eq!(
            line.url(),
            "rtu:///dev/ttyS3?baud=9600&parity=none&data_bits=8&stop_bits=1"
        );
        let src = line_source(Path::new("/dev/ttyS3"));
        assert_eq!(g.listen, std::net::SocketAddr::new(src, 0));
        // In the discard prefix 100::/64, and one per line.
        assert!(matches!(src, IpAddr::V6(a) if a.segments()[..4] == [0x100, 0, 0, 0]));
        assert_ne!(src, line_source(Path::new("/dev/ttyS4")));
        let policy = crate::Policy::compile(&model).unwrap();
        let c = &policy.conduits()[0];
        assert!(c.may_match_source(src));
        assert!(!c.may_match_source(line_source(Path::new("/dev/ttyS4"))));
        assert!(!c.may_match_source("10.0.0.9".parse().unwrap()));
        // Two conduits listening on one line: refused (one line, one slave).
        let twice = text.replace(
            "conduits:\n",
            "conduits:\n  - conduit_id: C0\n    connects: [PANEL, FIELD]\n    gateway:\n      listen: rtu:///dev/ttyS3\n      upstream: tcp://10.0.0.2:502\n    rules: []\n",
        );
        let e = crate::Policy::compile(&load_str(&twice, "m.yaml").unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .contains("rtu:///dev/ttyS3 is already the listen address"),
            "{e}"
        );
    }

    #[test]
    fn serial_block_keys_and_errors() {
        let g = gateway(
            "rtu:///dev/ttyS1?parity=none",
            "      serial:\n        rs485: true\n        echo: yes\n        retries: 2\n        turnaround: 50ms\n        queue_timeout: 1s\n        max_queue_per_client: 3\n        char_timeout: 5ms\n",
        )
        .unwrap();
        let s = g.serial.unwrap();
        assert!(s.rs485 && s.echo && !s.retry_writes);
        assert_eq!(s.retries, 2);
        assert_eq!(s.turnaround, Duration::from_millis(50));
        assert_eq!(s.queue_timeout, Duration::from_secs(1));
        assert_eq!(s.max_queue_per_client, 3);
        assert_eq!(s.char_timeout, Some(Duration::from_millis(5)));
        let e = gateway("rtu:///dev/ttyS1", "      serial:\n        retries: 9\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("m.yaml") && text.contains("retries"),
            "{text}"
        );
        let e = gateway("rtu:///dev/ttyS1", "      serial:\n        echo: maybe\n").unwrap_err();
        assert!(e.to_string().contains("echo"), "{e}");
        let e = gateway("rtu:///dev/ttyS1", "      serial:\n        baud: 9600\n").unwrap_err();
        assert!(e.to_string().contains("baud"), "{e}");
        // A serial block on a TCP upstream is a mistake, not a no-op.
        let e = gateway("tcp://10.0.0.1:502", "      serial:\n        retries: 1\n").unwrap_err();
        assert!(e.to_string().contains("serial"), "{e}");
    }
}
