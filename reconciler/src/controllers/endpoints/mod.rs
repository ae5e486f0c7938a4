//! The Endpoints and EndpointSlice controllers: for every Service with a selector, an
//! Endpoints object of the same name and EndpointSlices (`kubernetes.io/service-name`) listing
//! the pods it selects ([`build`]), kept as pods come, go, become ready or stop matching.
//! Services without a selector are left to whoever writes their endpoints.

pub mod build;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ferry_schema::selector::LabelSelector;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::expectations::Expectations;
use super::informer::Informer;
use super::owner::{controller_ref, key_of};
use super::runner;
use crate::controllers::cached_pod::CachedPod;

/// The label naming a slice's Service.
pub const SERVICE_LABEL: &str = "kubernetes.io/service-name";
/// The label saying who manages a slice.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in that label.
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// What every reconcile shares.
struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    expectations: Expectations,
    backoff: Backoff,
    /// Which Services each pod was last listed in, so that a pod whose labels stop matching
    /// is taken out of them.
    listed: Arc<Mutex<HashMap<String, HashSet<String>>>>,
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

/// The caches the controller reads.
pub struct Caches<'a> {
    /// Pods (slim).
    pub pods: &'a Informer<CachedPod>,
    /// Endpoints.
    pub endpoints: &'a Informer<Endpoints>,
    /// EndpointSlices.
    pub slices: &'a Informer<EndpointSlice>,
}

fn selector_of(service: &Service) -> Option<LabelSelector> {
    let labels = service.spec.as_ref()?.selector.clone()?;
    if labels.is_empty() {
        return None;
    }
    let typed = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    };
    LabelSelector::from_typed(&typed).ok()
}

/// The controller; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    caches: Caches<'_>,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = runner::controller(Api::<Service>::all(client.clone()));
    let services = controller.store();
    let listed: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
    let by_pod = {
        let listed = listed.clone();
        caches.pods.subscribe(move |pod: &CachedPod| {
            let ns = pod.namespace().unwrap_or_default();
            let mut targets = runner::in_namespace_of(pod, &services, |s, pod| {
                selector_of(s).is_some_and(|sel| sel.matches_labels(pod.labels()))
            });
            if let Ok(listed) = listed.lock()
                && let Some(before) = listed.get(&key_of(pod))
            {
                targets.extend(before.iter().map(|name| ObjectRef::new(name).within(&ns)));
            }
            targets
        })
    };
    // Someone editing a managed Endpoints or slice has it put back.
    let by_endpoints = caches.endpoints.subscribe(|e: &Endpoints| {
        vec![ObjectRef::new(&e.name_any()).within(&e.namespace().unwrap_or_default())]
    });
    let by_slice = caches.slices.subscribe(|s: &EndpointSlice| {
        let managed = s.labels().get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER);
        s.labels()
            .get(SERVICE_LABEL)
            .filter(|_| managed)
            .map(|svc| ObjectRef::new(svc).within(&s.namespace().unwrap_or_default()))
            .into_iter()
            .collect()
    });
    let ctx = Arc::new(Context {
        client,
        pods: caches.pods.store(),
        endpoints: caches.endpoints.store(),
        slices: caches.slices.store(),
        expectations: Expectations::default(),
        backoff: Backoff::default(),
        listed,
    });
    let triggers =
        futures::stream::select_all([by_pod.boxed(), by_endpoints.boxed(), by_slice.boxed()]);
    runner::drive(controller, triggers, reconcile, ctx, cancel)
}

