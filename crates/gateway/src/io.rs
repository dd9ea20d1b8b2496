//! Small socket helpers for the data path.
//!
//! Writes try the socket first (`try_write`, no timer, no allocation) and only fall back to
//! waiting for writability, bounded by a deadline, when the kernel buffer is full. A peer that
//! stops reading therefore cannot wedge a session forever.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// Writes all of `buf` to `stream`, waiting at most `limit` each time the socket is full.
pub(crate) async fn write_all_within(
    stream: &TcpStream,
    mut buf: &[u8],
    limit: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "peer accepted no bytes",
                ))
            }
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(limit, stream.writable()).await {
                    Ok(ready) => ready?,
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("peer did not read for {limit:?}"),
                        ))
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads whatever is available into `buf` (growing it by at most `chunk`), waiting for it.
pub(crate) async fn read_some(
    stream: &mut TcpStream,
    buf: &mut bytes::BytesMut,
    chunk: usize,
) -> io::Result<usize> {
    use tokio::io::AsyncReadExt;
    if buf.capacity() - buf.len() < chunk / 2 {
        buf.reserve(chunk);
    }
    stream.read_buf(buf).await
}
