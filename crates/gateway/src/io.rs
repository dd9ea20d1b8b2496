//! Small socket helpers for the data path.
//!
//! Writes try the socket first (`try_write`, no timer, no allocation) and only fall back to
//! waiting for writability, bounded by a deadline, when the kernel buffer is full. A peer that
//! stops reading therefore cannot wedge a session forever.
//!
//! Answers to a client go out with [`ClientStream::write_now`], which never waits: what the
//! socket does not take stays with the session, which stops reading that client until it is
//! writable again ([`ClientStream::writable`]). A client that never reads its answers thus
//! holds no device connection and gets no more requests served, as haproxy's buffers do.
//!
//! [`Stream`] is the one link type of the data path: plaintext Modbus/TCP or Modbus/TCP
//! Security, on the client side and on the device side alike.

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

/// Reads what the socket holds into `buf`'s spare capacity. A read that filled less than the
/// space offered emptied the socket's receive queue (a TCP `recv` returns short only then),
/// so the socket is marked not readable at once: the next read waits for the next epoll event
/// instead of first making a `recv` that can only fail with `EAGAIN` (one system call per
/// read less; the request-answer pattern of Modbus makes nearly every read a short one).
/// tokio clears the readiness only if no event came since the read began, so data that
/// arrives meanwhile is never missed.
fn read_drained(socket: &TcpStream, buf: &mut bytes::BytesMut) -> io::Result<usize> {
    let offered = buf.capacity() - buf.len();
    let mut got = 0;
    let read = socket.try_io(tokio::io::Interest::READABLE, || {
        got = socket.try_read_buf(buf)?;
        if got > 0 && got < offered {
            // Not an error: tells tokio the socket is drained; `got` is returned below.
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match read {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// A link of the data path: plaintext Modbus/TCP, or Modbus/TCP Security (TLS over TCP).
///
/// One type for both, so that the session (conn.rs) and the pool (upstream.rs) have ONE data
/// path: framing, decisions, audit and timers never know which kind of link they run on.
pub(crate) enum Stream<T> {
    /// Modbus/TCP in clear (the fast path: `try_write`, no copy into a TLS buffer).
    Plain(TcpStream),
    /// Modbus/TCP Security: the ADU stream inside TLS application data.
    Tls(Box<T>),
    /// A port of a Modbus RTU bus (bus.rs): MBAP to the session, RTU on the line.
    Bus(Box<crate::bus::Port>),
    /// A port of a device connection shared by sessions (upstream/shared.rs): MBAP both ways,
    /// the session's own transaction ids.
    Shared(Box<crate::upstream::SharedPort>),
    /// A serial line the gateway serves as a slave (serial_listen.rs): RTU on the line, MBAP
    /// to the session.
    Serial(Box<crate::serial_listen::LineClient>),
}

/// The client side of a session.
pub(crate) type ClientStream = Stream<tokio_rustls::server::TlsStream<TcpStream>>;
/// A device connection of the pool.
pub(crate) type DeviceStream = Stream<tokio_rustls::client::TlsStream<TcpStream>>;

impl<T> Stream<T>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// Writes all of `buf`: a plaintext link waits at most `limit` each time the socket is
    /// full, a TLS link at most `limit` for the whole write (its records are flushed too).
    pub(crate) async fn write_all_within(&mut self, buf: &[u8], limit: Duration) -> io::Result<()> {
        match self {
            Self::Plain(s) => write_all_within(s, buf, limit).await,
            Self::Tls(s) => {
                use tokio::io::AsyncWriteExt;
                let mut write = std::pin::pin!(async {
                    s.write_all(buf).await?;
                    s.flush().await
                });
                // First without a timer, as the plaintext path does: when the kernel buffer
                // has room (nearly always) the records are written at once, and arming and
                // cancelling a timer per response is the one cost a TLS write had over
                // haproxy's. Polled with this task's context, so a pending write still wakes it.
                let first = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(std::future::Future::poll(write.as_mut(), cx))
                })
                .await;
                if let std::task::Poll::Ready(r) = first {
                    return r;
                }
                match tokio::time::timeout(limit, write).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("peer did not read for {limit:?}"),
                    )),
                }
            }
            // Queued at once (or answered 0x06): a bus never blocks the writer.
            Self::Bus(p) => p.write(buf),
            Self::Shared(p) => p.write(buf),
            Self::Serial(l) => l.write_all_within(buf, limit).await,
        }
    }

    /// Reads whatever is available into `buf` (see [`read_some`]); 0 is the end of the stream.
    pub(crate) async fn read_some(
        &mut self,
        buf: &mut bytes::BytesMut,
        chunk: usize,
    ) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let reserve = |buf: &mut bytes::BytesMut| {
            if buf.capacity() - buf.len() < chunk / 2 {
                buf.reserve(chunk);
            }
        };
        match self {
            Self::Plain(s) => loop {
                // Readiness first, the buffer after: an idle connection holds no read buffer
                // while it waits (10,000 idle HMIs, issue 9).
                s.readable().await?;
                reserve(buf);
                match read_drained(s, buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return result,
                }
            },
            Self::Tls(s) => {
                reserve(buf);
                s.read_buf(buf).await
            }
            Self::Bus(p) => {
                reserve(buf);
                p.read_some(buf).await
            }
            Self::Shared(p) => p.read_some(buf).await,
            Self::Serial(l) => {
                reserve(buf);
                l.read_some(buf).await
            }
        }
    }

    /// True when an idle link still looks usable: no end of stream, no stray bytes, no error.
    /// Never waits. On a TLS link a pending post-handshake message (a TLS 1.3 session ticket)
    /// is consumed by rustls and is no stray byte.
    pub(crate) fn still_usable(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match self {
            Self::Plain(s) => {
                matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Self::Tls(s) => {
                use std::task::{Context, Poll, Waker};
                let mut cx = Context::from_waker(Waker::noop());
                let mut rb = tokio::io::ReadBuf::new(&mut probe);
                matches!(
                    std::pin::Pin::new(&mut **s).poll_read(&mut cx, &mut rb),
                    Poll::Pending
                )
            }
            Self::Bus(p) => p.still_usable(),
            Self::Shared(p) => p.still_usable(),
            Self::Serial(_) => true,
        }
    }
}

