//! The storage suite, run on both engines: SQLite (a temp file) and PostgreSQL (a throwaway
//! server from `ferry-testkit`). Every scenario runs on a fresh database of each.

use std::collections::HashSet;
use std::time::Duration;

use ferry_apiserver::storage::{EventType, ObjectKey, Storage, StorageError, WriteOp};
use ferry_testkit::TempPostgres;
use serde_json::{Value, json};

fn cm(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"v": data}})
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("configmaps", "default", name)
}

fn create(name: &str) -> WriteOp {
    WriteOp::Create {
        key: key(name),
        object: cm(name, "1"),
    }
}

async fn crud_and_revisions(s: Storage) {
    let start = s.revision().await.expect("revision");
    let changes = s.write(vec![create("a")]).await.expect("create");
    assert_eq!(changes[0].revision, start + 1);
    assert_eq!(changes[0].event, EventType::Added);
    let got = s.get(&key("a")).await.expect("get").expect("exists");
    assert_eq!(got.revision, start + 1);
    assert_eq!(
        got.object["metadata"]["resourceVersion"],
        json!((start + 1).to_string())
    );
    let changes = s
        .write(vec![WriteOp::Update {
            key: key("a"),
            object: cm("a", "2"),
            expected: Some(start + 1),
        }])
        .await
        .expect("update");
    assert_eq!(changes[0].revision, start + 2);
    assert_eq!(
        s.get(&key("a")).await.expect("get").expect("exists").object["data"]["v"],
        "2"
    );
    let changes = s
        .write(vec![WriteOp::Delete {
            key: key("a"),
            expected: None,
        }])
        .await
        .expect("delete");
    assert_eq!(changes[0].event, EventType::Deleted);
    assert_eq!(
        changes[0].object["data"]["v"], "2",
        "a delete carries the last state"
    );
    assert_eq!(
        changes[0].object["metadata"]["resourceVersion"],
        json!((start + 3).to_string())
    );
    assert!(s.get(&key("a")).await.expect("get").is_none());
    assert_eq!(s.revision().await.expect("revision"), start + 3);
}

async fn preconditions_consume_no_revision(s: Storage) {
    s.write(vec![create("a")]).await.expect("create");
    let before = s.revision().await.expect("revision");
    assert!(matches!(
        s.write(vec![create("a")]).await,
        Err(StorageError::AlreadyExists(_))
    ));
    let update_missing = WriteOp::Update {
        key: key("zz"),
        object: cm("zz", "1"),
        expected: None,
    };
    assert!(matches!(
        s.write(vec![update_missing]).await,
        Err(StorageError::NotFound(_))
    ));
    let stale = WriteOp::Update {
        key: key("a"),
        object: cm("a", "2"),
        expected: Some(before - 1),
    };
    assert!(matches!(
        s.write(vec![stale]).await,
        Err(StorageError::Conflict { .. })
    ));
    assert_eq!(s.revision().await.expect("revision"), before);
}

async fn transactions_are_all_or_nothing(s: Storage) {
    s.write(vec![create("exists")]).await.expect("create");
    let before = s.revision().await.expect("revision");
    let outcome = s
        .write(vec![create("new-1"), create("new-2"), create("exists")])
        .await;
    assert!(matches!(outcome, Err(StorageError::AlreadyExists(_))));
    assert!(
        s.get(&key("new-1")).await.expect("get").is_none(),
        "nothing of a failed transaction is written"
    );
    assert_eq!(s.revision().await.expect("revision"), before);
    let changes = s
        .write(vec![
            create("b"),
            WriteOp::Update {
                key: key("b"),
                object: cm("b", "2"),
                expected: None,
            },
            WriteOp::Delete {
                key: key("exists"),
                expected: None,
            },
        ])
        .await
        .expect("transaction");
    let revisions: Vec<i64> = changes.iter().map(|c| c.revision).collect();
    assert_eq!(
        revisions,
        vec![before + 1, before + 2, before + 3],
        "one contiguous range"
    );
    // A Require precondition writes nothing and consumes no revision; a missing key fails all.
    let at = s.revision().await.expect("revision");
    let changes = s
        .write(vec![WriteOp::Require { key: key("b") }, create("c")])
        .await
        .expect("required object exists");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].revision, at + 1);
    let outcome = s
        .write(vec![
            WriteOp::Require {
                key: key("missing"),
            },
            create("d"),
        ])
        .await;
    assert!(matches!(outcome, Err(StorageError::NotFound(_))));
    assert!(s.get(&key("d")).await.expect("get").is_none());
}

