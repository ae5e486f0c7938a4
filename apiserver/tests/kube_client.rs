//! The `kube` crate (the client every ferry component uses) against the apiserver: a
//! reflector whose store matches a list, and a watcher that survives a 410 Expired.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

mod common;

use common::server;

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": value}}))
        .expect("configmap")
}

fn names<'a>(items: impl Iterator<Item = &'a ConfigMap>) -> BTreeSet<String> {
    items.filter_map(|c| c.metadata.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_store_matches_a_list() {
    let s = server().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), "1"))
            .await
            .expect("create");
    }
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .applied_objects()
        .boxed();
    let driver = tokio::spawn(async move {
        let mut stream = stream;
        while stream.try_next().await.is_ok_and(|o| o.is_some()) {}
    });
    reader.wait_until_ready().await.expect("the store fills");
    for i in 20..25 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), "1"))
            .await
            .expect("create");
    }
    api.patch(
        "cm-3",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .expect("patch");
    api.delete("cm-4", &DeleteParams::default())
        .await
        .expect("delete");
    let listed = api.list(&ListParams::default()).await.expect("list");
    let want = names(listed.items.iter());
    assert_eq!(want.len(), 24);
    let mut matched = false;
    for _ in 0..100 {
        let state = reader.state();
        let have = names(state.iter().map(|a| a.as_ref()));
        let patched = state
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some("cm-3"))
            .and_then(|c| c.data.as_ref()?.get("v").cloned());
        if have == want && patched.as_deref() == Some("2") {
            matched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matched, "the reflector's store converges to the list");
    driver.abort();
    s.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_survives_410_expired() {
    let s = server().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &cm("first", "1"))
        .await
        .expect("create");
    // Short watches: the watcher reconnects every second from the last revision it saw.
    let config = watcher::Config::default().timeout(1);
    let mut events = watcher(api.clone(), config).boxed();
    let mut inits = 0;
    let mut expired_seen = false;
    let mut last_seen = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut step = 0;
    while tokio::time::Instant::now() < deadline {
        let next = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        match next {
            Ok(Some(Ok(watcher::Event::Init))) => inits += 1,
            Ok(Some(Ok(watcher::Event::InitDone))) if step == 0 => {
                step = 1;
                // Move the revision on elsewhere and compact: the watcher's next resume from its
                // last revision is older than the change log holds (410 Expired).
                let other: Api<ConfigMap> = Api::namespaced(s.client.clone(), "kube-system");
                for i in 0..5 {
                    other
                        .create(&PostParams::default(), &cm(&format!("noise-{i}"), "1"))
                        .await
                        .expect("create");
                }
                s.storage.compact(i64::MAX).await.expect("compact");
            }
            Ok(Some(Ok(watcher::Event::InitDone))) if step == 1 && inits >= 2 => {
                step = 2;
                expired_seen = true;
                api.create(&PostParams::default(), &cm("after-410", "1"))
                    .await
                    .expect("create");
            }
            Ok(Some(Ok(watcher::Event::Apply(obj)))) if step == 2 => {
                last_seen = obj.metadata.name.clone();
                if last_seen.as_deref() == Some("after-410") {
                    break;
                }
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
    }
    assert!(
        expired_seen,
        "the watcher re-listed after the 410 (inits: {inits})"
    );
    assert_eq!(
        last_seen.as_deref(),
        Some("after-410"),
        "and kept following changes"
    );
    s.cancel.cancel();
}
