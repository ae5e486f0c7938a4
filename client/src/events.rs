//! core/v1 Events, recorded as client-go's recorder records them: an Event repeated for the
//! same object, reason and message is one Event whose `count` and `lastTimestamp` grow, so
//! `kubectl describe` and `kubectl get events` show `(x12 over 3m)` rather than twelve rows.
//! A busy component (the node agent, whose every pod start makes three) sends its Events
//! through a [`Recorder::queued`] recorder: one sender writes them in order, one at a time,
//! so they never crowd out the writes that matter (pod status) during a burst.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Involved {
    /// apiVersion.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace ("" for cluster-scoped objects; their Events go to `default`).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
}

impl Involved {
    /// A pod.
    pub fn pod(pod: &core::Pod) -> Involved {
        Involved {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// Any object the apiserver serves (a ReplicaSet, a Deployment, ...).
    pub fn of<K: kube::Resource<DynamicType = ()>>(object: &K) -> Involved {
        let meta = object.meta();
        Involved {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        }
    }

    /// A node.
    pub fn node(name: &str, uid: &str) -> Involved {
        Involved {
            api_version: "v1".into(),
            kind: "Node".into(),
            namespace: String::new(),
            name: name.to_owned(),
            uid: uid.to_owned(),
        }
    }
}

type Key = (Involved, String, String, String);

/// Writes Events for one component (`default-scheduler`, `kubelet`, `node-controller`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    host: String,
    seen: Arc<Mutex<HashMap<Key, (String, i32)>>>,
    /// The queue of a [`Recorder::queued`] recorder.
    queue: Option<tokio::sync::mpsc::Sender<Queued>>,
}

/// An Event waiting in a queued recorder.
type Queued = (Involved, &'static str, &'static str, String);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish()
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Recorder {
    /// A recorder for `component` (on `host`, for node agents).
    pub fn new(client: kube::Client, component: &str, host: &str) -> Recorder {
        Recorder {
            client,
            component: component.to_owned(),
            host: host.to_owned(),
            seen: Arc::default(),
            queue: None,
        }
    }

    /// A recorder whose [`Recorder::send`] queues Events (up to `capacity`) for one sender
    /// task; an Event that finds the queue full is dropped and logged, as client-go's
    /// broadcaster drops them.
    pub fn queued(client: kube::Client, component: &str, host: &str, capacity: usize) -> Recorder {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Queued>(capacity.max(1));
        let sender = Recorder::new(client, component, host);
        let recorder = Recorder {
            queue: Some(tx),
            ..sender.clone()
        };
        tokio::spawn(async move {
            while let Some((about, kind, reason, message)) = rx.recv().await {
                sender.record(&about, kind, reason, &message).await;
            }
        });
        recorder
    }

    /// Records an Event without waiting: queued on a [`Recorder::queued`] recorder, else
    /// written by a task of its own.
    pub fn send(&self, about: Involved, kind: &'static str, reason: &'static str, message: String) {
        match &self.queue {
            Some(queue) => {
                if let Err(e) = queue.try_send((about, kind, reason, message)) {
                    tracing::warn!(reason, error = %e, "an event was dropped: the event queue is full");
                }
            }
            None => {
                let recorder = self.clone();
                tokio::spawn(async move { recorder.record(&about, kind, reason, &message).await });
            }
        }
    }

    /// Records an Event (`Normal` or `Warning`). A failure is logged, never fatal: an Event is
    /// advice, not a record the system depends on.
    pub async fn record(&self, about: &Involved, kind: &str, reason: &str, message: &str) {
        let namespace = if about.namespace.is_empty() {
            "default".to_owned()
        } else {
            about.namespace.clone()
        };
        let api: Api<core::Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = (
            about.clone(),
            kind.to_owned(),
            reason.to_owned(),
            message.to_owned(),
        );
        let repeat = self.seen.lock().ok().and_then(|s| s.get(&key).cloned());
        let stamp = now();
        if let Some((name, count)) = repeat {
            let patch = json!({"count": count + 1, "lastTimestamp": stamp});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    if let Ok(mut s) = self.seen.lock() {
                        s.insert(key, (name, count + 1));
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(event = %name, error = %e, "a repeated event could not be counted; recording it anew");
                }
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{}.{:x}", about.name, nanos);
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": about.api_version, "kind": about.kind,
                "namespace": (!about.namespace.is_empty()).then_some(&about.namespace),
                "name": about.name, "uid": about.uid,
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self.component, "host": (!self.host.is_empty()).then_some(&self.host)},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        });
        let event: core::Event = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "an event could not be built");
                return;
            }
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if let Ok(mut s) = self.seen.lock() {
                    if s.len() > 10_000 {
                        s.clear();
                    }
                    s.insert(key, (name, 1));
                }
            }
            Err(e) => tracing::warn!(reason, error = %e, "an event could not be recorded"),
        }
    }
}
