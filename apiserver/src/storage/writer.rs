//! Group commit: one task owns all writes of this process. It takes the queued requests (up to
//! [`MAX_BATCH`]) into one database transaction, so concurrent writers share one fsync.
//!
//! Inside the transaction it first locks the `ferry_meta` row (the same lock every ferry
//! process takes), reads the global revision, checks every request's preconditions against the
//! database and the batch's own earlier writes, hands out consecutive revisions to the requests
//! that pass, writes objects and change-log rows, stores the new revision and commits. A request
//! whose precondition fails gets its error and consumes no revision; a database failure fails
//! the whole batch and nothing is written. Revisions are therefore strictly increasing in
//! commit order and without gaps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Row, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::change::{Change, EventType};
use super::engine::Engine;
use super::error::StorageError;
use super::fault::Faults;
use super::key::ObjectKey;
use super::txn::WriteOp;

/// Most requests committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// A queued write: its operations (all or nothing) and where to send the outcome.
pub struct WriteRequest {
    /// The operations.
    pub ops: Vec<WriteOp>,
    /// The committed changes, or why nothing was written.
    pub reply: oneshot::Sender<Result<Vec<Arc<Change>>, StorageError>>,
}

/// The state of a key as the batch sees it: `(revision, body)` or absent.
type Current = Option<(i64, Arc<Value>)>;

/// Runs the writer until every sender is gone or `stop` fires, handing committed changes to
/// `publish`.
pub async fn run(
    pool: AnyPool,
    engine: Engine,
    faults: Faults,
    mut requests: mpsc::Receiver<WriteRequest>,
    stop: CancellationToken,
    publish: impl Fn(&[Arc<Change>]),
) {
    // The writer keeps one connection: taking it from the pool for every batch costs a
    // health-check round trip each time.
    let mut held: Option<PoolConnection<Any>> = None;
    loop {
        let first = tokio::select! {
            request = requests.recv() => request,
            // On close: commit what is already queued, then give the connection back.
            () = stop.cancelled() => requests.try_recv().ok(),
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let mut ops: Vec<&[WriteOp]> = batch.iter().map(|r| r.ops.as_slice()).collect();
        let outcome = commit_on(&pool, &mut held, engine, &faults, &mut ops).await;
        match outcome {
            Ok(results) => {
                let mut committed: Vec<Arc<Change>> = Vec::new();
                for changes in results.iter().flatten() {
                    committed.extend(changes.iter().cloned());
                }
                publish(&committed);
                for (request, result) in batch.into_iter().zip(results) {
                    // A caller that went away (its request was cancelled) needs no answer; the
                    // write is committed either way.
                    if request.reply.send(result).is_err() {
                        tracing::debug!("a committed write's caller had gone away");
                    }
                }
            }
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(error = %message, requests = batch.len(), "a write batch failed; nothing of it was written");
                for request in batch {
                    if request
                        .reply
                        .send(Err(StorageError::Unavailable(message.clone())))
                        .is_err()
                    {
                        tracing::debug!("a failed write's caller had gone away");
                    }
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Rows per multi-row statement (SQLite allows 32,766 parameters; 8 per change row).
pub(super) const CHUNK: usize = 500;

/// Parameters per change-log row.
const COLUMNS: usize = 8;

/// `($1, $2, $3), ($4, $5, $6), ...` for `rows` rows of `width` parameters.
fn placeholders(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * width + c + 1));
        }
        out.push(')');
    }
    out
}

/// `{head} (($1, $2, $3), ...))` with every key's resource, namespace and name bound.
pub(super) fn keys_query<'q>(
    head: &str,
    keys: &'q [&ObjectKey],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let sql = format!("{head} {})", placeholders(keys.len(), 3));
    // Only the number of placeholders varies; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for key in keys {
        query = query
            .bind(&key.resource)
            .bind(&key.namespace)
            .bind(&key.name);
    }
    query
}

