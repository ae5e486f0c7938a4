//! The two engines behind one schema: SQLite (embedded, a file) and PostgreSQL.

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use super::error::StorageError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite://PATH`.
    Sqlite,
    /// `postgres://...` or `postgresql://...`.
    Postgres,
}

impl Engine {
    /// The engine of a database URL.
    pub fn of_url(url: &str) -> Result<Engine, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            Err(StorageError::Unavailable(format!(
                "unsupported database URL {url:?}: use sqlite://PATH or postgres://..."
            )))
        }
    }
}

/// Opens a pool on `url`, with the engine's settings, and runs the embedded migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<(AnyPool, Engine), StorageError> {
    sqlx::any::install_default_drivers();
    let engine = Engine::of_url(url)?;
    let url = match engine {
        // Create the file on first start.
        Engine::Sqlite if !url.contains("mode=") => {
            if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            }
        }
        _ => url.to_owned(),
    };
    // While the database is unreachable, fail fast (the API answers 503) rather than hold
    // requests for sqlx's default 30 s.
    let options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(2));
    let options = match engine {
        Engine::Sqlite => options.after_connect(|conn, _| {
            Box::pin(async move {
                // WAL with full sync: an acknowledged write survives a crash of the process and
                // of the machine; readers never block the writer.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        }),
        Engine::Postgres => options.after_connect(|conn, _| {
            Box::pin(async move {
                // Plan each statement for its values. A generic plan made while a table was
                // small scans it whole, and stays cached as the table grows.
                conn.execute("SET plan_cache_mode = force_custom_plan")
                    .await?;
                Ok(())
            })
        }),
    };
    let pool = options.connect(&url).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok((pool, engine))
}
