//! Link, IP and TCP header decoding: just enough to find a TCP segment and its endpoints.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One TCP segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment<'a> {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) seq: u32,
    pub(crate) syn: bool,
    pub(crate) fin: bool,
    pub(crate) rst: bool,
    pub(crate) payload: &'a [u8],
}

/// Link-layer types we read (tcpdump.org LINKTYPE_ values).
const NULL: u32 = 0;
const ETHERNET: u32 = 1;
const RAW: u32 = 101;
const LOOP: u32 = 108;
const LINUX_SLL: u32 = 113;
const IPV4: u32 = 228;
const IPV6: u32 = 229;
const LINUX_SLL2: u32 = 276;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The IP packet inside a frame of `linktype`, if it carries one.
fn network(linktype: u32, frame: &[u8]) -> Option<&[u8]> {
    match linktype {
        ETHERNET => {
            let mut at = 12;
            let mut ethertype = be16(frame, at)?;
            // 802.1Q / 802.1ad tags, possibly stacked.
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                at += 4;
                ethertype = be16(frame, at)?;
            }
            matches!(ethertype, 0x0800 | 0x86dd)
                .then(|| frame.get(at + 2..))
                .flatten()
        }
        NULL | LOOP => frame.get(4..),
        RAW | IPV4 | IPV6 => Some(frame),
        LINUX_SLL => matches!(be16(frame, 14)?, 0x0800 | 0x86dd)
            .then(|| frame.get(16..))
            .flatten(),
        LINUX_SLL2 => matches!(be16(frame, 0)?, 0x0800 | 0x86dd)
            .then(|| frame.get(20..))
            .flatten(),
        _ => None,
    }
}

/// The TCP segment in a frame, if any (IPv4 fragments are not reassembled: `None`).
pub(crate) fn tcp_segment(linktype: u32, frame: &[u8]) -> Option<Segment<'_>> {
    let ip = network(linktype, frame)?;
    let version = ip.first()? >> 4;
    let (src, dst, tcp) = match version {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(be16(ip, 2)?);
            let flags_frag = be16(ip, 6)?;
            if flags_frag & 0x3fff != 0 || *ip.get(9)? != 6 || ihl < 20 || total < ihl {
                return None;
            }
            // The total length trims Ethernet padding.
            let body = ip.get(ihl..total.min(ip.len()))?;
            let s = Ipv4Addr::new(*ip.get(12)?, *ip.get(13)?, *ip.get(14)?, *ip.get(15)?);
            let d = Ipv4Addr::new(*ip.get(16)?, *ip.get(17)?, *ip.get(18)?, *ip.get(19)?);
            (IpAddr::V4(s), IpAddr::V4(d), body)
        }
        6 => {
            if *ip.get(6)? != 6 {
                return None;
            }
            let len = usize::from(be16(ip, 4)?);
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let body = ip.get(40..(40 + len).min(ip.len()))?;
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                body,
            )
        }
        _ => return None,
    };
    let sport = be16(tcp, 0)?;
    let dport = be16(tcp, 2)?;
    let seq = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    if offset < 20 {
        return None;
    }
    Some(Segment {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        syn: flags & 0x02 != 0,
        fin: flags & 0x01 != 0,
        rst: flags & 0x04 != 0,
        payload: tcp.get(offset..)?,
    })
}
