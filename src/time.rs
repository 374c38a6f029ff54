//! Small timing helpers the tasks share.
use tokio::time::Instant;

/// Resolves at `at`; never without a deadline (a `select!` branch that is off).
pub async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