async fn concurrent_writers_get_gap_free_revisions(s: Storage) {
    let start = s.revision().await.expect("revision");
    let mut watch = s.watch(start);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..25 {
                let changes = s
                    .write(vec![create(&format!("w{w}-{i}"))])
                    .await
                    .expect("create");
                revisions.push(changes[0].revision);
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task"));
    }
    all.sort();
    let expected: Vec<i64> = (start + 1..=start + 400).collect();
    assert_eq!(all, expected, "every revision once, none skipped");
    for want in start + 1..=start + 400 {
        let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch delivers")
            .expect("change");
        assert_eq!(
            change.revision, want,
            "the watch sees every change in order"
        );
    }
}

async fn lists_are_paged_and_consistent(s: Storage) {
    let mut ops: Vec<WriteOp> = (0..25).map(|i| create(&format!("item-{i:02}"))).collect();
    ops.push(WriteOp::Create {
        key: ObjectKey::new("configmaps", "other", "x"),
        object: cm("x", "1"),
    });
    s.write(ops).await.expect("create");
    let all = s.list("configmaps", None, None, 0).await.expect("list");
    assert_eq!(all.items.len(), 26);
    assert_eq!(all.revision, s.revision().await.expect("revision"));
    let mut names = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = s
            .list(
                "configmaps",
                Some("default"),
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                10,
            )
            .await
            .expect("page");
        names.extend(page.items.iter().map(|i| {
            i.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }));
        match page.more_after {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    // The joined form pages the same way and holds the same bodies.
    let mut joined_names = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = s
            .list_joined(
                "configmaps",
                Some("default"),
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                10,
            )
            .await
            .expect("joined page");
        let items: Vec<Value> =
            serde_json::from_str(&format!("[{}]", page.items)).expect("joined bodies are JSON");
        joined_names.extend(items.iter().map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }));
        match page.more_after {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    let everything = s
        .list_joined("configmaps", None, None, 0)
        .await
        .expect("joined");
    let all_items: Vec<Value> =
        serde_json::from_str(&format!("[{}]", everything.items)).expect("JSON");
    assert_eq!(all_items.len(), 26);
    assert!(
        s.list_joined("nothing", None, None, 0)
            .await
            .expect("empty")
            .items
            .is_empty()
    );
    assert_eq!(names.len(), 25);
    assert_eq!(joined_names, names);
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 25);
    assert_eq!(names[0], "item-00");
    assert_eq!(names[24], "item-24");
}

async fn watches_resume_and_expire(s: Storage) {
    let start = s.revision().await.expect("revision");
    for i in 0..5 {
        s.write(vec![create(&format!("r{i}"))])
            .await
            .expect("create");
    }
    let mut watch = s.watch(start + 2);
    let first = watch.next().await.expect("resumed");
    assert_eq!(first.revision, start + 3);
    assert_eq!(first.key.name, "r2");
    // Compact everything older than now: a watch from the start is then expired.
    let compacted = s.compact(i64::MAX).await.expect("compact");
    assert_eq!(compacted, start + 4, "the newest change is kept");
    let mut old = s.watch(start);
    assert!(matches!(
        old.next().await,
        Err(StorageError::Expired { .. })
    ));
    let mut recent = s.watch(start + 4);
    s.write(vec![create("after")]).await.expect("create");
    let next = recent.next().await.expect("recent watch works");
    assert_eq!(next.revision, start + 5);
}

