//! PostgreSQL only: follows what other ferry processes commit. Every writer sends
//! `NOTIFY ferry_changes` inside its transaction; this task LISTENs, and on each notification
//! (and after every reconnect, in case one was missed) reads the change log past the hub's
//! last published revision and publishes it. It stops when `cancel` fires.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;

/// Channel name shared with the writer.
pub const CHANNEL: &str = "ferry_changes";

/// Runs until cancelled, reconnecting with back-off when the database goes away.
pub async fn run(url: String, hub: Hub, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        match follow(&url, &hub, &cancel).await {
            Ok(()) => return,
            Err(_) => {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
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
