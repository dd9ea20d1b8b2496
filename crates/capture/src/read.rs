//! Streaming pcap / pcapng reading (pcap-file, pure Rust): one frame at a time, constant memory.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

/// A capture that cannot be read at all (exit 2); a capture that ends early is not an error
/// but [`Summary::truncated`].
#[derive(Debug)]
pub struct CaptureError(pub String);

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaptureError {}

/// What reading one file gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames (packet records) read.
    pub frames: u64,
    /// Captured bytes of those frames.
    pub bytes: u64,
    /// Why reading stopped early, when it did (a truncated or corrupt file).
    pub truncated: Option<String>,
    /// Timestamp of the last frame, microseconds since the epoch.
    pub last_ts_us: u64,
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads `path` (pcap or pcapng, by its magic number) and calls `frame(ts_us, linktype, data)`
/// for every frame, in file order.
pub fn read_capture(
    path: &Path,
    frame: &mut dyn FnMut(u64, u32, &[u8]),
) -> Result<Summary, CaptureError> {
    let err = |e: &dyn fmt::Display| CaptureError(format!("{}: {e}", path.display()));
    let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| err(&e))?);
    let mut magic = [0u8; 4];
    file.get_mut()
        .read_exact(&mut magic)
        .map_err(|_| err(&"not a pcap or pcapng file (shorter than 4 bytes)"))?;
    // Reopen from the start: the readers parse the magic themselves.
    let file = BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| err(&e))?);
    let mut summary = Summary::default();
    if magic == PCAPNG_MAGIC {
        let mut reader = PcapNgReader::new(file).map_err(|e| err(&format!("pcapng: {e}")))?;
        // Per section, the link type of each interface, by interface id.
        let mut linktypes: Vec<u32> = Vec::new();
        while let Some(block) = reader.next_block() {
            let block = match block {
                Ok(b) => b,
                Err(e) => {
                    summary.truncated =
                        Some(format!("pcapng block after frame {}: {e}", summary.frames));
                    break;
                }
            };
            let (interface, ts, data) = match &block {
                Block::SectionHeader(_) => {
                    linktypes.clear();
                    continue;
                }
                Block::InterfaceDescription(i) => {
                    linktypes.push(u32::from(i.linktype));
                    continue;
                }
                Block::EnhancedPacket(p) => (p.interface_id, p.timestamp, &p.data[..]),
                Block::SimplePacket(p) => (0, std::time::Duration::ZERO, &p.data[..]),
                _ => continue,
            };
            let linktype = linktypes
                .get(interface as usize)
                .copied()
                .unwrap_or(u32::MAX);
            let ts_us = u64::try_from(ts.as_micros()).unwrap_or(u64::MAX);
            summary.frames += 1;
            summary.bytes += data.len() as u64;
            summary.last_ts_us = ts_us;
            frame(ts_us, linktype, data);
        }
    } else {
        let mut reader =
            PcapReader::new(file).map_err(|e| err(&format!("not a pcap or pcapng file: {e}")))?;
        let linktype = u32::from(reader.header().datalink);
        while let Some(packet) = reader.next_packet() {
            let packet = match packet {
                Ok(p) => p,
                Err(e) => {
                    summary.truncated =
                        Some(format!("pcap record after frame {}: {e}", summary.frames));
                    break;
                }
            };
            let ts_us = u64::try_from(packet.timestamp.as_micros()).unwrap_or(u64::MAX);
            summary.frames += 1;
            summary.bytes += packet.data.len() as u64;
            summary.last_ts_us = ts_us;
            frame(ts_us, linktype, &packet.data);
        }
    }
    Ok(summary)
}
