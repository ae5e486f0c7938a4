//! The multi-object transaction (`POST /apis/ferry.dev/v1/transactions`), through the `kube`
//! client over the in-process router, on SQLite and on PostgreSQL: all or nothing, one
//! contiguous range of revisions seen in order by a watch, refusals naming the operation and
//! field, dry runs that write nothing, unchanged objects left alone, stale deletes refused.

use std::sync::Arc;

use ferry_apiserver::api::{ApiState, admission::Admission};
use ferry_apiserver::storage::Storage;
use ferry_testkit::TempPostgres;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Cluster {
    client: kube::Client,
    storage: Storage,
}

async fn cluster(url: &str) -> Cluster {
    let storage = Storage::open(url).await.expect("storage");
    let admission = Admission::default();
    ferry_apiserver::bootstrap::system_namespaces(&storage, &admission)
        .await
        .expect("namespaces");
    let state = Arc::new(ApiState {
        storage: storage.clone(),
        admission,
        shutdown: CancellationToken::new(),
        ranges: Default::default(),
        metrics: Default::default(),
    });
    let client = kube::Client::new(ferry_apiserver::api::router(state), "default");
    Cluster { client, storage }
}

impl Cluster {
    /// Posts a transaction; `Ok(results)` or `Err((code, status))`.
    async fn transaction(
        &self,
        operations: Vec<Value>,
        dry_run: bool,
    ) -> Result<Value, (u16, Value)> {
        let body =
            json!({"apiVersion": "ferry.dev/v1", "kind": "Transaction", "operations": operations});
        let uri = format!(
            "/apis/ferry.dev/v1/transactions?fieldManager=test{}",
            if dry_run { "&dryRun=All" } else { "" }
        );
        let request = http::Request::post(uri)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).expect("json"))
            .expect("request");
        match self.client.request::<Value>(request).await {
            Ok(v) => Ok(v["status"].clone()),
            Err(kube::Error::Api(status)) => {
                Err((status.code, serde_json::to_value(&*status).expect("status")))
            }
            Err(e) => panic!("transport: {e}"),
        }
    }

    async fn names(&self, namespace: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), namespace);
        match api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn cm(namespace: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {"v": value}})
}

fn ns(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

async fn all_or_nothing(c: Cluster) {
    let before = c.storage.revision().await.expect("revision");
    // One bad object (an invalid name) refuses everything, named by its operation.
    let refused = c
        .transaction(
            vec![
                json!({"apply": cm("shop", "a", "1")}),
                json!({"apply": ns("shop")}),
                json!({"apply": cm("shop", "Not_Valid", "1")}),
                json!({"apply": cm("shop", "b", "1")}),
            ],
            false,
        )
        .await
        .expect_err("refused");
    assert_eq!(refused.0, 422);
    let causes = refused.1["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        causes.iter().any(|c| c["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("operations[2]"))
            && c["message"]
                .as_str()
                .is_some_and(|m| m.contains("ConfigMap shop/Not_Valid"))),
        "{causes:#?}"
    );
    assert_eq!(
        c.storage.revision().await.expect("revision"),
        before,
        "nothing written"
    );
    assert!(c.names("shop").await.is_empty());

    // A dry run admits and writes nothing.
    let preview = c
        .transaction(
            vec![
                json!({"apply": ns("shop")}),
                json!({"apply": cm("shop", "a", "1")}),
            ],
            true,
        )
        .await
        .expect("dry run");
    assert_eq!(preview["results"][1]["action"], "created");
    assert_eq!(c.storage.revision().await.expect("revision"), before);

    // The good transaction: the namespace first (though listed second), one contiguous range
    // of revisions, seen in that order by a watch.
    let mut watch = c.storage.watch(before);
    let done = c
        .transaction(
            vec![
                json!({"apply": cm("shop", "a", "1")}),
                json!({"apply": ns("shop")}),
                json!({"apply": cm("shop", "b", "1")}),
            ],
            false,
        )
        .await
        .expect("applied");
    let results = done["results"].as_array().expect("results");
    assert!(
        results.iter().all(|r| r["action"] == "created"),
        "{results:#?}"
    );
    let revision: i64 = done["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("revision");
    assert_eq!(revision, before + 3);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let change = watch.next().await.expect("change");
        seen.push((change.revision, change.key.name.clone()));
    }
    assert_eq!(
        seen,
        vec![
            (before + 1, "shop".to_owned()),
            (before + 2, "a".to_owned()),
            (before + 3, "b".to_owned())
        ]
    );

    // Re-applying the same manifests writes nothing; a changed one is an update.
    let again = c
        .transaction(
            vec![
                json!({"apply": cm("shop", "a", "1")}),
                json!({"apply": cm("shop", "b", "2")}),
            ],
            false,
        )
        .await
        .expect("applied");
    assert_eq!(again["results"][0]["action"], "unchanged");
    assert_eq!(again["results"][1]["action"], "updated");
    assert_eq!(c.storage.revision().await.expect("revision"), before + 4);

    // A delete with a stale resourceVersion refuses the whole transaction.
    let stale = c
        .transaction(
            vec![
                json!({"apply": cm("shop", "c", "1")}),
                json!({"delete": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "a", "resourceVersion": "1"}}),
            ],
            false,
        )
        .await
        .expect_err("stale");
    assert_eq!(stale.0, 409, "{:#}", stale.1);
    assert!(!c.names("shop").await.contains(&"c".to_owned()));

    // Two Services asking for one ClusterIP: refused before anything is written.
    let svc = |name: &str| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}});
    let clash = c
        .transaction(
            vec![json!({"apply": svc("x")}), json!({"apply": svc("y")})],
            true,
        )
        .await
        .expect_err("clash");
    assert_eq!(clash.0, 422);
    assert!(
        clash.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("already allocated")),
        "{:#}",
        clash.1
    );

    // Deleting the namespace takes its contents in the same transaction.
    let gone = c
        .transaction(
            vec![json!({"delete": {"apiVersion": "v1", "kind": "Namespace", "name": "shop"}})],
            false,
        )
        .await
        .expect("deleted");
    assert_eq!(gone["results"][0]["action"], "deleted");
    assert!(c.names("shop").await.is_empty());

    // Malformed requests are 400s.
    let bad = c
        .transaction(vec![json!({"frobnicate": {}})], false)
        .await
        .expect_err("bad");
    assert_eq!(bad.0, 400);
    c.storage.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    all_or_nothing(cluster(&format!("sqlite://{}", dir.path().join("t.db").display())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_on_postgres() {
    let Some(pg) = TempPostgres::start() else {
        return;
    };
    all_or_nothing(cluster(&pg.database("txn")).await).await;
}
