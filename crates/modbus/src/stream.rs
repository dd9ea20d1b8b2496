//! The bounded buffer behind the streaming deframers ([`crate::TcpDeframer`],
//! [`crate::rtu::RtuDeframer`]).
//!
//! Spec: Modbus Messaging Implementation Guide V1.0b §4.3 (a TCP stream carries ADUs back to
//! back, split anywhere) and Modbus over Serial Line V1.02 §2.5.1 (an RTU frame is at most 256
//! bytes). The buffer has a fixed capacity of twice the largest ADU, so it never allocates and
//! always has room for one whole ADU once the ADUs before it were pulled out.

use crate::error::FrameError;

/// Capacity of a deframer buffer.
pub(crate) const CAPACITY: usize = 2 * crate::tcp::MAX_TCP_ADU_LEN;

/// A byte buffer `data[start..end]` of pending input; bytes before `start` were handed out.
#[derive(Clone)]
pub(crate) struct StreamBuf {
    data: [u8; CAPACITY],
    start: usize,
    end: usize,
    error: Option<FrameError>,
}

impl StreamBuf {
    pub(crate) const fn new() -> Self {
        Self {
            data: [0; CAPACITY],
            start: 0,
            end: 0,
            error: None,
        }
    }

    /// Copies as much of `input` as fits, moving pending bytes to the front first when needed.
    pub(crate) fn feed(&mut self, input: &[u8]) -> usize {
        if self.error.is_some() {
            return 0;
        }
        if CAPACITY - self.end < input.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = input.len().min(CAPACITY - self.end);
        if let (Some(dst), Some(src)) = (self.data.get_mut(self.end..self.end + n), input.get(..n))
        {
            dst.copy_from_slice(src);
            self.end += n;
            n
        } else {
            0
        }
    }

    /// The pending bytes.
    pub(crate) fn pending(&self) -> &[u8] {
        self.data.get(self.start..self.end).unwrap_or_default()
    }

    /// Hands out the next `len` pending bytes (the caller found a whole ADU there).
    pub(crate) fn consume(&mut self, len: usize) -> &[u8] {
        let start = self.start;
        let end = (start + len).min(self.end);
        self.start = end;
        if self.start == self.end {
            // Keep the data in place (the returned slice borrows it) but start over next time.
            let out_start = start;
            self.start = 0;
            self.end = 0;
            return self.data.get(out_start..end).unwrap_or_default();
        }
        self.data.get(start..end).unwrap_or_default()
    }

    pub(crate) fn error(&self) -> Option<FrameError> {
        self.error
    }

    pub(crate) fn fail(&mut self, error: FrameError) -> FrameError {
        self.error = Some(error);
        error
    }

    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.error = None;
    }

    pub(crate) const fn buffered(&self) -> usize {
        self.end - self.start
    }
}

impl core::fmt::Debug for StreamBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamBuf")
            .field("buffered", &self.buffered())
            .field("error", &self.error)
            .finish()
    }
}
