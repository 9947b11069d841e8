//! Server-wide graceful shutdown: tell every connection to close with 1001 (going away), then
//! wait for them to finish, up to a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

struct Inner {
    signal: watch::Sender<bool>,
    /// Set before `signal` is sent: a lock-free "has it happened" for every poll of every
    /// connection (the watch channel is only for waking).
    triggered: AtomicBool,
    live: AtomicUsize,
    drained: Notify,
}

/// A server-wide shutdown switch.
///
/// Give each connection a [`ShutdownToken`] with [`Conn::set_shutdown`]. After
/// [`trigger`](Self::trigger), each connection sends close 1001 (going away) the next time it
/// polls for input, finishes writing what it had queued before the close frame, and waits for
/// the peer's close frame (bounded by its close timeout); its `recv` then returns
/// [`Error::Closed`](crate::Error::Closed). [`wait`](Self::wait) returns when every token is
/// gone or the deadline passes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let shutdown = ferrosocket::Shutdown::new();
/// let token = shutdown.token();
/// let task = tokio::spawn(async move {
///     token.triggered().await; // a connection task would call conn.recv() instead
/// });
/// shutdown.trigger();
/// assert!(shutdown.wait(std::time::Duration::from_secs(1)).await);
/// task.await.unwrap();
/// # }
/// ```
///
/// [`Conn::set_shutdown`]: crate::Conn::set_shutdown
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &*self.inner.signal.borrow())
            .field("live", &self.live())
            .finish()
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A switch that has not been triggered.
    pub fn new() -> Self {
        let (signal, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                signal,
                live: AtomicUsize::new(0),
                triggered: AtomicBool::new(false),
                drained: Notify::new(),
            }),
        }
    }

    /// A token for one connection; the shutdown waits for it to be dropped.
    pub fn token(&self) -> ShutdownToken {
        self.inner.live.fetch_add(1, Ordering::SeqCst);
        ShutdownToken {
            inner: self.inner.clone(),
            rx: self.inner.signal.subscribe(),
        }
    }

    /// Asks every connection to close with 1001.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        self.inner.signal.send_replace(true);
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// How many tokens are alive.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Waits until every token is dropped (`true`) or `timeout` passes (`false`).
    pub async fn wait(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.drained.notified();
                if self.live() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// One connection's view of a [`Shutdown`]; dropping it tells the shutdown this connection is
/// done.
pub struct ShutdownToken {
    inner: Arc<Inner>,
    rx: watch::Receiver<bool>,
}

impl std::fmt::Debug for ShutdownToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownToken")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl ShutdownToken {
    /// Whether shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Completes when shutdown is triggered.
    pub async fn triggered(&self) {
        let mut rx = self.rx.clone();
        // An error means the switch was dropped: nobody can trigger any more; wait forever.
        if rx.wait_for(|on| *on).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The same wait as a boxed future that owns what it needs (for poll-based code).
    pub(crate) fn triggered_owned(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut rx = self.rx.clone();
        Box::pin(async move {
            if rx.wait_for(|on| *on).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

impl Drop for ShutdownToken {
    fn drop(&mut self) {
        if self.inner.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.drained.notify_waiters();
        }
    }
}