/// Objects by key; completed by [`keys_query`] with the keys' placeholders.
pub(super) const SELECT_BY_KEYS: &str = "SELECT resource, namespace, name, revision, body FROM objects WHERE (resource, namespace, name) IN (VALUES";

/// A row of [`SELECT_BY_KEYS`]: the key, revision and parsed body.
pub(super) fn keyed_row(row: &sqlx::any::AnyRow) -> Result<(ObjectKey, i64, Value), StorageError> {
    let key = ObjectKey::new(
        row.try_get::<String, _>(0)?,
        row.try_get::<String, _>(1)?,
        row.try_get::<String, _>(2)?,
    );
    let revision: i64 = row.try_get(3)?;
    let body: String = row.try_get(4)?;
    let value: Value = serde_json::from_str(&body)
        .map_err(|e| StorageError::Corrupt(key.clone(), e.to_string()))?;
    Ok((key, revision, value))
}

/// Reads the current state of every key the batch touches, in a few statements.
async fn prefetch(
    tx: &mut Transaction<'_, Any>,
    batch: &[&[WriteOp]],
) -> Result<HashMap<ObjectKey, Current>, StorageError> {
    let mut keys: Vec<&ObjectKey> = batch
        .iter()
        .flat_map(|ops| ops.iter().map(WriteOp::key))
        .collect();
    keys.sort();
    keys.dedup();
    let mut found: HashMap<ObjectKey, Current> =
        keys.iter().map(|k| ((*k).clone(), None)).collect();
    for chunk in keys.chunks(CHUNK) {
        let query = keys_query(SELECT_BY_KEYS, chunk);
        for row in query.fetch_all(&mut **tx).await? {
            let (key, revision, value) = keyed_row(&row)?;
            found.insert(key, Some((revision, Arc::new(value))));
        }
    }
    Ok(found)
}

fn with_revision(mut object: Value, revision: i64) -> Value {
    if let Some(meta) = object.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()))
    }) && let Some(meta) = meta.as_object_mut()
    {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    object
}

/// Plans one request against the batch's view; `Err` leaves the view untouched.
fn plan(
    overlay: &HashMap<ObjectKey, Current>,
    ops: &[WriteOp],
    first_revision: i64,
) -> Result<Vec<Arc<Change>>, StorageError> {
    let mut local: HashMap<ObjectKey, Current> = HashMap::new();
    let mut changes = Vec::with_capacity(ops.len());
    let mut revision = first_revision - 1;
    for op in ops {
        let key = op.key();
        let current = match local.get(key) {
            Some(c) => c.clone(),
            None => overlay.get(key).cloned().flatten(),
        };
        if let WriteOp::Require { .. } = op {
            match &current {
                Some((_, object)) if !object["metadata"]["deletionTimestamp"].is_string() => {
                    continue;
                }
                Some(_) => return Err(StorageError::Terminating(key.clone())),
                None => return Err(StorageError::NotFound(key.clone())),
            }
        }
        let (event, object) = match (op, &current) {
            (WriteOp::Create { .. }, Some(_)) => {
                return Err(StorageError::AlreadyExists(key.clone()));
            }
            (WriteOp::Create { object, .. }, None) => (EventType::Added, object.clone()),
            (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => {
                return Err(StorageError::NotFound(key.clone()));
            }
            (
                WriteOp::Update {
                    expected: Some(e), ..
                }
                | WriteOp::Delete {
                    expected: Some(e), ..
                },
                Some((found, _)),
            ) if e != found => {
                return Err(StorageError::Conflict {
                    key: key.clone(),
                    expected: *e,
                    found: *found,
                });
            }
            (WriteOp::Update { object, .. }, Some(_)) => (EventType::Modified, object.clone()),
            (WriteOp::Delete { .. }, Some((_, last))) => (EventType::Deleted, (**last).clone()),
            (WriteOp::Require { .. }, _) => continue,
        };
        revision += 1;
        let object = Arc::new(with_revision(object, revision));
        let previous = match (event, &current) {
            (EventType::Modified, Some((_, before)))
                if ferry_schema::selector::selection_changed(before, &object) =>
            {
                Some(before.clone())
            }
            _ => None,
        };
        local.insert(
            key.clone(),
            match event {
                EventType::Deleted => None,
                _ => Some((revision, object.clone())),
            },
        );
        let body = Arc::from(object.to_string());
        changes.push(Arc::new(Change {
            revision,
            event,
            key: key.clone(),
            object,
            body,
            previous,
        }));
    }
    Ok(changes)
}

/// Binds the eight change-log columns of each change, in order.
fn bind_change_rows<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    changes: &'q [Arc<Change>],
    committed_ms: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    for change in changes {
        for column in 0..COLUMNS {
            query = bind_column(query, change, column, committed_ms);
        }
    }
    query
}

