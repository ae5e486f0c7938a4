//! ferry's storage: current objects in one table, every change in a change log keyed by one
//! global revision, on SQLite or PostgreSQL through sqlx.
//!
//! Writes go through the group-commit [`writer`]; reads go straight to the pool. Committed
//! changes are published to watchers through the [`hub`], in revision order with no gaps.

mod change;
mod engine;
mod error;
mod fault;
mod hub;
mod key;
mod listener;
mod txn;
mod watch;
mod writer;

use std::sync::Arc;

use serde_json::Value;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use change::{Before, Change, EventType, Notice};
pub use engine::Engine;
pub use error::StorageError;
pub use fault::{FaultSpecError, Faults};
pub use hub::{Hub, Observer};
pub use key::ObjectKey;
pub use txn::WriteOp;
pub use watch::Watch;

/// A stored object and its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The revision it was last written at (its resourceVersion).
    pub revision: i64,
    /// The object.
    pub object: Value,
}

/// A consistent page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// The objects, ordered by namespace and name.
    pub items: Vec<Stored>,
    /// The revision the list is consistent at.
    pub revision: i64,
    /// Namespace and name of the last item when more remain.
    pub more_after: Option<(String, String)>,
}

/// A consistent page of a list, bodies as stored (JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct RawPage {
    /// `(namespace, name, revision, body)` ordered by namespace and name.
    pub items: Vec<(String, String, i64, String)>,
    /// The revision the list is consistent at.
    pub revision: i64,
    /// Namespace and name of the last item when more remain.
    pub more_after: Option<(String, String)>,
}

/// A consistent page of a list as one JSON text: the stored bodies joined with commas.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedPage {
    /// The bodies, comma-separated, ordered by namespace and name (empty when none).
    pub items: String,
    /// The revision the list is consistent at.
    pub revision: i64,
    /// Namespace and name of the last item when more remain.
    pub more_after: Option<(String, String)>,
}