impl ClientStream {
    /// Writes what the client's socket takes now, without waiting: the number of bytes of
    /// `buf` accepted (0 when the socket is full). A TLS link also pushes the records it
    /// still holds; [`Self::has_unsent`] says whether some are left. A serial line is not
    /// a socket a peer can stall: its answers are written whole, each bounded by `limit`.
    pub(crate) async fn write_now(&mut self, buf: &[u8], limit: Duration) -> io::Result<usize> {
        match self {
            Self::Plain(s) => {
                let mut done = 0;
                while done < buf.len() {
                    match s.try_write(&buf[done..]) {
                        Ok(0) => {
                            return Err(io::Error::new(
                                io::ErrorKind::WriteZero,
                                "peer accepted no bytes",
                            ))
                        }
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(done)
            }
            Self::Tls(s) => {
                use std::pin::Pin;
                use std::task::{Context, Poll, Waker};
                use tokio::io::AsyncWrite;
                // Polled with a waker that does nothing: "pending" means "the socket is
                // full", and the session waits for that with `writable`.
                let mut cx = Context::from_waker(Waker::noop());
                let mut tls = Pin::new(&mut **s);
                if let Poll::Ready(Err(e)) = tls.as_mut().poll_flush(&mut cx) {
                    return Err(e);
                }
                let mut done = 0;
                while done < buf.len() {
                    match tls.as_mut().poll_write(&mut cx, &buf[done..]) {
                        Poll::Ready(Ok(0)) => {
                            return Err(io::Error::new(
                                io::ErrorKind::WriteZero,
                                "peer accepted no bytes",
                            ))
                        }
                        Poll::Ready(Ok(n)) => done += n,
                        Poll::Ready(Err(e)) => return Err(e),
                        Poll::Pending => break,
                    }
                }
                if let Poll::Ready(Err(e)) = tls.as_mut().poll_flush(&mut cx) {
                    return Err(e);
                }
                Ok(done)
            }
            Self::Bus(p) => p.write(buf).map(|()| buf.len()),
            Self::Shared(p) => p.write(buf).map(|()| buf.len()),
            Self::Serial(l) => l.write_all_within(buf, limit).await.map(|()| buf.len()),
        }
    }

    /// Whether the link still holds bytes it could not hand to the socket (a TLS link's
    /// records made from answers already accepted by [`Self::write_now`]).
    pub(crate) fn has_unsent(&self) -> bool {
        match self {
            Self::Tls(s) => s.get_ref().1.wants_write(),
            Self::Plain(_) | Self::Bus(_) | Self::Shared(_) | Self::Serial(_) => false,
        }
    }

    /// Waits until the client's socket takes bytes again.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.writable().await,
            Self::Tls(s) => s.get_ref().0.writable().await,
            Self::Bus(_) | Self::Shared(_) | Self::Serial(_) => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    type Plain = Stream<tokio_rustls::client::TlsStream<TcpStream>>;

    async fn pair() -> (Plain, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        (Stream::Plain(ours), peer)
    }

    #[tokio::test]
    async fn bytes_that_arrive_after_a_drained_read_are_read_without_a_stall() {
        // read_drained marks the socket not readable after a short read; what comes next
        // must still wake the reader (the next epoll event), at every size around the chunk.
        let (mut ours, mut peer) = pair().await;
        let mut buf = bytes::BytesMut::new();
        for len in [1usize, 12, 255, 2047, 2048, 2049, 4096, 9000] {
            let sent: Vec<u8> = (0..len).map(|i| i as u8).collect();
            peer.write_all(&sent).await.unwrap();
            buf.clear();
            while buf.len() < len {
                let n =
                    tokio::time::timeout(Duration::from_secs(5), ours.read_some(&mut buf, 4096))
                        .await
                        .expect("the reader is woken for the next bytes")
                        .unwrap();
                assert!(n > 0, "end of stream after {} of {len}", buf.len());
            }
            assert_eq!(&buf[..], &sent[..], "{len} bytes");
        }
        drop(peer);
        assert_eq!(
            ours.read_some(&mut buf, 4096).await.unwrap(),
            0,
            "end of stream"
        );
    }
}