async fn data_survives_reopening(url: &str) {
    let s = Storage::open(url).await.expect("open");
    s.write(vec![create("durable")]).await.expect("create");
    let revision = s.revision().await.expect("revision");
    s.close().await;
    let s = Storage::open(url).await.expect("reopen");
    assert!(s.get(&key("durable")).await.expect("get").is_some());
    let changes = s.write(vec![create("next")]).await.expect("create");
    assert_eq!(changes[0].revision, revision + 1, "the revision continues");
    s.close().await;
}

async fn suite(open: impl AsyncFn(&str) -> String) {
    crud_and_revisions(Storage::open(&open("crud").await).await.expect("open")).await;
    preconditions_consume_no_revision(Storage::open(&open("pre").await).await.expect("open")).await;
    transactions_are_all_or_nothing(Storage::open(&open("txn").await).await.expect("open")).await;
    concurrent_writers_get_gap_free_revisions(
        Storage::open(&open("conc").await).await.expect("open"),
    )
    .await;
    lists_are_paged_and_consistent(Storage::open(&open("list").await).await.expect("open")).await;
    watches_resume_and_expire(Storage::open(&open("watch").await).await.expect("open")).await;
    data_survives_reopening(&open("reopen").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().to_path_buf();
    suite(async |name: &str| format!("sqlite://{}", base.join(format!("{name}.db")).display()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_postgres() {
    let Some(pg) = TempPostgres::start() else {
        return;
    };
    suite(async |name: &str| pg.database(name)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_see_each_others_writes_in_order() {
    let Some(pg) = TempPostgres::start() else {
        return;
    };
    let url = pg.database("shared");
    let a = Storage::open(&url).await.expect("open a");
    let b = Storage::open(&url).await.expect("open b");
    let start = a.revision().await.expect("revision");
    let mut watch = a.watch(start);
    for i in 0..20 {
        let writer = if i % 2 == 0 { &a } else { &b };
        writer
            .write(vec![create(&format!("p{i}"))])
            .await
            .expect("create");
    }
    for i in 0..20 {
        let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("a sees b's writes")
            .expect("change");
        assert_eq!(change.revision, start + 1 + i);
        assert_eq!(change.key.name, format!("p{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_fails_writes_then_recovers_and_watches_resume() {
    let Some(pg) = TempPostgres::start() else {
        return;
    };
    let url = pg.database("restart");
    let s = Storage::open(&url).await.expect("open");
    let start = s.revision().await.expect("revision");
    s.write(vec![create("before")]).await.expect("create");
    let mut watch = s.watch(start);
    assert_eq!(watch.next().await.expect("first change").key.name, "before");

    pg.kill();
    // While the database is down, writes fail as Unavailable (the API's 503), nothing half done.
    let down = s.write(vec![create("during")]).await;
    assert!(
        matches!(down, Err(StorageError::Unavailable(_))),
        "{down:?}"
    );
    assert!(matches!(
        s.get(&key("before")).await,
        Err(StorageError::Unavailable(_))
    ));

    pg.restart();
    // The pool reconnects by itself; the first attempts may still see dead connections.
    let mut written = None;
    for _ in 0..50 {
        match s.write(vec![create("after")]).await {
            Ok(changes) => {
                written = Some(changes);
                break;
            }
            Err(StorageError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let written = written.expect("writes work again after the restart");
    assert_eq!(
        written[0].revision,
        start + 2,
        "the failed write consumed no revision"
    );
    // A watcher resumes from where it was: the next change, none lost, none repeated.
    let next = loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch delivers")
        {
            Ok(change) => break change,
            Err(StorageError::Unavailable(_)) => {
                // A dropped watch is re-established from its last revision, as a client does.
                let at = watch.revision();
                watch = s.watch(at);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        (next.revision, next.key.name.as_str()),
        (start + 2, "after")
    );
    assert!(s.get(&key("during")).await.expect("get").is_none());
}
