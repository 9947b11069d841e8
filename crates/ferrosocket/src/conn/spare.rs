//! One read buffer and one write buffer per thread, lent to whichever connection on that
//! thread is reading or writing.
//!
//! A connection hands its buffers back whenever a read would block
//! ([`Connection::release_idle_buffers`]), so an idle connection holds none; the next
//! connection to wake on the same thread borrows them again. Busy connections thus allocate
//! nothing per message (the buffer's allocation is reused, not freed and made anew), and ten
//! thousand idle ones hold no buffer at all. The cache is per thread, so taking and giving is
//! a thread-local `Cell` swap, with no lock.
//!
//! A buffer still shared with a message the application holds (payloads are slices of the
//! read buffer) stays correct: the next `reserve` on it finds it shared and allocates afresh,
//! leaving the message's bytes alone.
//!
//! [`Connection::release_idle_buffers`]: ferrosocket_proto::Connection::release_idle_buffers

use bytes::BytesMut;
use std::cell::Cell;

/// Buffers larger than this go back to the allocator instead of the cache: a thread keeps at
/// most this much per kind, whatever sizes its connections once needed.
const MAX_CACHED: usize = 256 << 10;

thread_local! {
    static READ: Cell<Option<BytesMut>> = const { Cell::new(None) };
    static WRITE: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// The thread's spare read buffer, if it has one.
pub(crate) fn take_read() -> Option<BytesMut> {
    READ.with(Cell::take)
}

/// The thread's spare write buffer, if it has one.
pub(crate) fn take_write() -> Option<BytesMut> {
    WRITE.with(Cell::take)
}

/// Keeps `buf` as the thread's spare read buffer (dropped if one is kept already, or if it
/// is large).
pub(crate) fn put_read(buf: BytesMut) {
    put(&READ, buf);
}

/// Keeps `buf` as the thread's spare write buffer (as [`put_read`]).
pub(crate) fn put_write(buf: BytesMut) {
    put(&WRITE, buf);
}

fn put(slot: &'static std::thread::LocalKey<Cell<Option<BytesMut>>>, buf: BytesMut) {
    if buf.capacity() == 0 || buf.capacity() > MAX_CACHED {
        return;
    }
    slot.with(|s| {
        let kept = s.take();
        // Keep the roomier of the two; the other is freed here, outside the cell.
        let (keep, free) = match kept {
            Some(k) if k.capacity() >= buf.capacity() => (k, Some(buf)),
            other => (buf, other),
        };
        s.set(Some(keep));
        drop(free);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_buffer_per_kind_and_the_roomier_one() {
        assert!(take_read().is_none());
        put_read(BytesMut::with_capacity(1024));
        put_read(BytesMut::with_capacity(4096));
        put_read(BytesMut::with_capacity(2048));
        let kept = take_read().expect("a spare read buffer");
        assert!(kept.capacity() >= 4096);
        assert!(take_read().is_none(), "one buffer per kind");
        assert!(take_write().is_none(), "kinds are separate");
    }

    #[test]
    fn drops_empty_and_large_buffers() {
        put_write(BytesMut::new());
        assert!(take_write().is_none());
        put_write(BytesMut::with_capacity(MAX_CACHED + 1));
        assert!(take_write().is_none());
        put_write(BytesMut::with_capacity(MAX_CACHED));
        assert!(take_write().is_some());
    }
}
