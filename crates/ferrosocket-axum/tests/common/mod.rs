//! Helpers shared by the integration tests of `ferrosocket-axum`: every wait is bounded.

use std::future::Future;
use std::time::Duration;

/// The longest any single wait of a test may take.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}