/// Binds one change-log column of a change: 0 revision, 1 resource, 2 namespace, 3 name,
/// 4 event, 5 body, 6 committed_ms, 7 previous.
fn bind_column<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    change: &'q Change,
    column: usize,
    committed_ms: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let key = &change.key;
    match column {
        0 => query.bind(change.revision),
        1 => query.bind(&key.resource),
        2 => query.bind(&key.namespace),
        3 => query.bind(&key.name),
        4 => query.bind(change.event.as_str()),
        5 => query.bind(&*change.body),
        6 => query.bind(committed_ms),
        _ => query.bind(change.previous.as_ref().map(|p| p.to_string())),
    }
}

/// Writes the change-log rows, the final state of every touched object and the new revision
/// (and, on PostgreSQL, the notification): in one round trip for batches of up to [`CHUNK`]
/// changes (the API's group commits), else in chunked statements (a large GitOps commit, where
/// one statement with tens of thousands of parameters is slower than a few).
async fn write_batch(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    changes: &[Arc<Change>],
    committed_ms: i64,
    last: i64,
) -> Result<(), StorageError> {
    // CHUNK changes bind 8 values each: well under SQLite's 32,766 parameters.
    if changes.len() <= CHUNK {
        return write_in_one(tx, engine, changes, committed_ms, last).await;
    }
    write_changes(tx, changes, committed_ms).await?;
    sqlx::query("UPDATE ferry_meta SET revision = $1 WHERE id = 1")
        .bind(last)
        .execute(&mut **tx)
        .await?;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_notify($2, $1)")
            .bind(last.to_string())
            .bind(super::listener::CHANNEL)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The whole write of a batch as one command. SQLite runs it as a few statements sent
/// together; PostgreSQL, which takes one statement per prepared query, as data-modifying
/// `WITH` clauses.
///
/// On PostgreSQL each change binds its eight values once and the object rows refer to the
/// numbered parameters of their key's last change, so every body travels once. On SQLite the
/// placeholders are anonymous `?`, bound in the order they appear: SQLite resolves a numbered
/// `$N` by a linear search of the names seen so far, both while parsing and when sqlx asks
/// each parameter's name, which is quadratic in a batch of thousands of parameters (it was
/// 7% of the apiserver's CPU under the controllers' density load); `?` costs nothing to
/// resolve, and the object rows bind their key's values a second time instead.
async fn write_in_one(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    changes: &[Arc<Change>],
    committed_ms: i64,
    last: i64,
) -> Result<(), StorageError> {
    let mut last_of: HashMap<&ObjectKey, usize> = HashMap::new();
    for (i, change) in changes.iter().enumerate() {
        last_of.insert(&change.key, i);
    }
    let mut finals: Vec<usize> = last_of.into_values().collect();
    finals.sort_unstable();
    // Column `c` of change `i` (0 revision, 1 resource, 2 namespace, 3 name, 4 event, 5 body,
    // 6 committed_ms, 7 previous), in the order the SQL text names them: what SQLite binds.
    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut row = |i: usize, cols: &[usize]| {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match engine {
                Engine::Sqlite => {
                    order.push((i, *c));
                    "?".to_string()
                }
                Engine::Postgres => format!("${}", i * COLUMNS + c + 1),
            })
            .collect();
        format!("({})", cells.join(", "))
    };
    let all: Vec<String> = (0..changes.len())
        .map(|i| row(i, &[0, 1, 2, 3, 4, 5, 6, 7]))
        .collect();
    let upserts: Vec<String> = finals
        .iter()
        .filter(|i| changes[**i].event != EventType::Deleted)
        .map(|i| row(*i, &[1, 2, 3, 0, 5]))
        .collect();
    let deletes: Vec<String> = finals
        .iter()
        .filter(|i| changes[**i].event == EventType::Deleted)
        .map(|i| row(*i, &[1, 2, 3]))
        .collect();
    let revision_param = changes.len() * COLUMNS + 1;
    let insert_changes = format!(
        "INSERT INTO changes (revision, resource, namespace, name, event, body, committed_ms, previous) VALUES {}",
        all.join(", ")
    );
    let upsert_objects = (!upserts.is_empty()).then(|| {
        format!(
            "INSERT INTO objects (resource, namespace, name, revision, body) VALUES {} \
             ON CONFLICT (resource, namespace, name) DO UPDATE SET revision = excluded.revision, body = excluded.body",
            upserts.join(", ")
        )
    });
    let delete_objects = (!deletes.is_empty()).then(|| {
        format!(
            "DELETE FROM objects WHERE (resource, namespace, name) IN (VALUES {})",
            deletes.join(", ")
        )
    });
    let set_revision = match engine {
        Engine::Sqlite => "UPDATE ferry_meta SET revision = ? WHERE id = 1".to_string(),
        Engine::Postgres => {
            format!("UPDATE ferry_meta SET revision = ${revision_param} WHERE id = 1")
        }
    };
    let statements = [
        Some(insert_changes),
        upsert_objects,
        delete_objects,
        Some(set_revision),
    ];
    let sql = match engine {
        Engine::Sqlite => statements
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(";\n"),
        Engine::Postgres => {
            let clauses: Vec<String> = statements
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(n, statement)| format!("w{n} AS ({statement})"))
                .collect();
            format!(
                "WITH {} SELECT pg_notify(${}, ${})",
                clauses.join(", "),
                revision_param + 1,
                revision_param + 2
            )
        }
    };
    // Only the shape of the statement varies with the batch; every value is bound.
    let query = sqlx::query(sqlx::AssertSqlSafe(sql));
    let query = match engine {
        Engine::Sqlite => order
            .iter()
            .fold(query, |q, (i, c)| {
                bind_column(q, &changes[*i], *c, committed_ms)
            })
            .bind(last),
        Engine::Postgres => bind_change_rows(query, changes, committed_ms)
            .bind(last)
            .bind(super::listener::CHANNEL)
            .bind(last.to_string()),
    };
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Writes the final state of every touched object and every change-log row, in a few
/// multi-row statements (batches too large for one statement).
async fn write_changes(
    tx: &mut Transaction<'_, Any>,
    changes: &[Arc<Change>],
    committed_ms: i64,
) -> Result<(), StorageError> {
    // Only the last change of each key decides its row.
    let mut last: HashMap<&ObjectKey, &Arc<Change>> = HashMap::new();
    for change in changes {
        last.insert(&change.key, change);
    }
    let mut upserts: Vec<&Arc<Change>> = Vec::new();
    let mut deletes: Vec<&ObjectKey> = Vec::new();
    for (key, change) in &last {
        match change.event {
            EventType::Deleted => deletes.push(key),
            _ => upserts.push(change),
        }
    }
    for chunk in upserts.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO objects (resource, namespace, name, revision, body) VALUES {} \
             ON CONFLICT (resource, namespace, name) DO UPDATE SET revision = excluded.revision, body = excluded.body",
            placeholders(chunk.len(), 5)
        );
        // Only the number of placeholders varies; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for change in chunk {
            let key = &change.key;
            query = query
                .bind(&key.resource)
                .bind(&key.namespace)
                .bind(&key.name)
                .bind(change.revision)
                .bind(&*change.body);
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in deletes.chunks(CHUNK) {
        let query = keys_query(
            "DELETE FROM objects WHERE (resource, namespace, name) IN (VALUES",
            chunk,
        );
        query.execute(&mut **tx).await?;
    }
    for chunk in changes.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO changes (revision, resource, namespace, name, event, body, committed_ms, previous) VALUES {}",
            placeholders(chunk.len(), COLUMNS)
        );
        // Only the number of placeholders varies; every value is bound.
        let query = bind_change_rows(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk, committed_ms);
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Commits a batch; the outer error is a database failure (nothing written), the inner ones
/// are per-request precondition failures.
/// Commits a batch on the kept connection, or a fresh one from the pool (then kept). A failed
/// connection is not reused. A kept one that failed before anything was sent to be written may
/// only be stale (the database restarted): the batch is tried once more on a fresh one.
async fn commit_on(
    pool: &AnyPool,
    held: &mut Option<PoolConnection<Any>>,
    engine: Engine,
    faults: &Faults,
    batch: &mut [&[WriteOp]],
) -> Result<Vec<Result<Vec<Arc<Change>>, StorageError>>, StorageError> {
    loop {
        let reused = held.is_some();
        let mut conn = match held.take() {
            Some(conn) => conn,
            None => pool.acquire().await?,
        };
        match commit(&mut conn, engine, faults, batch).await {
            Ok(results) => {
                *held = Some(conn);
                return Ok(results);
            }
            Err(failed) => {
                conn.close_on_drop();
                // The next pass takes a fresh connection, so this retries at most once.
                if !(reused && failed.before_writes) {
                    return Err(failed.error);
                }
            }
        }
    }
}

