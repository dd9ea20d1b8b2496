//! TCP reassembly per direction and MBAP framing, with bounded state.

use std::collections::HashMap;

use zonegate_modbus::{tcp, FrameError, MAX_TCP_ADU_LEN};
use zonegate_monitor::{Adu, Flow, Side};

use crate::link::{tcp_segment, Segment};

/// Out-of-order segments held per direction before the hole counts as a gap.
const MAX_HELD_SEGMENTS: usize = 64;
/// ... and bytes.
const MAX_HELD_BYTES: usize = 256 * 1024;
/// Connections tracked at once; the least recently active is closed for a new one.
const MAX_FLOWS: usize = 16_384;

/// What reassembly hands on.
#[derive(Debug)]
pub enum Event<'a> {
    /// One whole ADU.
    Adu(Adu<'a>),
    /// The direction's bytes are not Modbus/TCP here; it resynchronises at a later segment.
    FrameError {
        /// When.
        ts_us: u64,
        /// Where.
        flow: Flow,
        /// Which way.
        side: Side,
        /// What the codec said.
        error: FrameError,
    },
    /// Bytes missing from the capture in this direction; framing restarts after them.
    Gap {
        /// When.
        ts_us: u64,
        /// Where.
        flow: Flow,
        /// Which way.
        side: Side,
        /// How many bytes are missing.
        missing: u32,
    },
    /// The connection ended (FIN, RST, eviction or end of input).
    Closed(Flow),
}

/// Counters of the TCP layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// TCP segments on a Modbus port.
    pub segments: u64,
    /// Segments whose bytes were all seen before (retransmissions, duplicates).
    pub retransmitted: u64,
    /// Segments that arrived ahead of a hole and waited.
    pub out_of_order: u64,
    /// Holes given up on.
    pub gaps: u64,
    /// Bytes skipped while resynchronising after a framing error.
    pub resync_skipped_bytes: u64,
    /// Connections seen.
    pub flows: u64,
}

#[derive(Debug, Default)]
struct Direction {
    next_seq: Option<u32>,
    buf: Vec<u8>,
    held: Vec<(u32, Vec<u8>)>,
    held_bytes: usize,
    /// After a framing error: drop bytes until a segment starts with a valid header.
    resync: bool,
    fin: bool,
}

#[derive(Debug, Default)]
struct Conn {
    to_server: Direction,
    to_client: Direction,
    last_us: u64,
}

/// Reassembles TCP connections to the Modbus ports into ADUs.
#[derive(Debug)]
pub struct Reassembler {
    ports: Vec<u16>,
    conns: HashMap<Flow, Conn>,
    stats: TcpStats,
}

