//! Resource amounts as the scheduler sums them: exact integers (millicores, bytes, counts)
//! from `ferry_schema::quantity`, never floats.

use std::collections::BTreeMap;

use ferry_schema::quantity::Quantity;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

/// An amount of every resource the scheduler tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pods (allocatable only; a pod requests one).
    pub pods: i64,
    /// Extended resources (`nvidia.com/gpu`, `example.com/foo`): integers.
    pub extended: BTreeMap<String, i64>,
}

fn units(q: &K8sQuantity, milli: bool) -> i64 {
    match Quantity::parse(&q.0) {
        Ok(q) => {
            let v = if milli { q.milli_value() } else { q.value() };
            i64::try_from(v).unwrap_or(i64::MAX)
        }
        Err(_) => 0,
    }
}

/// Whether a resource name is an extended resource (not cpu, memory, storage, pods or a
/// hugepages size): anything with a domain, like `nvidia.com/gpu`.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests.")
}

impl Resources {
    /// Reads a resource list (`requests`, `limits`, `allocatable`).
    pub fn from_list(list: &BTreeMap<String, K8sQuantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = units(q, true),
                "memory" => r.memory = units(q, false),
                "ephemeral-storage" => r.ephemeral_storage = units(q, false),
                "pods" => r.pods = units(q, false),
                other if is_extended(other) => {
                    r.extended.insert(other.to_owned(), units(q, false));
                }
                _ => {}
            }
        }
        r
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.extended {
            *self.extended.entry(k.clone()).or_default() += v;
        }
    }

    /// Takes `other` from `self`.
    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.extended {
            *self.extended.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each resource the larger of the two.
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.extended {
            let e = self.extended.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// A node's allocatable resources (its capacity when allocatable is not reported).
    pub fn allocatable(node: &core::Node) -> Resources {
        let status = node.status.as_ref();
        status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .map(Resources::from_list)
            .unwrap_or_default()
    }

    /// What a pod requests, as kube-scheduler computes it: the sum of its containers (and of
    /// restartable init containers, the sidecars), or the largest init container if that is
    /// more, plus the pod overhead; a container's limits stand in for requests it does not set.
    /// `pods` is 1.
    pub fn requested_by(pod: &core::Pod) -> Resources {
        let Some(spec) = pod.spec.as_ref() else {
            return Resources {
                pods: 1,
                ..Resources::default()
            };
        };
        let of = |c: &core::Container| {
            let res = c.resources.as_ref();
            let mut r = res
                .and_then(|r| r.limits.as_ref())
                .map(Resources::from_list)
                .unwrap_or_default();
            let requests = res
                .and_then(|r| r.requests.as_ref())
                .map(Resources::from_list)
                .unwrap_or_default();
            // Requests win where set.
            if let Some(list) = res.and_then(|r| r.requests.as_ref()) {
                if list.contains_key("cpu") {
                    r.milli_cpu = requests.milli_cpu;
                }
                if list.contains_key("memory") {
                    r.memory = requests.memory;
                }
                if list.contains_key("ephemeral-storage") {
                    r.ephemeral_storage = requests.ephemeral_storage;
                }
                for (k, v) in requests.extended {
                    r.extended.insert(k, v);
                }
            }
            r
        };
        let mut total = Resources::default();
        for c in &spec.containers {
            total.add(&of(c));
        }
        let mut sidecars = Resources::default();
        let mut init_peak = Resources::default();
        for c in spec.init_containers.iter().flatten() {
            let r = of(c);
            if c.restart_policy.as_deref() == Some("Always") {
                sidecars.add(&r);
                total.add(&r);
            } else {
                let mut during = sidecars.clone();
                during.add(&r);
                init_peak.max_with(&during);
            }
        }
        total.max_with(&init_peak);
        if let Some(overhead) = &spec.overhead {
            total.add(&Resources::from_list(overhead));
        }
        total.pods = 1;
        total
    }

    /// The resources of `request` that do not fit in `free`, by name (for the
    /// "Insufficient cpu" reasons). Extended resources are never overcommitted.
    pub fn insufficient(&self, request: &Resources, requested: &Resources) -> Vec<String> {
        let mut out = Vec::new();
        if requested.pods + 1 > self.pods {
            out.push("Too many pods".to_owned());
        }
        if request.milli_cpu > 0 && requested.milli_cpu + request.milli_cpu > self.milli_cpu {
            out.push("Insufficient cpu".to_owned());
        }
        if request.memory > 0 && requested.memory + request.memory > self.memory {
            out.push("Insufficient memory".to_owned());
        }
        if request.ephemeral_storage > 0
            && requested.ephemeral_storage + request.ephemeral_storage > self.ephemeral_storage
        {
            out.push("Insufficient ephemeral-storage".to_owned());
        }
        for (name, want) in &request.extended {
            if *want == 0 {
                continue;
            }
            let have = self.extended.get(name).copied().unwrap_or(0);
            let used = requested.extended.get(name).copied().unwrap_or(0);
            if used + want > have {
                out.push(format!("Insufficient {name}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> core::Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    #[test]
    fn requests_sum_containers_and_take_the_init_peak_exactly() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "0.25", "nvidia.com/gpu": "1"}}}
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}
            ],
            "overhead": {"cpu": "10m"}
        }));
        let r = Resources::requested_by(&p);
        assert_eq!(r.milli_cpu, 2010);
        assert_eq!(r.memory, 64 * 1024 * 1024);
        assert_eq!(r.extended.get("nvidia.com/gpu"), Some(&1));
        assert_eq!(r.pods, 1);
        // 0.1 + 0.2 is exactly 300 millicores: no float.
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "0.1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "0.2"}}}
        ]}));
        assert_eq!(Resources::requested_by(&p).milli_cpu, 300);
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let node = Resources::from_list(
            &[
                ("cpu", "2"),
                ("memory", "1Gi"),
                ("pods", "2"),
                ("nvidia.com/gpu", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), K8sQuantity(v.to_owned())))
            .collect(),
        );
        let mut used = Resources {
            milli_cpu: 1500,
            pods: 1,
            ..Resources::default()
        };
        used.extended.insert("nvidia.com/gpu".into(), 1);
        let mut want = Resources {
            milli_cpu: 600,
            pods: 1,
            ..Resources::default()
        };
        want.extended.insert("nvidia.com/gpu".into(), 1);
        assert_eq!(
            node.insufficient(&want, &used),
            ["Insufficient cpu", "Insufficient nvidia.com/gpu"]
        );
        used.pods = 2;
        assert_eq!(
            node.insufficient(&Resources::default(), &used),
            ["Too many pods"]
        );
    }
}
