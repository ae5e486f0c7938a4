//! The Endpoints and EndpointSlice controllers driven with the real kubectl against `ferry up
//! --nodes 3` (hollow nodes): ready and not-ready addresses, a named target port resolved per
//! pod, a pod whose labels stop matching taken out, `publishNotReadyAddresses` on a headless
//! Service, scaling to zero, and the objects collected with their Service.

use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: web:1\n        ports:\n        - {name: http, containerPort: 8080}\n";

const LAGGARD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: laggard\n  labels: {app: web}\n  annotations: {sim.ferry.dev/ready: \"false\"}\nspec:\n  containers:\n  - name: c\n    image: web:1\n    ports:\n    - {name: http, containerPort: 9090}\n";

const SERVICES: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: peers\nspec:\n  clusterIP: None\n  publishNotReadyAddresses: true\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n";

fn get(k: &Kubectl, what: &str, path: &str) -> String {
    k.jsonpath(&[what], path)
}

/// Sorted `ip:port` of an Endpoints object's ready and not-ready addresses.
fn addresses(k: &Kubectl, name: &str) -> (Vec<String>, Vec<String>) {
    let text = get(
        k,
        &format!("endpoints/{name}"),
        "{range .subsets[*]}{range .addresses[*]}R {.ip}{\"\\n\"}{end}{range .notReadyAddresses[*]}N {.ip}{\"\\n\"}{end}P {.ports[0].port}{\"\\n\"}{end}",
    );
    let (mut ready, mut not_ready, mut group) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("P", port)) => {
                for (kind, ip) in group.drain(..) {
                    let entry = format!("{ip}:{port}");
                    if kind == "R" {
                        ready.push(entry);
                    } else {
                        not_ready.push(entry);
                    }
                }
            }
            Some((kind, ip)) => group.push((kind.to_owned(), ip.to_owned())),
            None => {}
        }
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

fn pod_ips(k: &Kubectl, selector: &str) -> Vec<String> {
    let text = k.ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[*]}{.status.podIP}{\"\\n\"}{end}",
    ]);
    let mut ips: Vec<String> = text.lines().map(str::to_owned).collect();
    ips.sort();
    ips
}

#[test]
fn endpoints_follow_the_pods_a_service_selects() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    k.ok_stdin(&["apply", "-f", "-"], WEB);
    k.ok_stdin(&["apply", "-f", "-"], LAGGARD);
    k.ok_stdin(&["apply", "-f", "-"], SERVICES);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let web_ips = wait_for(Duration::from_secs(30), "web's pods have IPs", || {
        let ips = pod_ips(k, "app=web,pod-template-hash");
        (ips.len() == 3 && ips.iter().all(|ip| !ip.is_empty())).then_some(ips)
    });
    let laggard = wait_for(Duration::from_secs(30), "the laggard has an IP", || {
        let ip = get(k, "pod/laggard", "{.status.podIP}");
        (!ip.is_empty()).then_some(ip)
    });

    // Ready pods on 8080 (the named port), the unready one on its own 9090, not ready.
    let want_ready: Vec<String> = web_ips.iter().map(|ip| format!("{ip}:8080")).collect();
    wait_for(Duration::from_secs(30), "web's endpoints", || {
        (addresses(k, "web") == (want_ready.clone(), vec![format!("{laggard}:9090")])).then_some(())
    });
    let slice = k.jsonpath(&["endpointslices", "-l", "kubernetes.io/service-name=web"], "{range .items[*]}{.addressType} {.metadata.labels.endpointslice\\.kubernetes\\.io/managed-by} {.ports[0].port}:{range .endpoints[*]}{.conditions.ready},{end}{\"\\n\"}{end}");
    let lines: Vec<&str> = slice.lines().collect();
    assert_eq!(lines.len(), 2, "one slice per port list: {slice}");
    assert!(
        lines.contains(&"IPv4 endpointslice-controller.k8s.io 8080:true,true,true,"),
        "{slice}"
    );
    assert!(
        lines.contains(&"IPv4 endpointslice-controller.k8s.io 9090:false,"),
        "{slice}"
    );

    // Headless and publishing not-ready addresses: all four, ready.
    let mut all: Vec<String> = web_ips
        .iter()
        .chain(std::iter::once(&laggard))
        .map(|ip| format!("{ip}:8080"))
        .collect();
    all.sort();
    wait_for(Duration::from_secs(30), "peers' endpoints", || {
        (addresses(k, "peers") == (all.clone(), Vec::new())).then_some(())
    });

    // A pod relabelled out of the selector leaves; its replacement joins.
    let leaving = k.jsonpath(
        &["pods", "-l", "app=web, pod-template-hash"],
        "{.items[0].metadata.name}",
    );
    let leaving_ip = get(k, &format!("pod/{leaving}"), "{.status.podIP}");
    k.ok(&["label", "pod", &leaving, "app=elsewhere", "--overwrite"]);
    wait_for(
        Duration::from_secs(60),
        "the relabelled pod replaced",
        || {
            let (ready, _) = addresses(k, "web");
            (ready.len() == 3 && !ready.contains(&format!("{leaving_ip}:8080"))).then_some(())
        },
    );

    // Scaled to zero, with the laggard gone: no addresses, one empty slice.
    k.ok(&["delete", "pod", "laggard", "--wait=true", "--timeout=60s"]);
    k.ok(&["scale", "deployment/web", "--replicas=0"]);
    wait_for(Duration::from_secs(60), "web's endpoints empty", || {
        get(k, "endpoints/web", "{.subsets}")
            .is_empty()
            .then_some(())
    });
    wait_for(Duration::from_secs(30), "one empty slice", || {
        let slices = k.jsonpath(
            &["endpointslices", "-l", "kubernetes.io/service-name=web"],
            "{range .items[*]}[{.endpoints}]{\"\\n\"}{end}",
        );
        // One slice, whose endpoints are an empty list.
        (slices.trim() == "[[]]").then_some(())
    });

    // The Service goes: its Endpoints and slices go with it.
    k.ok(&["delete", "service", "web"]);
    wait_for(Duration::from_secs(30), "web's endpoints collected", || {
        let left = k.ok(&[
            "get",
            "endpoints,endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name",
        ]);
        let endpoints = k.run(&["get", "endpoints", "web"]);
        (left.is_empty() && !endpoints.status.success()).then_some(())
    });
}