/// A batch that failed as a whole.
struct Failed {
    error: StorageError,
    /// Whether it failed before any write was sent (so it surely wrote nothing).
    before_writes: bool,
}

impl<E: Into<StorageError>> From<E> for Failed {
    fn from(error: E) -> Self {
        Failed {
            error: error.into(),
            before_writes: false,
        }
    }
}

fn early<E: Into<StorageError>>(error: E) -> Failed {
    Failed {
        error: error.into(),
        before_writes: true,
    }
}

async fn commit(
    conn: &mut PoolConnection<Any>,
    engine: Engine,
    faults: &Faults,
    batch: &mut [&[WriteOp]],
) -> Result<Vec<Result<Vec<Arc<Change>>, StorageError>>, Failed> {
    let mut tx = conn.begin().await.map_err(early)?;
    // Take the write lock before reading the revision: every ferry process does the same.
    // (The lock and the read are one statement: fewer round trips per batch.)
    let current: i64 =
        sqlx::query("UPDATE ferry_meta SET revision = revision WHERE id = 1 RETURNING revision")
            .fetch_one(&mut *tx)
            .await
            .map_err(early)?
            .try_get(0)
            .map_err(early)?;
    let mut next = current + 1;
    let mut overlay = prefetch(&mut tx, batch).await.map_err(early)?;
    let mut results = Vec::with_capacity(batch.len());
    for ops in batch.iter() {
        match plan(&overlay, ops, next) {
            Ok(changes) => {
                for change in &changes {
                    let state = match change.event {
                        EventType::Deleted => None,
                        _ => Some((change.revision, change.object.clone())),
                    };
                    overlay.insert(change.key.clone(), state);
                }
                next += changes.len() as i64;
                results.push(Ok(changes));
            }
            Err(StorageError::Unavailable(message)) => {
                return Err(early(StorageError::Unavailable(message)));
            }
            Err(error) => results.push(Err(error)),
        }
    }
    if next == current + 1 {
        tx.rollback().await?;
        return Ok(results);
    }
    let committed_ms = now_ms();
    let mut to_write: Vec<Arc<Change>> = Vec::new();
    for changes in results.iter().flatten() {
        to_write.extend(changes.iter().cloned());
    }
    write_batch(&mut tx, engine, &to_write, committed_ms, next - 1).await?;
    faults.before_commit(to_write.len()).await;
    tx.commit().await?;
    Ok(results)
}