/// The storage of one ferry process.
#[derive(Clone)]
pub struct Storage {
    pool: AnyPool,
    engine: Engine,
    writes: mpsc::Sender<writer::WriteRequest>,
    hub: Hub,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Storage {
    /// Opens `url` (`sqlite://PATH` or `postgres://...`), runs migrations, starts the writer.
    pub async fn open(url: &str) -> Result<Storage, StorageError> {
        Storage::open_with(url, Faults::default()).await
    }

    /// [`Storage::open`] with fault points armed (crash tests only).
    pub async fn open_with(url: &str, faults: Faults) -> Result<Storage, StorageError> {
        let (pool, engine) = engine::connect(url, 8).await?;
        let revision = current_revision(&pool).await?;
        let hub = Hub::new(pool.clone(), revision);
        let (writes, requests) = mpsc::channel(writer::MAX_BATCH * 4);
        let publisher = hub.clone();
        let cancel = CancellationToken::new();
        tokio::spawn(writer::run(
            pool.clone(),
            engine,
            faults,
            requests,
            cancel.clone(),
            move |changes| publisher.publish(changes),
        ));
        if engine == Engine::Postgres {
            tokio::spawn(listener::run(url.to_owned(), hub.clone(), cancel.clone()));
        }
        Ok(Storage {
            pool,
            engine,
            writes,
            hub,
            cancel,
        })
    }

    /// Stops the background tasks and closes the pool; queued writes still complete (the
    /// writer commits what is queued, then hands its connection back).
    pub async fn close(&self) {
        self.cancel.cancel();
        self.pool.close().await;
    }

    /// The engine in use.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The hub that delivers committed changes.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Applies `ops` as one transaction: all or nothing, consecutive revisions.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Arc<Change>>, StorageError> {
        let (reply, outcome) = oneshot::channel();
        self.writes
            .send(writer::WriteRequest { ops, reply })
            .await
            .map_err(|_| StorageError::Unavailable("the writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StorageError::Unavailable("the writer has stopped".into()))?
    }

    /// Reads one object.
    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Stored>, StorageError> {
        let row = sqlx::query(
            "SELECT revision, body FROM objects WHERE resource = $1 AND namespace = $2 AND name = $3",
        )
        .bind(&key.resource)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| stored(&row, key)).transpose()
    }

    /// Reads many objects in a few statements; absent ones are not in the answer.
    pub async fn get_many(
        &self,
        keys: &[ObjectKey],
    ) -> Result<std::collections::HashMap<ObjectKey, Stored>, StorageError> {
        let mut refs: Vec<&ObjectKey> = keys.iter().collect();
        refs.sort();
        refs.dedup();
        let mut found = std::collections::HashMap::with_capacity(refs.len());
        for chunk in refs.chunks(writer::CHUNK) {
            let query = writer::keys_query(writer::SELECT_BY_KEYS, chunk);
            for row in query.fetch_all(&self.pool).await? {
                let (key, revision, object) = writer::keyed_row(&row)?;
                found.insert(key, Stored { revision, object });
            }
        }
        Ok(found)
    }

    /// Lists a resource (in one namespace, or all when `namespace` is `None`), after the
    /// `(namespace, name)` cursor, at most `limit` items (0: no limit). Consistent: every item
    /// is as of the returned revision.
    pub async fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<ListPage, StorageError> {
        let raw = self.list_raw(resource, namespace, after, limit).await?;
        let mut items = Vec::with_capacity(raw.items.len());
        for (ns, name, revision, body) in raw.items {
            let object = serde_json::from_str(&body).map_err(|e| {
                StorageError::Corrupt(ObjectKey::new(resource, ns, name), e.to_string())
            })?;
            items.push(Stored { revision, object });
        }
        Ok(ListPage {
            items,
            revision: raw.revision,
            more_after: raw.more_after,
        })
    }

    /// [`Storage::list`] without parsing the bodies: for responses that pass them through.
    pub async fn list_raw(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<RawPage, StorageError> {
        let (mut tx, revision) = self.snapshot().await?;
        let (after_ns, after_name) = after.unwrap_or(("", ""));
        let fetch = if limit == 0 {
            i64::MAX
        } else {
            limit as i64 + 1
        };
        // Two shapes, so each is a range scan of the primary key.
        let rows = match namespace {
            Some(ns) => {
                let after_name = if after_ns == ns { after_name } else { "" };
                sqlx::query(
                    "SELECT revision, body, namespace, name FROM objects \
                     WHERE resource = $1 AND namespace = $2 AND name > $3 ORDER BY name LIMIT $4",
                )
                .bind(resource)
                .bind(ns)
                .bind(after_name)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT revision, body, namespace, name FROM objects \
                     WHERE resource = $1 AND (namespace, name) > ($2, $3) ORDER BY namespace, name LIMIT $4",
                )
                .bind(resource)
                .bind(after_ns)
                .bind(after_name)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        let more = limit != 0 && rows.len() > limit;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows
            .into_iter()
            .take(if limit == 0 { usize::MAX } else { limit })
        {
            items.push((
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(0)?,
                row.try_get(1)?,
            ));
        }
        let more_after = if more {
            items
                .last()
                .map(|(ns, name, _, _): &(String, String, i64, String)| (ns.clone(), name.clone()))
        } else {
            None
        };
        Ok(RawPage {
            items,
            revision,
            more_after,
        })
    }

    /// [`Storage::list_raw`] joined in the database into one text: a list response passes
    /// the stored bodies through without a row-by-row round trip.
    pub async fn list_joined(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<JoinedPage, StorageError> {
        let (mut tx, revision) = self.snapshot().await?;
        let (after_ns, after_name) = after.unwrap_or(("", ""));
        let (ns, after_name) = match namespace {
            Some(ns) => (ns, if after_ns == ns { after_name } else { "" }),
            None => ("", after_name),
        };
        // One page, as a range scan of the primary key either way.
        let page = "FROM objects WHERE resource = $1 AND \
                    (($2 <> '' AND namespace = $2 AND name > $4) OR ($2 = '' AND (namespace, name) > ($3, $4)))";
        let fetch = if limit == 0 { i64::MAX } else { limit as i64 };
        let joined_sql = match self.engine {
            // SQLite aggregates the rows of the ordered subquery in that order; an ORDER BY in
            // the aggregate would sort every body again.
            Engine::Sqlite => format!(
                "SELECT COALESCE(group_concat(body, ','), '') FROM \
                 (SELECT body {page} ORDER BY namespace, name LIMIT $5) AS page"
            ),
            Engine::Postgres => format!(
                "SELECT COALESCE(string_agg(body, ',' ORDER BY namespace, name), '') FROM \
                 (SELECT body, namespace, name {page} ORDER BY namespace, name LIMIT $5) AS page"
            ),
        };
        let items: String = sqlx::query(sqlx::AssertSqlSafe(joined_sql))
            .bind(resource)
            .bind(ns)
            .bind(after_ns)
            .bind(after_name)
            .bind(fetch)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut more_after = None;
        if limit > 0 {
            // The page's last key, and whether anything follows it.
            let edge_sql =
                format!("SELECT namespace, name {page} ORDER BY namespace, name LIMIT 2 OFFSET $5");
            let edge = sqlx::query(sqlx::AssertSqlSafe(edge_sql))
                .bind(resource)
                .bind(ns)
                .bind(after_ns)
                .bind(after_name)
                .bind(limit as i64 - 1)
                .fetch_all(&mut *tx)
                .await?;
            if edge.len() == 2 {
                more_after = Some((edge[0].try_get(0)?, edge[0].try_get(1)?));
            }
        }
        tx.commit().await?;
        Ok(JoinedPage {
            items,
            revision,
            more_after,
        })
    }

    /// A read transaction that sees one consistent state, and the revision of that state.
    async fn snapshot(&self) -> Result<(sqlx::Transaction<'static, sqlx::Any>, i64), StorageError> {
        let mut tx = self.pool.begin().await?;
        if self.engine == Engine::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let revision: i64 = sqlx::query("SELECT revision FROM ferry_meta WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        Ok((tx, revision))
    }

    /// How many objects of a resource (in one namespace, or all) come after the
    /// `(namespace, name)` cursor: a list's `remainingItemCount`.
    pub async fn count_after(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: (&str, &str),
    ) -> Result<i64, StorageError> {
        let (after_ns, after_name) = after;
        let row = match namespace {
            Some(ns) => {
                let after_name = if after_ns == ns { after_name } else { "" };
                sqlx::query(
                    "SELECT COUNT(*) FROM objects WHERE resource = $1 AND namespace = $2 AND name > $3",
                )
                .bind(resource)
                .bind(ns)
                .bind(after_name)
                .fetch_one(&self.pool)
                .await?
            }
            None => sqlx::query(
                "SELECT COUNT(*) FROM objects WHERE resource = $1 AND (namespace, name) > ($2, $3)",
            )
            .bind(resource)
            .bind(after_ns)
            .bind(after_name)
            .fetch_one(&self.pool)
            .await?,
        };
        Ok(row.try_get(0)?)
    }

    /// The revision the change log has been compacted to: watches and list continuations
    /// from before it are expired.
    pub async fn compacted(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query("SELECT compacted FROM ferry_meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// The current global revision.
    pub async fn revision(&self) -> Result<i64, StorageError> {
        current_revision(&self.pool).await
    }

    /// Watches every change after `revision`, in order, with nothing missed or repeated.
    pub fn watch(&self, revision: i64) -> Watch {
        Watch::new(self.hub.clone(), revision)
    }

    /// Drops change-log entries committed before `cutoff_ms` (Unix milliseconds), keeping the
    /// newest one so the current revision stays watchable. Returns the new compacted revision.
    pub async fn compact(&self, cutoff_ms: i64) -> Result<i64, StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE ferry_meta SET revision = revision WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT COALESCE(MAX(revision), 0) FROM changes WHERE committed_ms < $1 \
             AND revision < (SELECT revision FROM ferry_meta WHERE id = 1)",
        )
        .bind(cutoff_ms)
        .fetch_one(&mut *tx)
        .await?;
        let upto: i64 = row.try_get(0)?;
        if upto > 0 {
            sqlx::query("DELETE FROM changes WHERE revision <= $1")
                .bind(upto)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE ferry_meta SET compacted = $1 WHERE id = 1 AND compacted < $1")
                .bind(upto)
                .execute(&mut *tx)
                .await?;
        }
        let compacted: i64 = sqlx::query("SELECT compacted FROM ferry_meta WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(compacted)
    }
}

async fn current_revision(pool: &AnyPool) -> Result<i64, StorageError> {
    Ok(sqlx::query("SELECT revision FROM ferry_meta WHERE id = 1")
        .fetch_one(pool)
        .await?
        .try_get(0)?)
}

fn stored(row: &sqlx::any::AnyRow, key: &ObjectKey) -> Result<Stored, StorageError> {
    let revision: i64 = row.try_get(0)?;
    let body: String = row.try_get(1)?;
    let object = serde_json::from_str(&body)
        .map_err(|e| StorageError::Corrupt(key.clone(), e.to_string()))?;
    Ok(Stored { revision, object })
}

/// Reads committed changes after `revision`, at most `limit`, oldest first; `Expired` when the
/// change log no longer reaches back that far.
pub(crate) async fn changes_after(
    pool: &AnyPool,
    revision: i64,
    limit: i64,
) -> Result<Vec<Arc<Change>>, StorageError> {
    read_changes(pool, revision, limit, Arc::new).await
}

/// [`changes_after`] as watches receive them: each change's parsed object is dropped as soon as
/// its notice is made, so a watch catching up holds no more than one.
pub(crate) async fn notices_after(
    pool: &AnyPool,
    revision: i64,
    limit: i64,
) -> Result<Vec<Arc<Notice>>, StorageError> {
    read_changes(pool, revision, limit, |c| Arc::new(Notice::of(&c))).await
}

/// Reads committed changes after `revision`, at most `limit`, oldest first, each made into
/// what `keep` makes of it.
async fn read_changes<T>(
    pool: &AnyPool,
    revision: i64,
    limit: i64,
    keep: impl Fn(Change) -> T,
) -> Result<Vec<T>, StorageError> {
    let compacted: i64 = sqlx::query("SELECT compacted FROM ferry_meta WHERE id = 1")
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    if revision < compacted {
        return Err(StorageError::Expired {
            requested: revision,
            oldest: compacted,
        });
    }
    let rows = sqlx::query(
        "SELECT revision, resource, namespace, name, event, body, previous FROM changes \
         WHERE revision > $1 ORDER BY revision LIMIT $2",
    )
    .bind(revision)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let key = ObjectKey::new(
            row.try_get::<String, _>(1)?,
            row.try_get::<String, _>(2)?,
            row.try_get::<String, _>(3)?,
        );
        let event_text: String = row.try_get(4)?;
        let event = EventType::parse(&event_text)
            .ok_or_else(|| StorageError::Corrupt(key.clone(), format!("event {event_text:?}")))?;
        let body: String = row.try_get(5)?;
        let object = serde_json::from_str(&body)
            .map_err(|e| StorageError::Corrupt(key.clone(), e.to_string()))?;
        let body = Arc::from(body);
        let previous: Option<String> = row.try_get(6)?;
        let previous = previous
            .map(|p| serde_json::from_str::<serde_json::Value>(&p))
            .transpose()
            .map_err(|e| StorageError::Corrupt(key.clone(), e.to_string()))?
            .map(Arc::new);
        out.push(keep(Change {
            revision: row.try_get(0)?,
            event,
            key,
            object: Arc::new(object),
            body,
            previous,
        }));
    }
    Ok(out)
}
