//! core/v1 Events, recorded as client-go's recorder records them: an Event repeated for the
//! same object, reason and message is one Event whose `count` and `lastTimestamp` grow, so
//! `kubectl describe` and `kubectl get events` show `(x12 over 3m)` rather than twelve rows.
//! A busy component (the node agent, whose every pod start makes three) sends its Events
//! through a [`Recorder::queued`] recorder: one sender writes them in order, one at a time,
//! so they never crowd out the writes that matter (pod status) during a burst.
//!
//! What a recorder remembers to count repeats is bounded as client-go bounds it: the 4,096
//! Events it wrote or counted last ([`Seen`]).

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

/// How many Events a recorder remembers to count repeats (client-go's `maxLruCacheEntries`).
const REMEMBERED: usize = 4096;

/// The Events a recorder wrote, least recently used forgotten first: an Event's identity
/// (its object, type, reason and message, in one string) to its name and count. One entry
/// costs about 300 bytes, so a recorder holds at most about 1.2 MB however many pods it sees.
struct Seen {
    events: hashlink::LruCache<Box<str>, (Box<str>, i32)>,
}

impl Seen {
    fn new(capacity: usize) -> Seen {
        Seen {
            events: hashlink::LruCache::new(capacity),
        }
    }

    /// The identity of an Event: every field that makes two Events the same one, each
    /// preceded by its length so that no two identities read alike.
    fn key(about: &Involved, kind: &str, reason: &str, message: &str) -> Box<str> {
        let fields = [
            about.api_version.as_str(),
            &about.kind,
            &about.namespace,
            &about.name,
            &about.uid,
            kind,
            reason,
            message,
        ];
        let mut key = String::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
        for field in fields {
            key.push_str(&field.len().to_string());
            key.push(':');
            key.push_str(field);
        }
        key.into_boxed_str()
    }

    /// The name and count of the Event written for `key`, if it is remembered.
    fn get(&mut self, key: &str) -> Option<(Box<str>, i32)> {
        self.events.get(key).cloned()
    }

    /// Remembers that the Event for `key` is `name`, seen `count` times.
    fn put(&mut self, key: Box<str>, name: Box<str>, count: i32) {
        self.events.insert(key, (name, count));
    }
}

/// Writes Events for one component (`default-scheduler`, `kubelet`, `node-controller`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    host: String,
    seen: Arc<Mutex<Seen>>,
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
            seen: Arc::new(Mutex::new(Seen::new(REMEMBERED))),
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
        let key = Seen::key(about, kind, reason, message);
        let repeat = self.seen.lock().ok().and_then(|mut s| s.get(&key));
        let stamp = now();
        if let Some((name, count)) = repeat {
            let patch = json!({"count": count + 1, "lastTimestamp": stamp});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    if let Ok(mut s) = self.seen.lock() {
                        s.put(key, name, count + 1);
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
                    s.put(key, name.into_boxed_str(), 1);
                }
            }
            Err(e) => tracing::warn!(reason, error = %e, "an event could not be recorded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Involved {
        Involved {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: "demo".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    #[test]
    fn a_repeated_event_is_found_with_its_name_and_count() {
        let mut seen = Seen::new(8);
        let key = Seen::key(&pod("a"), "Warning", "BackOff", "Back-off restarting");
        assert_eq!(seen.get(&key), None);
        seen.put(key.clone(), "a.17".into(), 1);
        seen.put(key.clone(), "a.17".into(), 2);
        assert_eq!(seen.get(&key), Some(("a.17".into(), 2)));
    }

    #[test]
    fn events_differing_in_any_field_are_different_events() {
        let base = Seen::key(&pod("a"), "Normal", "Pulled", "m");
        let mut other = pod("a");
        other.uid = "uid-b".into();
        for key in [
            Seen::key(&pod("b"), "Normal", "Pulled", "m"),
            Seen::key(&other, "Normal", "Pulled", "m"),
            Seen::key(&pod("a"), "Warning", "Pulled", "m"),
            Seen::key(&pod("a"), "Normal", "Created", "m"),
            Seen::key(&pod("a"), "Normal", "Pulled", "n"),
        ] {
            assert_ne!(key, base);
        }
        // Where one field ends is part of the identity.
        assert_ne!(
            Seen::key(&pod("a"), "Normal", "a:b", "c"),
            Seen::key(&pod("a"), "Normal", "a", "b:c")
        );
    }

    #[test]
    fn the_least_recently_used_event_is_forgotten_first() {
        let mut seen = Seen::new(REMEMBERED);
        let keys: Vec<Box<str>> = (0..=REMEMBERED)
            .map(|i| Seen::key(&pod(&format!("p{i}")), "Normal", "Started", "m"))
            .collect();
        for (i, key) in keys.iter().take(REMEMBERED).enumerate() {
            seen.put(key.clone(), format!("p{i}.1").into(), 1);
        }
        // The first is used again, so the second is the least recently used.
        assert!(seen.get(&keys[0]).is_some());
        seen.put(keys[REMEMBERED].clone(), "new.1".into(), 1);
        assert_eq!(seen.events.len(), REMEMBERED);
        assert!(seen.get(&keys[1]).is_none());
        assert!(seen.get(&keys[0]).is_some());
        assert_eq!(seen.get(&keys[REMEMBERED]), Some(("new.1".into(), 1)));
    }
}
