//! What the node side's controllers will lean on, driven through the `kube` crate on SQLite and
//! PostgreSQL: paged lists with selectors and in the metadata shape, continue tokens that
//! expire, watches and reflectors with selectors that objects start and stop matching, dry
//! runs that write nothing, and writes that change nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_testkit::TempPostgres;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

mod common;

use common::{Server, server_on};

/// Runs `test` on SQLite, then on a throwaway PostgreSQL.
async fn on_both<F, Fut>(test: F)
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    eprintln!("on SQLite");
    test(server_on(None).await).await;
    if let Some(pg) = TempPostgres::start() {
        eprintln!("on PostgreSQL");
        test(server_on(Some(pg.database("kube"))).await).await;
    }
}

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"v": "1"}}),
    )
    .expect("configmap")
}

async fn namespace(s: &Server, name: &str) {
    let api: Api<Namespace> = Api::all(s.client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

/// Creates `count` ConfigMaps `cm-0000...`, every other one labelled `parity=odd`, 16 at a time.
async fn fill(api: &Api<ConfigMap>, count: usize) {
    let mut pending = futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let parity = if i % 2 == 1 { "odd" } else { "even" };
                api.create(
                    &PostParams::default(),
                    &cm(&format!("cm-{i:04}"), json!({"parity": parity})),
                )
                .await
            }
        })
        .buffer_unordered(16);
    while let Some(created) = pending.next().await {
        created.expect("create");
    }
}

