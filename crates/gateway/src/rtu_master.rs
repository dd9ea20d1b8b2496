//! The gateway's Modbus RTU master (bus.rs) for users outside the gateway: the replication
//! transmit agent reading an `rtu://` or `rtu+tcp://` source.
//!
//! One RTU implementation: an [`RtuMaster`] is a port on the same bus task the gateway's
//! sessions use (same line registry, so a replication and a conduit naming one serial device
//! share it round robin instead of fighting over it), with the same timing, retries, fault
//! handling and outage records. It speaks MBAP like a session's port: the caller frames the
//! request and parses the answer (`zonegate-modbus`); the bus does the RTU side.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use zonegate_audit::{AuditHandle, OnFailure, SyncMode};
use zonegate_policy::{SerialOptions, Upstream};

use crate::bus::{Bus, BusTarget, Port, PortConfig};
use crate::record::Recorder;

/// A master's port on an RTU bus.
pub struct RtuMaster {
    port: Port,
    /// What the bus answers within at the latest (it answers 0x0B itself when the device
    /// does not): the caller's safety net.
    answer_within: Duration,
}

impl std::fmt::Debug for RtuMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtuMaster")
            .field("answer_within", &self.answer_within)
            .finish_non_exhaustive()
    }
}

impl RtuMaster {
    /// A port on the bus of `upstream` (`rtu://` or `rtu+tcp://`; `None` for other kinds),
    /// with the `serial:` options (`None`: their defaults). Bus faults and outages are recorded
    /// as `alert`/`connection` events with `conduit: owner` to `audit` when given. Must be
    /// called inside a tokio runtime (the bus task is spawned on first use of a line).
    pub fn open(
        upstream: &Upstream,
        options: Option<&SerialOptions>,
        owner: &str,
        request_timeout: Duration,
        connect_timeout: Duration,
        audit: Option<AuditHandle>,
    ) -> Option<Self> {
        let target = BusTarget::for_upstream(upstream, options)?;
        let o = &target.options;
        let attempts = u32::from(o.retries) + 1;
        let frames = target
            .timing
            .chars(2 * zonegate_modbus::rtu::MAX_RTU_ADU_LEN)
            + target.silence;
        let answer_within = o.queue_timeout
            + (request_timeout + frames + target.char_timeout).saturating_mul(attempts)
            + o.turnaround
            + connect_timeout
            + Duration::from_secs(1);
        let config = Arc::new(PortConfig {
            conduit: Arc::from(owner),
            label: Arc::from(upstream.to_string()),
            // The caller's chain keeps its own sync policy; bus records are never awaited.
            recorder: audit.map(|h| Recorder::new(h, SyncMode::Batch, OnFailure::Continue)),
            request_timeout,
            connect_timeout,
            target,
        });
        let bus = Bus::for_target(&config.target);
        let port = bus.open_port(config);
        Some(Self {
            port,
            answer_within,
        })
    }

    /// The longest one [`RtuMaster::exchange`] can take when the bus is working.
    pub fn answer_within(&self) -> Duration {
        self.answer_within
    }

    /// Sends one MBAP ADU and returns the bus's MBAP answer(s) read so far (at least one
    /// whole ADU unless the bus is gone: then `Err`). Answers carry the request's transaction
    /// id; the bus answers every request (0x0A line down, 0x0B no answer, 0x06 queue full).
    pub async fn exchange(&mut self, adu: &[u8]) -> io::Result<Vec<u8>> {
        self.port.write(adu)?;
        let mut buf = BytesMut::new();
        let n = self.port.read_some(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the bus task is gone",
            ));
        }
        Ok(buf.to_vec())
    }

    /// Follow-up bytes when [`RtuMaster::exchange`] returned a stale answer (of a request
    /// the caller gave up on).
    pub async fn read_more(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = BytesMut::new();
        let n = self.port.read_some(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the bus task is gone",
            ));
        }
        Ok(buf.to_vec())
    }
}
