//! The queue of bytes waiting to be written to the transport.
//!
//! Small frames are copied into one contiguous buffer (`tail`), so a batch of replies leaves in
//! one write. Large unmasked payloads are queued as their own [`Bytes`] chunk, without a copy,
//! and leave with their header in the same vectored write.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// The first allocation of the gathering buffer.
const MIN_TAIL: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    /// Chunks ready to go, in order, before `tail`.
    chunks: VecDeque<Bytes>,
    /// Small frames being gathered; always after every chunk.
    tail: BytesMut,
    /// Total bytes in `chunks`.
    chunks_len: usize,
    /// A partial write advanced `tail`'s view (see `advance`).
    tail_advanced: bool,
}

impl OutQueue {
    pub(crate) fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends bytes by copying them into the tail buffer.
    pub(crate) fn tail_mut(&mut self, additional: usize) -> &mut BytesMut {
        if self.tail.capacity() == 0 {
            // A fresh buffer (idle connections hold none): room for a burst of small frames
            // at once instead of growing frame by frame.
            self.tail.reserve(additional.max(MIN_TAIL));
        } else {
            self.tail.reserve(additional);
        }
        &mut self.tail
    }

    /// Appends a chunk without copying it.
    pub(crate) fn push_chunk(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            let tail = self.tail.split().freeze();
            self.chunks_len += tail.len();
            self.chunks.push_back(tail);
        }
        self.chunks_len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Fills `dst` with the queued bytes in order; returns how many slices it filled.
    pub(crate) fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst
            .iter_mut()
            .zip(self.chunks.iter().map(|c| &c[..]).chain(Some(&self.tail[..])))
        {
            if chunk.is_empty() {
                continue;
            }
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// The first contiguous run of queued bytes.
    pub(crate) fn first(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail,
        }
    }

    /// Drops the first `n` bytes, which the transport has taken.
    pub(crate) fn advance(&mut self, mut n: usize) {
        n = n.min(self.len());
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if c.len() <= n => {
                    n -= c.len();
                    self.chunks_len -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    self.chunks_len -= n;
                    n = 0;
                }
                None if n == self.tail.len() => {
                    // All written: empty the view in place.
                    self.tail.clear();
                    if std::mem::take(&mut self.tail_advanced) {
                        // An earlier partial write moved the view towards the end of its
                        // allocation, so `capacity()` no longer counts the bytes written: take
                        // them back (nothing to copy), so that `shrink` and `take_buffer` see
                        // the whole allocation instead of pinning it behind a small view.
                        let _ = self.tail.try_reclaim(self.tail.capacity() + 1);
                    }
                    n = 0;
                }
                None => {
                    self.tail.advance(n);
                    self.tail_advanced = true;
                    n = 0;
                }
            }
        }
    }

    /// Hands back the tail buffer's allocation when nothing is queued (for a buffer pool).
    pub(crate) fn take_buffer(&mut self) -> Option<BytesMut> {
        if self.is_empty() && self.tail.capacity() > 0 {
            Some(std::mem::take(&mut self.tail))
        } else {
            None
        }
    }

    /// Installs a buffer to gather small frames in, if the queue holds none; otherwise
    /// returns it.
    pub(crate) fn give_buffer(&mut self, mut buf: BytesMut) -> Option<BytesMut> {
        if self.is_empty() && self.tail.capacity() == 0 {
            buf.clear();
            self.tail = buf;
            None
        } else {
            Some(buf)
        }
    }

    /// Releases a large idle tail allocation.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.is_empty() && self.tail.capacity() > keep {
            self.tail = BytesMut::new();
        }
    }

    /// Moves everything queued into one contiguous `Vec` (for tests and simple callers).
    pub(crate) fn drain_to_vec(&mut self, dst: &mut Vec<u8>) {
        dst.reserve(self.len());
        for c in self.chunks.drain(..) {
            dst.extend_from_slice(&c);
        }
        dst.extend_from_slice(&self.tail);
        self.tail.clear();
        self.chunks_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_across_tail_and_chunks() {
        let mut q = OutQueue::default();
        q.tail_mut(2).extend_from_slice(b"ab");
        q.push_chunk(Bytes::from_static(b"CDEF"));
        q.tail_mut(1).extend_from_slice(b"g");
        assert_eq!(q.len(), 7);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = q.slices(&mut slices);
        let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"abCDEFg");
        q.advance(3);
        assert_eq!(q.first(), b"DEF");
        q.advance(4);
        assert!(q.is_empty());
    }

    #[test]
    fn drained_tail_keeps_its_whole_allocation() {
        let mut q = OutQueue::default();
        q.tail_mut(1 << 20).extend_from_slice(&[0; 1 << 20]);
        let cap = q.tail.capacity();
        q.advance(1000);
        q.advance((1 << 20) - 1000);
        assert!(q.is_empty());
        // The idle queue lets a large buffer go, and hands out a buffer of its real size.
        assert_eq!(q.tail.capacity(), cap);
        q.shrink(64 << 10);
        assert_eq!(q.tail.capacity(), 0);
        q.tail_mut(100).extend_from_slice(&[1; 100]);
        let cap = q.tail.capacity();
        q.advance(100);
        assert_eq!(q.take_buffer().map(|b| b.capacity()), Some(cap));
    }
}
