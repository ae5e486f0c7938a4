//! PostgreSQL only: follows what other ferry processes commit. Every writer sends
//! `NOTIFY ferry_changes` inside its transaction; this task LISTENs, and on each notification
//! (and after every reconnect, in case one was missed) reads the change log past the hub's
//! last published revision and publishes it. It stops when `cancel` fires.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;

/// Channel name shared with the writer.
pub const CHANNEL: &str = "ferry_changes";

/// Runs until cancelled, reconnecting with back-off when the database goes away.
pub async fn run(url: String, hub: Hub, cancel: CancellationToken) {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times();
    let following = (|| follow(&url, &hub, &cancel))
        .retry(backoff)
        .notify(|error: &sqlx::Error, wait: Duration| {
            tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "lost the PostgreSQL change notifications; reconnecting");
        });
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = following => {}
    }
}

async fn catch_up(hub: &Hub) -> Result<(), sqlx::Error> {
    loop {
        let changes = super::changes_after(hub.pool(), hub.last_published(), 1000)
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        if changes.is_empty() {
            return Ok(());
        }
        hub.publish(&changes);
    }
}

async fn follow(url: &str, hub: &Hub, cancel: &CancellationToken) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    catch_up(hub).await?;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            notification = listener.recv() => {
                notification?;
                catch_up(hub).await?;
            }
        }
    }
}
