//! ClusterIP and NodePort allocation for Services.
//!
//! Each allocated IP or port is a row of its own (resources `ferry/clusterips` and
//! `ferry/nodeports`, not served by the API), created in the same transaction as the Service
//! and deleted in the same transaction as its deletion. Two apiservers that pick the same
//! value collide on that row (AlreadyExists) and the loser tries another: no lock, no
//! double allocation, nothing leaked on delete.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::status::{ApiError, Cause};
use crate::storage::{ObjectKey, WriteOp};

/// Storage resource of ClusterIP reservations.
pub const CLUSTER_IPS: &str = "ferry/clusterips";
/// Storage resource of NodePort reservations.
pub const NODE_PORTS: &str = "ferry/nodeports";

/// The ranges to allocate from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges {
    /// Service CIDR network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// NodePort range, inclusive.
    pub node_ports: (u16, u16),
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges {
            network: Ipv4Addr::new(10, 96, 0, 0),
            prefix: 12,
            node_ports: (30000, 32767),
        }
    }
}

impl Ranges {
    /// Parses `10.96.0.0/12` and `30000-32767`.
    pub fn parse(cidr: &str, node_ports: &str) -> Result<Ranges, String> {
        let (ip, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {cidr:?}: expected A.B.C.D/N"))?;
        let network: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR {cidr:?}: not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("invalid CIDR {cidr:?}: prefix must be 8-30"))?;
        let (a, b) = node_ports
            .split_once('-')
            .ok_or_else(|| format!("invalid port range {node_ports:?}: expected A-B"))?;
        let (a, b): (u16, u16) = (
            a.parse().map_err(|_| format!("invalid port {a:?}"))?,
            b.parse().map_err(|_| format!("invalid port {b:?}"))?,
        );
        if a == 0 || a > b {
            return Err(format!("invalid port range {node_ports:?}"));
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Ranges {
            network: Ipv4Addr::from(u32::from(network) & mask),
            prefix,
            node_ports: (a, b),
        })
    }

    /// The first usable address: the `kubernetes` Service's ClusterIP.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.prefix))
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        u32::from(ip) & mask == u32::from(self.network)
    }

    /// A random usable IP (not the network address, the first address, or broadcast).
    fn random_ip(&self) -> Ipv4Addr {
        let offset = 2 + random_u32() % (self.size() - 3);
        Ipv4Addr::from(u32::from(self.network) + offset)
    }

    fn random_port(&self) -> u16 {
        let (a, b) = self.node_ports;
        a + (random_u32() % (u32::from(b - a) + 1)) as u16
    }
}

fn random_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn reservation(resource: &str, value: &str, service: &Value) -> WriteOp {
    let meta = &service["metadata"];
    WriteOp::Create {
        key: ObjectKey::new(resource, "", value),
        object: json!({"service": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}),
    }
}

fn invalid(service: &Value, field: &str, message: String) -> ApiError {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message,
        }],
    )
}

/// Fills in a new Service's ClusterIP and NodePorts and returns the reservations to create
/// with it. `fresh` asks for new random picks (after a collision).
pub fn allocate(ranges: &Ranges, service: &mut Value) -> Result<Vec<WriteOp>, ApiError> {
    let mut ops = Vec::new();
    let ty = service["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_owned();
    if ty == "ExternalName" {
        return Ok(ops);
    }
    match service["spec"]["clusterIP"].as_str() {
        Some("None") => {
            service["spec"]["clusterIPs"] = json!(["None"]);
        }
        Some(ip) if !ip.is_empty() => {
            let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                invalid(
                    service,
                    "spec.clusterIP",
                    format!("{ip:?} is not a valid IPv4 address"),
                )
            })?;
            if !ranges.contains(parsed) {
                return Err(invalid(
                    service,
                    "spec.clusterIP",
                    format!(
                        "{ip} is not in the service CIDR {}/{}",
                        ranges.network, ranges.prefix
                    ),
                ));
            }
            ops.push(reservation(CLUSTER_IPS, ip, service));
            service["spec"]["clusterIPs"] = json!([ip]);
        }
        _ => {
            let ip = ranges.random_ip().to_string();
            ops.push(reservation(CLUSTER_IPS, &ip, service));
            service["spec"]["clusterIP"] = json!(ip);
            service["spec"]["clusterIPs"] = json!([ip]);
        }
    }
    service["spec"]["ipFamilies"] = json!(["IPv4"]);
    service["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        let (a, b) = ranges.node_ports;
        let mut taken = Vec::new();
        let service_snapshot = service.clone();
        if let Some(ports) = service["spec"]["ports"].as_array_mut() {
            for (i, port) in ports.iter_mut().enumerate() {
                let node_port = match port["nodePort"].as_u64() {
                    Some(n) if n != 0 => {
                        if !(u64::from(a)..=u64::from(b)).contains(&n) {
                            return Err(invalid(
                                &service_snapshot,
                                &format!("spec.ports[{i}].nodePort"),
                                format!("{n} is not in the valid range {a}-{b}"),
                            ));
                        }
                        n as u16
                    }
                    _ => {
                        let mut pick = ranges.random_port();
                        while taken.contains(&pick) {
                            pick = ranges.random_port();
                        }
                        port["nodePort"] = json!(pick);
                        pick
                    }
                };
                if taken.contains(&node_port) {
                    return Err(invalid(
                        &service_snapshot,
                        &format!("spec.ports[{i}].nodePort"),
                        format!("{node_port} is used twice"),
                    ));
                }
                taken.push(node_port);
            }
        }
        for port in taken {
            ops.push(reservation(NODE_PORTS, &port.to_string(), service));
        }
    }
    Ok(ops)
}

/// The reservations a Service holds, to delete with it.
pub fn reservations(service: &Value) -> Vec<ObjectKey> {
    let mut keys = Vec::new();
    if let Some(ip) = service["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        keys.push(ObjectKey::new(CLUSTER_IPS, "", ip));
    }
    for port in service["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(n) = port["nodePort"].as_u64().filter(|n| *n != 0) {
            keys.push(ObjectKey::new(NODE_PORTS, "", n.to_string()));
        }
    }
    keys
}

/// Was an automatic pick the value that collided (so trying again may succeed)?
pub fn is_reservation(key: &ObjectKey) -> bool {
    key.resource == CLUSTER_IPS || key.resource == NODE_PORTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_within_ranges() {
        let ranges = Ranges::parse("10.96.0.0/12", "30000-32767").expect("parses");
        let mut svc = json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443, "nodePort": 30443}]}});
        let ops = allocate(&ranges, &mut svc).expect("allocates");
        let ip: Ipv4Addr = svc["spec"]["clusterIP"]
            .as_str()
            .expect("ip")
            .parse()
            .expect("IPv4");
        assert!(ranges.contains(ip));
        let port = svc["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .expect("node port");
        assert!((30000..=32767).contains(&port));
        assert_eq!(ops.len(), 3);
        assert_eq!(reservations(&svc).len(), 3);
        let mut bad = json!({"metadata": {"name": "x"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}});
        assert!(allocate(&ranges, &mut bad).is_err());
        let mut outside = json!({"metadata": {"name": "x"}, "spec": {"clusterIP": "192.168.1.1", "ports": [{"port": 80}]}});
        assert!(allocate(&ranges, &mut outside).is_err());
        let mut headless = json!({"metadata": {"name": "x"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        assert!(
            allocate(&ranges, &mut headless)
                .expect("headless")
                .is_empty()
        );
        assert!(Ranges::parse("10.96.0.0", "1-2").is_err());
    }
}
