//! Write-buffer pools: a connection holds a write buffer only while it has something to write.

use bytes::BytesMut;
use std::sync::Mutex;

/// A pool of write buffers shared by many connections.
///
/// A connection takes a buffer when it queues a frame and puts it back once everything queued
/// has been written, so thousands of idle connections share a handful of buffers.
pub trait BufferPool: Send + Sync {
    /// A buffer to write into, if the pool has one.
    fn get(&self) -> Option<BytesMut>;
    /// Gives a buffer back; the pool may drop it.
    fn put(&self, buf: BytesMut);
}

/// A simple bounded pool: keeps at most `max_buffers` buffers of up to `max_capacity` bytes.
///
/// ```
/// use ferrosocket::{BufferPool, WriteBufferPool};
/// let pool = WriteBufferPool::new(64, 64 << 10);
/// assert!(pool.get().is_none());
/// pool.put(bytes::BytesMut::with_capacity(4096));
/// assert!(pool.get().is_some());
/// ```
#[derive(Debug)]
pub struct WriteBufferPool {
    buffers: Mutex<Vec<BytesMut>>,
    max_buffers: usize,
    max_capacity: usize,
}

impl WriteBufferPool {
    /// A pool that keeps up to `max_buffers` buffers, dropping any larger than `max_capacity`.
    pub fn new(max_buffers: usize, max_capacity: usize) -> Self {
        Self {
            buffers: Mutex::new(Vec::new()),
            max_buffers,
            max_capacity,
        }
    }
}

impl Default for WriteBufferPool {
    /// 1024 buffers of up to 64 KiB.
    fn default() -> Self {
        Self::new(1024, 64 << 10)
    }
}

impl BufferPool for WriteBufferPool {
    fn get(&self) -> Option<BytesMut> {
        self.buffers.lock().ok()?.pop()
    }

    fn put(&self, mut buf: BytesMut) {
        if buf.capacity() == 0 || buf.capacity() > self.max_capacity {
            return;
        }
        buf.clear();
        if let Ok(mut v) = self.buffers.lock()
            && v.len() < self.max_buffers
        {
            v.push(buf);
        }
    }
}