/// Pages through a list with `limit`, returning every name and how many pages it took.
async fn page_through(api: &Api<ConfigMap>, params: ListParams) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut pages = 0;
    let mut params = params;
    loop {
        let page = api.list(&params).await.expect("page");
        pages += 1;
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return (names, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_lists_with_selectors_reach_the_end() {
    on_both(|s| async move {
        namespace(&s, "paging").await;
        let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "paging");
        fill(&api, 1_200).await;

        // A label selector, 100 a page: every odd one, once, in 6 pages.
        let (odd, pages) =
            page_through(&api, ListParams::default().labels("parity=odd").limit(100)).await;
        assert_eq!(odd.len(), 600);
        assert_eq!(
            odd.iter().collect::<BTreeSet<_>>().len(),
            600,
            "no object twice"
        );
        assert_eq!(pages, 6);
        // A field selector.
        let (rest, _) = page_through(
            &api,
            ListParams::default()
                .fields("metadata.name!=cm-0007")
                .limit(250),
        )
        .await;
        assert_eq!(rest.len(), 1_199);
        // No selector: remainingItemCount says what is left; with one, it is absent.
        let first = api
            .list(&ListParams::default().limit(100))
            .await
            .expect("page");
        assert_eq!(first.metadata.remaining_item_count, Some(1_100));
        let filtered = api
            .list(&ListParams::default().labels("parity=odd").limit(100))
            .await
            .expect("page");
        assert_eq!(filtered.metadata.remaining_item_count, None);
        // Every page of one list reports the list's revision.
        let second = api
            .list(
                &ListParams::default()
                    .limit(100)
                    .continue_token(first.metadata.continue_.as_deref().unwrap_or_default()),
            )
            .await
            .expect("second page");
        assert_eq!(
            second.metadata.resource_version,
            first.metadata.resource_version
        );

        // The metadata shape (PartialObjectMetadataList) pages too.
        let mut params = ListParams::default().labels("parity=even").limit(70);
        let mut seen = 0;
        loop {
            let page = api.list_metadata(&params).await.expect("metadata page");
            seen += page.items.len();
            assert!(page.items.iter().all(|m| {
                m.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l["parity"] == "even")
            }));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        assert_eq!(seen, 600);
        s.cancel.cancel();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_continue_token_is_410_with_a_token_that_goes_on() {
    on_both(|s| async move {
        namespace(&s, "expiry").await;
        let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "expiry");
        fill(&api, 30).await;
        let first = api
            .list(&ListParams::default().limit(10))
            .await
            .expect("page");
        let token = first.metadata.continue_.clone().expect("a continue token");
        // The list's revision leaves the change log.
        for late in ["late-1", "late-2"] {
            api.create(&PostParams::default(), &cm(late, json!({})))
                .await
                .expect("create");
        }
        s.storage.compact(i64::MAX).await.expect("compact");
        let err = api
            .list(&ListParams::default().limit(10).continue_token(&token))
            .await
            .expect_err("expired");
        let kube::Error::Api(status) = err else {
            panic!("not an API error: {err:?}");
        };
        assert_eq!(status.code, 410);
        assert_eq!(status.reason, "Expired");
        assert!(
            status.message.contains("continue parameter is too old"),
            "{}",
            status.message
        );
        // The Status' metadata.continue (what client-go's pager offers to go on with) pages to
        // the end from where the expired token stopped.
        let raw = reqwest_free_get(
            &s.url,
            &format!("/api/v1/namespaces/expiry/configmaps?limit=10&continue={token}"),
        )
        .await;
        let fresh = raw["metadata"]["continue"]
            .as_str()
            .expect("a fresh token")
            .to_owned();
        let (rest, _) =
            page_through(&api, ListParams::default().limit(10).continue_token(&fresh)).await;
        assert_eq!(
            rest.len(),
            22,
            "cm-0010..cm-0029 and the late ones: {rest:?}"
        );
        s.cancel.cancel();
    })
    .await;
}

/// A GET with hyper, for what the kube client does not hand back (a Status' metadata).
async fn reqwest_free_get(base: &str, path: &str) -> serde_json::Value {
    let body = get_text(base, path, "application/json").await;
    serde_json::from_str(&body).expect("json")
}

/// A GET with an Accept header of the caller's choosing; the body as text.
async fn get_text(base: &str, path: &str, accept: &str) -> String {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let request = hyper::Request::get(format!("{base}{path}"))
        .header("Accept", accept)
        .body(http_body_util::Empty::new())
        .expect("request");
    let response = client.request(request).await.expect("get");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_accept_pages_too_and_a_streaming_list_ends_its_initial_events() {
    on_both(|s| async move {
        namespace(&s, "pb").await;
        let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "pb");
        fill(&api, 30).await;
        // client-go's typed clients ask for protobuf and take JSON.
        let accept = "application/vnd.kubernetes.protobuf, application/json";
        let mut token = String::new();
        let mut seen = 0;
        loop {
            let path = format!("/api/v1/namespaces/pb/configmaps?limit=4&labelSelector=parity%3Dodd&continue={token}");
            let page: serde_json::Value =
                serde_json::from_str(&get_text(&s.url, &path, accept).await).expect("json");
            seen += page["items"].as_array().map_or(0, Vec::len);
            match page["metadata"]["continue"].as_str() {
                Some(next) => token = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, 15);
        // sendInitialEvents: every current object as ADDED, then the end-of-initial-events
        // bookmark.
        let path = "/api/v1/namespaces/pb/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1&labelSelector=parity%3Deven";
        let events = get_text(&s.url, path, "application/json").await;
        let lines: Vec<serde_json::Value> = events
            .lines()
            .map(|l| serde_json::from_str(l).expect("event"))
            .collect();
        let added = lines.iter().take_while(|e| e["type"] == "ADDED").count();
        assert_eq!(added, 15);
        assert_eq!(lines[added]["type"], "BOOKMARK");
        assert_eq!(
            lines[added]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_watches_see_objects_start_and_stop_matching() {
    on_both(|s| async move {
        let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        api.create(&PostParams::default(), &cm("a", json!({"app": "web"})))
            .await
            .expect("a");
        api.create(&PostParams::default(), &cm("b", json!({"app": "db"})))
            .await
            .expect("b");
        let start = api
            .list(&ListParams::default())
            .await
            .expect("list")
            .metadata
            .resource_version
            .expect("rv");

        // A reflector with a selector: its store follows what matches.
        let (reader, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher(api.clone(), watcher::Config::default().labels("app=web")),
        )
        .applied_objects()
        .boxed();
        let driver = tokio::spawn(async move {
            let mut stream = stream;
            loop {
                match stream.try_next().await {
                    Ok(Some(_)) => {}
                    Ok(None) => return,
                    Err(e) => eprintln!("the reflector's watch failed (it retries): {e}"),
                }
            }
        });
        reader.wait_until_ready().await.expect("the store fills");
        let names = || -> BTreeSet<String> {
            reader
                .state()
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect()
        };
        assert_eq!(names(), BTreeSet::from(["a".to_owned()]));

        let relabel = |name: &'static str, app: &'static str| {
            let api = api.clone();
            async move {
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"app": app}}})),
                )
                .await
                .expect("relabel");
            }
        };
        relabel("a", "db").await;
        relabel("b", "web").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while names() != BTreeSet::from(["b".to_owned()]) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the store holds {:?}",
                names()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        driver.abort();

        // The same changes read back from the change log by a watch resumed from before them:
        // a stops matching (DELETED, with its last matching labels), b starts (ADDED).
        let mut events = api
            .watch(&WatchParams::default().labels("app=web").timeout(2), &start)
            .await
            .expect("watch")
            .boxed();
        let mut seen = Vec::new();
        while let Some(event) = events.try_next().await.expect("event") {
            match event {
                WatchEvent::Added(c) => {
                    seen.push(format!("ADDED {}", c.metadata.name.unwrap_or_default()))
                }
                WatchEvent::Modified(c) => {
                    seen.push(format!("MODIFIED {}", c.metadata.name.unwrap_or_default()))
                }
                WatchEvent::Deleted(c) => {
                    let labels = c.metadata.labels.unwrap_or_default();
                    seen.push(format!(
                        "DELETED {} app={}",
                        c.metadata.name.unwrap_or_default(),
                        labels["app"]
                    ));
                }
                WatchEvent::Bookmark(_) | WatchEvent::Error(_) => {}
            }
        }
        assert_eq!(seen, ["DELETED a app=web", "ADDED b"]);
        s.cancel.cancel();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_write_nothing_and_no_op_writes_keep_the_revision() {
    on_both(|s| async move {
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        let made = cms.create(&PostParams::default(), &cm("keep", json!({"app": "web"}))).await.expect("create");
        let rv = made.metadata.resource_version.clone();

        // Delete with dryRun in the DeleteOptions body (as the kube crate and kubectl send it).
        cms.delete("keep", &DeleteParams::default().dry_run()).await.expect("dry delete");
        let after = cms.get("keep").await.expect("still there");
        assert_eq!(after.metadata.resource_version, rv);
        cms.delete_collection(&DeleteParams::default().dry_run(), &ListParams::default().labels("app=web"))
            .await
            .expect("dry delete collection");
        assert_eq!(cms.get("keep").await.expect("still there").metadata.resource_version, rv);

        // Patch and scale with dryRun: the answer shows the change, storage does not.
        let dry = PatchParams { dry_run: true, ..PatchParams::default() };
        let answered = cms
            .patch("keep", &dry, &Patch::Merge(json!({"data": {"v": "2"}})))
            .await
            .expect("dry patch");
        assert_eq!(answered.data.as_ref().and_then(|d| d.get("v")).map(String::as_str), Some("2"));
        assert_eq!(cms.get("keep").await.expect("get").metadata.resource_version, rv);

        let deployments: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}
        }))
        .expect("deployment");
        let made = deployments.create(&PostParams::default(), &deployment).await.expect("create");
        let scale = deployments
            .patch_scale("web", &dry, &Patch::Merge(json!({"spec": {"replicas": 5}})))
            .await
            .expect("dry scale");
        assert_eq!(scale.spec.and_then(|s| s.replicas), Some(5));
        let stored = deployments.get("web").await.expect("get");
        assert_eq!(stored.spec.and_then(|s| s.replicas), Some(2));
        assert_eq!(stored.metadata.resource_version, made.metadata.resource_version);

        // A patch that changes nothing keeps the resourceVersion; a later replace with the
        // version read before it does not conflict.
        let before = cms.get("keep").await.expect("get");
        let same = cms
            .patch("keep", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}, "data": {"v": "1"}})))
            .await
            .expect("no-op patch");
        assert_eq!(same.metadata.resource_version, before.metadata.resource_version);
        let mut replaced = before.clone();
        replaced.data = Some([("v".to_owned(), "3".to_owned())].into());
        cms.replace("keep", &PostParams::default(), &replaced).await.expect("replace after a no-op");
        s.cancel.cancel();
    })
    .await;
}
