//! A borrowing read cursor and a bounded write cursor: the only places that index bytes.
//!
//! Spec: Modbus Application Protocol V1.1b3 §4.2 (big-endian encoding of every 16-bit field).
//! Every read checks the remaining length first and returns the field name on failure, so parsers
//! are straight-line code ending in [`Reader::expect_empty`] (every parse consumes its input
//! exactly), in the style of rustls's `Reader` and rodbus's `ReadCursor`.

use crate::error::{EncodeError, PduErrorKind};

/// Reads big-endian fields from a borrowed slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next `n` bytes, or `Truncated { field }`.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PduErrorKind> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(PduErrorKind::Truncated { field }),
        }
    }

    pub(crate) fn read_u8(&mut self, field: &'static str) -> Result<u8, PduErrorKind> {
        match self.buf.split_first() {
            Some((&b, tail)) => {
                self.buf = tail;
                Ok(b)
            }
            None => Err(PduErrorKind::Truncated { field }),
        }
    }

    pub(crate) fn read_u16(&mut self, field: &'static str) -> Result<u16, PduErrorKind> {
        match self.buf.split_first_chunk::<2>() {
            Some((&b, tail)) => {
                self.buf = tail;
                Ok(u16::from_be_bytes(b))
            }
            None => Err(PduErrorKind::Truncated { field }),
        }
    }

    /// Everything left, consuming it.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(crate) const fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails with `TrailingBytes` unless every byte was consumed.
    pub(crate) const fn expect_empty(&self) -> Result<(), PduErrorKind> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(PduErrorKind::TrailingBytes {
                count: self.buf.len(),
            })
        }
    }
}

/// Writes big-endian fields into a caller's buffer, failing (never panicking) when it is full.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Self { out, pos: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + bytes.len();
        match self.out.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
                Ok(())
            }
            None => Err(EncodeError::BufferTooSmall {
                needed: end,
                available: self.out.len(),
            }),
        }
    }

    pub(crate) fn put_u8(&mut self, value: u8) -> Result<(), EncodeError> {
        self.put(&[value])
    }

    pub(crate) fn put_u16(&mut self, value: u16) -> Result<(), EncodeError> {
        self.put(&value.to_be_bytes())
    }

    pub(crate) const fn len(&self) -> usize {
        self.pos
    }

    /// The bytes written so far.
    pub(crate) fn written(&self) -> &[u8] {
        self.out.get(..self.pos).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_and_reports_truncation() {
        let mut r = Reader::new(&[1, 0x12, 0x34, 9]);
        assert_eq!(r.read_u8("a"), Ok(1));
        assert_eq!(r.read_u16("b"), Ok(0x1234));
        assert_eq!(r.read_u16("c"), Err(PduErrorKind::Truncated { field: "c" }));
        assert_eq!(
            r.expect_empty(),
            Err(PduErrorKind::TrailingBytes { count: 1 })
        );
        assert_eq!(r.take(1, "d"), Ok(&[9][..]));
        assert_eq!(r.expect_empty(), Ok(()));
        assert_eq!(r.read_u8("e"), Err(PduErrorKind::Truncated { field: "e" }));
    }

    #[test]
    fn writer_fails_when_full() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.put_u16(0xABCD).unwrap();
        assert!(w.put_u16(1).is_err());
        w.put_u8(7).unwrap();
        assert_eq!(w.written(), &[0xAB, 0xCD, 7]);
    }
}
