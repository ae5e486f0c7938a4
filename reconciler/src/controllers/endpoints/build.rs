//! What a Service's Endpoints and EndpointSlices should hold, computed from its selector and
//! the pods it selects: ready pods as addresses, not-ready ones as `notReadyAddresses` (or
//! addresses with `publishNotReadyAddresses`), terminating pods only in slices (serving,
//! terminating), named target ports resolved per pod, hostnames for pods whose subdomain is
//! the Service's name, and at most 100 endpoints per slice.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::super::pods;
use crate::controllers::cached_pod::CachedPod;

/// Endpoints per EndpointSlice (the controller's default `--max-endpoints-per-slice`).
pub const PER_SLICE: usize = 100;
/// Addresses an Endpoints object holds before it is truncated (and annotated so).
pub const ENDPOINTS_CAPACITY: usize = 1000;

/// One selected pod, as the Service sees it.
#[derive(Debug, Clone)]
pub struct Backend {
    pod: Arc<CachedPod>,
    ip: String,
    ready: bool,
    terminating: bool,
    hostname: Option<String>,
    /// The Service's ports this pod serves: (name, target port, protocol, appProtocol).
    ports: Vec<PortKey>,
}

/// A resolved port.
pub type PortKey = (Option<String>, i32, String, Option<String>);

/// The pods of `pods` (the Service's namespace) the Service selects and can reach.
pub fn backends(service: &Service, selected: &[Arc<CachedPod>]) -> Vec<Backend> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses == Some(true);
    let name = service.name_any();
    let mut out = Vec::new();
    for pod in selected {
        let status = pod.status.as_ref();
        let Some(ip) = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let phase = status.and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let pod_spec = pod.spec.clone().unwrap_or_default();
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                let target = match &p.target_port {
                    None => p.port,
                    Some(IntOrString::Int(n)) => *n,
                    Some(IntOrString::String(named)) => {
                        pod_spec
                            .containers
                            .iter()
                            .flat_map(|c| c.ports.iter().flatten())
                            .find(|cp| {
                                cp.name.as_deref() == Some(named.as_str())
                                    && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                            })?
                            .container_port
                    }
                };
                Some((p.name.clone(), target, protocol, p.app_protocol.clone()))
            })
            .collect();
        let hostname = pod_spec
            .hostname
            .filter(|_| pod_spec.subdomain.as_deref() == Some(name.as_str()));
        out.push(Backend {
            ready: publish || pods::is_ready(pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            pod: pod.clone(),
            ip,
            hostname,
            ports,
        });
    }
    // A stable order, so that an unchanged set writes nothing.
    out.sort_by(|a, b| {
        a.ip.cmp(&b.ip)
            .then_with(|| a.pod.name_any().cmp(&b.pod.name_any()))
    });
    out
}

fn target(pod: &CachedPod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The Endpoints subsets (pods grouped by the ports they serve), and whether addresses were
/// cut at [`ENDPOINTS_CAPACITY`].
pub fn subsets(backends: &[Backend], publish: bool) -> (Vec<EndpointSubset>, bool) {
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    let mut count = 0;
    let mut truncated = false;
    for b in backends {
        // Terminating pods leave the Endpoints (unless everything is published).
        if b.terminating && !publish {
            continue;
        }
        if count == ENDPOINTS_CAPACITY {
            truncated = true;
            break;
        }
        count += 1;
        let address = EndpointAddress {
            ip: b.ip.clone(),
            hostname: b.hostname.clone(),
            node_name: b.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target(&b.pod)),
        };
        let (ready, not_ready) = groups.entry(b.ports.clone()).or_default();
        if b.ready {
            ready.push(address);
        } else {
            not_ready.push(address);
        }
    }
    let subsets = groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|(name, port, protocol, app_protocol)| EndpointPort {
                        name,
                        port,
                        protocol: Some(protocol),
                        app_protocol,
                    })
                    .collect()
            }),
        })
        .collect();
    (subsets, truncated)
}

/// One slice's content.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceContent {
    /// Its endpoints (at most [`PER_SLICE`]).
    pub endpoints: Vec<Endpoint>,
    /// The ports they serve.
    pub ports: Vec<SlicePort>,
}

/// The slices: pods grouped by the ports they serve, [`PER_SLICE`] per slice.
pub fn slices(backends: &[Backend]) -> Vec<SliceContent> {
    let mut groups: BTreeMap<Vec<PortKey>, Vec<Endpoint>> = BTreeMap::new();
    for b in backends {
        let serving = pods::is_ready(&b.pod) || b.ready;
        groups.entry(b.ports.clone()).or_default().push(Endpoint {
            addresses: vec![b.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(b.ready && !b.terminating),
                serving: Some(serving),
                terminating: Some(b.terminating),
            }),
            hostname: b.hostname.clone(),
            node_name: b.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target(&b.pod)),
            ..Endpoint::default()
        });
    }
    let mut out = Vec::new();
    for (ports, endpoints) in groups {
        let ports: Vec<SlicePort> = ports
            .into_iter()
            .map(|(name, port, protocol, app_protocol)| SlicePort {
                name: Some(name.unwrap_or_default()),
                port: Some(port),
                protocol: Some(protocol),
                app_protocol,
            })
            .collect();
        for chunk in endpoints.chunks(PER_SLICE) {
            out.push(SliceContent {
                endpoints: chunk.to_vec(),
                ports: ports.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i32) -> Arc<CachedPod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.spec = Some(PodSpec {
            node_name: Some("n1".into()),
            hostname: Some(name.into()),
            subdomain: Some("web".into()),
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some(port_name.into()),
                    container_port: port,
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        });
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: (!ip.is_empty()).then(|| ip.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        Arc::new(CachedPod::of(&p))
    }

    fn service(publish: bool) -> Service {
        Service {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    ..ServicePort::default()
                }]),
                publish_not_ready_addresses: Some(publish),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn named_ports_resolve_per_pod_and_readiness_splits_addresses() {
        let pods = [
            pod("a", "10.0.0.1", true, "http", 8080),
            pod("b", "10.0.0.2", false, "http", 8080),
            pod("c", "10.0.0.3", true, "http", 9090),
            pod("d", "", true, "http", 8080),
        ];
        let b = backends(&service(false), &pods);
        assert_eq!(b.len(), 3, "the pod without an IP is left out");
        let (groups, truncated) = subsets(&b, false);
        assert!(!truncated);
        assert_eq!(groups.len(), 2, "two port lists: 8080 and 9090");
        let s8080 = &groups[0];
        assert_eq!(s8080.ports.as_ref().expect("ports")[0].port, 8080);
        let ips = |a: &Option<Vec<EndpointAddress>>| {
            a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ips(&s8080.addresses), ["10.0.0.1"]);
        assert_eq!(ips(&s8080.not_ready_addresses), ["10.0.0.2"]);
        assert_eq!(
            s8080.addresses.as_ref().expect("ready")[0]
                .hostname
                .as_deref(),
            Some("a")
        );
        let (published, _) = subsets(&backends(&service(true), &pods), true);
        assert_eq!(ips(&published[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn slices_hold_at_most_a_hundred_endpoints() {
        let pods: Vec<Arc<CachedPod>> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200),
                    i % 2 == 0,
                    "http",
                    8080,
                )
            })
            .collect();
        let b = backends(&service(false), &pods);
        let s = slices(&b);
        assert_eq!(
            s.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(s[0].ports[0].port, Some(8080));
        assert_eq!(s[0].ports[0].name.as_deref(), Some("http"));
        let ready = s
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        assert_eq!(ready, 125);
    }
}