#[tracing::instrument(level = "debug", skip_all, fields(service = %key_of(svc.as_ref())))]
async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(svc.as_ref());
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let Some(selector) = selector_of(&svc) else {
        return Ok(Action::await_change());
    };
    if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
        || svc.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    if ctx.endpoints.wait_until_ready().await.is_err()
        || ctx.slices.wait_until_ready().await.is_err()
    {
        return Ok(Action::await_change());
    }
    let selected: Vec<Arc<CachedPod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| selector.matches_labels(p.labels()))
        .collect();
    remember(&ctx, &name, &ns, &selected);
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let backends = build::backends(&svc, &selected);

    // Endpoints.
    let (subsets, truncated) = build::subsets(&backends, publish);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = ctx.endpoints.get(&ObjectRef::new(&name).within(&ns));
    let mut annotations = BTreeMap::new();
    if truncated {
        annotations.insert(
            "endpoints.kubernetes.io/over-capacity".to_owned(),
            "truncated".to_owned(),
        );
    }
    let mut labels = svc.labels().clone();
    labels.insert(
        "endpoints.kubernetes.io/managed-by".into(),
        "endpoint-controller".into(),
    );
    let desired = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            // Collected with its Service.
            owner_references: Some(vec![controller_ref(svc.as_ref())]),
            resource_version: existing.as_ref().and_then(|e| e.resource_version()),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    let unchanged = existing.as_ref().is_some_and(|e| {
        e.subsets == desired.subsets
            && e.metadata.labels == desired.metadata.labels
            && e.metadata.annotations.clone().unwrap_or_default()
                == desired.metadata.annotations.clone().unwrap_or_default()
    });
    if !unchanged {
        let written = match &existing {
            Some(_) => api.replace(&name, &PostParams::default(), &desired).await,
            None => api.create(&PostParams::default(), &desired).await,
        };
        written.map_err(|e| ControllerError::api("write", format!("Endpoints {key}"), e))?;
    }

    // EndpointSlices, once the ones made before are in the cache.
    let slices_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    if ctx.expectations.satisfied(&key, |n| {
        ctx.slices.get(&ObjectRef::new(n).within(&ns)).is_some()
    }) {
        let mut current: Vec<Arc<EndpointSlice>> = ctx
            .slices
            .state()
            .into_iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .filter(|s| s.labels().get(SERVICE_LABEL) == Some(&name))
            .filter(|s| s.labels().get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER))
            .collect();
        current.sort_by_key(|s| s.name_any());
        let wanted = build::slices(&backends);
        let mut made = Vec::new();
        for (i, content) in wanted.iter().enumerate() {
            let mut slice = EndpointSlice {
                metadata: slice_meta(&svc),
                address_type: "IPv4".into(),
                endpoints: content.endpoints.clone(),
                ports: Some(content.ports.clone()),
            };
            match current.get(i) {
                Some(old) if old.endpoints == slice.endpoints && old.ports == slice.ports => {}
                Some(old) => {
                    slice.metadata.name = old.metadata.name.clone();
                    slice.metadata.generate_name = None;
                    slice.metadata.resource_version = old.resource_version();
                    slices_api
                        .replace(&old.name_any(), &PostParams::default(), &slice)
                        .await
                        .map_err(|e| {
                            ControllerError::api(
                                "update",
                                format!("EndpointSlice {ns}/{}", old.name_any()),
                                e,
                            )
                        })?;
                }
                None => {
                    let created = slices_api
                        .create(&PostParams::default(), &slice)
                        .await
                        .map_err(|e| {
                            ControllerError::api("create", format!("EndpointSlice for {key}"), e)
                        })?;
                    made.push(created.name_any());
                }
            }
        }
        ctx.expectations.created(&key, made);
        // An empty Service keeps one empty slice, as Kubernetes does; the rest go.
        let keep = wanted.len().max(1);
        if wanted.is_empty() && current.is_empty() {
            let empty = EndpointSlice {
                metadata: slice_meta(&svc),
                address_type: "IPv4".into(),
                endpoints: Vec::new(),
                ports: None,
            };
            let created = slices_api
                .create(&PostParams::default(), &empty)
                .await
                .map_err(|e| {
                    ControllerError::api("create", format!("EndpointSlice for {key}"), e)
                })?;
            ctx.expectations.created(&key, [created.name_any()]);
        } else if wanted.is_empty() {
            // Keep the first, emptied.
            if let Some(first) = current.first().filter(|s| !s.endpoints.is_empty()) {
                let mut emptied = (**first).clone();
                emptied.endpoints = Vec::new();
                emptied.ports = None;
                slices_api
                    .replace(&first.name_any(), &PostParams::default(), &emptied)
                    .await
                    .map_err(|e| {
                        ControllerError::api(
                            "update",
                            format!("EndpointSlice {ns}/{}", first.name_any()),
                            e,
                        )
                    })?;
            }
        }
        for old in current.iter().skip(keep) {
            match slices_api
                .delete(&old.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(ControllerError::api(
                        "delete",
                        format!("EndpointSlice {ns}/{}", old.name_any()),
                        e,
                    ));
                }
            }
        }
    }
    ctx.backoff.succeeded(&key);
    Ok(Action::await_change())
}

/// Records which pods the Service `name` lists now.
fn remember(ctx: &Context, name: &str, ns: &str, selected: &[Arc<CachedPod>]) {
    let Ok(mut listed) = ctx.listed.lock() else {
        tracing::error!("the endpoints index is poisoned");
        return;
    };
    let now: HashSet<String> = selected.iter().map(|p| key_of(p.as_ref())).collect();
    listed.retain(|pod, services| {
        if pod.starts_with(&format!("{ns}/")) && !now.contains(pod) {
            services.remove(name);
        }
        !services.is_empty()
    });
    for pod in now {
        listed.entry(pod).or_default().insert(name.to_owned());
    }
}

/// The metadata of a new slice of `svc`: a generated name, the Service's label, this
/// controller's, and the Service as owner.
fn slice_meta(svc: &Service) -> ObjectMeta {
    let name = svc.name_any();
    ObjectMeta {
        generate_name: Some(format!("{name}-")),
        namespace: svc.namespace(),
        labels: Some(BTreeMap::from([
            (SERVICE_LABEL.to_owned(), name),
            (MANAGED_BY.to_owned(), CONTROLLER.to_owned()),
        ])),
        owner_references: Some(vec![controller_ref(svc)]),
        ..ObjectMeta::default()
    }
}