impl Reassembler {
    /// Reassembles connections to any of `ports` (the server side).
    pub fn new(ports: Vec<u16>) -> Self {
        Self {
            ports,
            conns: HashMap::new(),
            stats: TcpStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Feeds one captured frame of `linktype`.
    pub fn frame(
        &mut self,
        ts_us: u64,
        linktype: u32,
        data: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        if let Some(segment) = tcp_segment(linktype, data) {
            self.segment(ts_us, &segment, out);
        }
    }

    fn segment(&mut self, ts_us: u64, s: &Segment<'_>, out: &mut dyn FnMut(Event<'_>)) {
        let (flow, side) = if self.ports.contains(&s.dst.port()) {
            (
                Flow {
                    client: s.src,
                    server: s.dst,
                },
                Side::ToServer,
            )
        } else if self.ports.contains(&s.src.port()) {
            (
                Flow {
                    client: s.dst,
                    server: s.src,
                },
                Side::ToClient,
            )
        } else {
            return;
        };
        self.stats.segments += 1;
        if !self.conns.contains_key(&flow) {
            if self.conns.len() >= MAX_FLOWS {
                let oldest = self
                    .conns
                    .iter()
                    .min_by_key(|(_, c)| c.last_us)
                    .map(|(f, _)| *f);
                if let Some(oldest) = oldest {
                    self.close(oldest, out);
                }
            }
            self.stats.flows += 1;
        }
        let conn = self.conns.entry(flow).or_default();
        conn.last_us = conn.last_us.max(ts_us);
        let dir = match side {
            Side::ToServer => &mut conn.to_server,
            Side::ToClient => &mut conn.to_client,
        };
        if s.syn {
            dir.next_seq = Some(s.seq.wrapping_add(1));
            dir.buf.clear();
            dir.held.clear();
            dir.held_bytes = 0;
        } else if !s.payload.is_empty() {
            let next = *dir.next_seq.get_or_insert(s.seq);
            let diff = s.seq.wrapping_sub(next) as i32;
            if diff <= 0 {
                let skip = diff.unsigned_abs() as usize;
                if skip >= s.payload.len() {
                    self.stats.retransmitted += 1;
                } else {
                    deliver(
                        dir,
                        &s.payload[skip..],
                        ts_us,
                        flow,
                        side,
                        &mut self.stats,
                        out,
                    );
                    drain_held(dir, ts_us, flow, side, &mut self.stats, out);
                }
            } else {
                self.stats.out_of_order += 1;
                if !dir.held.iter().any(|(seq, _)| *seq == s.seq) {
                    dir.held_bytes += s.payload.len();
                    dir.held.push((s.seq, s.payload.to_vec()));
                }
                if dir.held.len() > MAX_HELD_SEGMENTS || dir.held_bytes > MAX_HELD_BYTES {
                    // Give up on the hole: restart framing at the first held segment.
                    let first = dir
                        .held
                        .iter()
                        .map(|(seq, _)| *seq)
                        .min_by_key(|seq| seq.wrapping_sub(next));
                    if let Some(first) = first {
                        let missing = first.wrapping_sub(next);
                        self.stats.gaps += 1;
                        out(Event::Gap {
                            ts_us,
                            flow,
                            side,
                            missing,
                        });
                        dir.next_seq = Some(first);
                        dir.buf.clear();
                        dir.resync = true;
                        drain_held(dir, ts_us, flow, side, &mut self.stats, out);
                    }
                }
            }
        }
        if s.fin {
            dir.fin = true;
        }
        let done = s.rst || (conn.to_server.fin && conn.to_client.fin);
        if done {
            self.close(flow, out);
        }
    }

    fn close(&mut self, flow: Flow, out: &mut dyn FnMut(Event<'_>)) {
        if let Some(conn) = self.conns.remove(&flow) {
            for (dir, side) in [
                (conn.to_server, Side::ToServer),
                (conn.to_client, Side::ToClient),
            ] {
                if !dir.held.is_empty() {
                    let missing = dir
                        .held
                        .iter()
                        .map(|(seq, _)| seq.wrapping_sub(dir.next_seq.unwrap_or(*seq)))
                        .min()
                        .unwrap_or(0);
                    self.stats.gaps += 1;
                    out(Event::Gap {
                        ts_us: conn.last_us,
                        flow,
                        side,
                        missing,
                    });
                }
            }
            out(Event::Closed(flow));
        }
    }

    /// End of input: every connection is closed.
    pub fn finish(&mut self, out: &mut dyn FnMut(Event<'_>)) {
        let mut flows: Vec<Flow> = self.conns.keys().copied().collect();
        flows.sort();
        for flow in flows {
            self.close(flow, out);
        }
    }
}

/// Delivers held segments that the stream has now reached.
fn drain_held(
    dir: &mut Direction,
    ts_us: u64,
    flow: Flow,
    side: Side,
    stats: &mut TcpStats,
    out: &mut dyn FnMut(Event<'_>),
) {
    loop {
        let Some(next) = dir.next_seq else { return };
        let Some(at) = dir
            .held
            .iter()
            .position(|(seq, _)| seq.wrapping_sub(next) as i32 <= 0)
        else {
            return;
        };
        let (seq, bytes) = dir.held.swap_remove(at);
        dir.held_bytes -= bytes.len();
        let skip = next.wrapping_sub(seq) as usize;
        if skip < bytes.len() {
            deliver(dir, &bytes[skip..], ts_us, flow, side, stats, out);
        } else {
            stats.retransmitted += 1;
        }
    }
}

/// Appends in-order bytes of one segment and emits every whole ADU.
fn deliver(
    dir: &mut Direction,
    bytes: &[u8],
    ts_us: u64,
    flow: Flow,
    side: Side,
    stats: &mut TcpStats,
    out: &mut dyn FnMut(Event<'_>),
) {
    dir.next_seq = dir.next_seq.map(|n| n.wrapping_add(bytes.len() as u32));
    if dir.resync {
        // A segment boundary: resume when it starts with a plausible MBAP header.
        if tcp::decode_adu(bytes).is_err() {
            stats.resync_skipped_bytes += bytes.len() as u64;
            return;
        }
        dir.resync = false;
        dir.buf.clear();
    }
    dir.buf.extend_from_slice(bytes);
    let mut pos = 0;
    loop {
        match tcp::decode_adu(&dir.buf[pos..]) {
            Ok(Some(adu)) => {
                let len = adu.wire_len();
                out(Event::Adu(Adu {
                    ts_us,
                    flow,
                    side,
                    transaction_id: adu.transaction_id(),
                    unit: adu.unit_id().get(),
                    pdu: adu.pdu,
                }));
                pos += len;
            }
            Ok(None) => break,
            Err(error) => {
                out(Event::FrameError {
                    ts_us,
                    flow,
                    side,
                    error,
                });
                stats.resync_skipped_bytes += (dir.buf.len() - pos) as u64;
                pos = dir.buf.len();
                dir.resync = true;
                break;
            }
        }
    }
    dir.buf.drain(..pos);
    // Never more than one ADU's worth is waiting: decode_adu bounds the length.
    debug_assert!(dir.buf.len() < 2 * MAX_TCP_ADU_LEN + bytes.len());
}
