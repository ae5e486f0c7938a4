//! LimitRange admission for new pods, as Kubernetes' LimitRanger plugin: the namespace's
//! LimitRanges first fill in each container's missing limits (`default`) and requests
//! (`defaultRequest`), noting what they set in the `kubernetes.io/limit-ranger` annotation;
//! then a pod outside a range's `min`, `max` or `maxLimitRequestRatio` (per Container, or
//! summed per Pod) is refused with 403 and every violation named.
//!
//! The LimitRange objects' own defaults (`default` from `max`, `defaultRequest` from `default`
//! or `min`) are set when they are stored ([`default_range`]).

use std::collections::BTreeMap;

use ferry_schema::quantity::Quantity;
use serde_json::{Map, Value, json};

use super::status::ApiError;

/// The annotation that records what LimitRanges set on a pod.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Where LimitRanges are stored.
pub const RESOURCE: &str = "limitranges";

/// The container lists of a pod spec, with how Kubernetes names them in messages.
const CONTAINER_LISTS: &[(&str, &str)] = &[
    ("initContainers", "init container"),
    ("containers", "container"),
];

/// The items of `ranges` of the given `type`.
fn items<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    ranges
        .iter()
        .flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten())
        .filter(move |item| item["type"].as_str() == Some(kind))
}

/// Defaults a LimitRange item of type Container as Kubernetes does: a missing `default` from
/// `max`, a missing `defaultRequest` from `default`, then from `min`.
pub fn default_range(range: &mut Value) {
    let limits = range
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut);
    for item in limits.into_iter().flatten() {
        if item["type"].as_str() != Some("Container") {
            continue;
        }
        for (target, sources) in [
            ("default", &["max"][..]),
            ("defaultRequest", &["default", "min"][..]),
        ] {
            let mut filled = item[target].as_object().cloned().unwrap_or_default();
            for source in sources {
                for (resource, value) in item[*source].as_object().into_iter().flatten() {
                    filled
                        .entry(resource.clone())
                        .or_insert_with(|| value.clone());
                }
            }
            if !filled.is_empty()
                && let Some(map) = item.as_object_mut()
            {
                map.insert(target.to_owned(), Value::Object(filled));
            }
        }
    }
}

/// Fills in each container's missing limits and requests from the Container items of
/// `ranges`, and records what was set in the pod's annotation.
pub fn default_pod(ranges: &[Value], pod: &mut Value) {
    let mut limits: Map<String, Value> = Map::new();
    let mut requests: Map<String, Value> = Map::new();
    for item in items(ranges, "Container") {
        for (resource, value) in item["default"].as_object().into_iter().flatten() {
            limits.entry(resource.clone()).or_insert(value.clone());
        }
        for (resource, value) in item["defaultRequest"].as_object().into_iter().flatten() {
            requests.entry(resource.clone()).or_insert(value.clone());
        }
    }
    if limits.is_empty() && requests.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (list, label) in CONTAINER_LISTS {
        let containers = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            let name = container["name"].as_str().unwrap_or_default().to_owned();
            for (section, defaults, what) in [
                ("requests", &requests, "request"),
                ("limits", &limits, "limit"),
            ] {
                let set = fill(container, section, defaults);
                if !set.is_empty() {
                    notes.push(format!("{} {what} for {label} {name}", set.join(", ")));
                }
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    let annotations = super::admission::meta(pod)
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(
            ANNOTATION.into(),
            json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
        );
    }
}

/// Sets the `defaults` a container's `resources.<section>` lacks; the names it set.
fn fill(container: &mut Value, section: &str, defaults: &Map<String, Value>) -> Vec<String> {
    if defaults.is_empty() || !container.is_object() {
        return Vec::new();
    }
    if !container["resources"].is_object() {
        container["resources"] = json!({});
    }
    if !container["resources"][section].is_object() {
        container["resources"][section] = json!({});
    }
    let Some(current) = container["resources"][section].as_object_mut() else {
        return Vec::new();
    };
    let mut set = Vec::new();
    for (resource, value) in defaults {
        if !current.contains_key(resource) {
            current.insert(resource.clone(), value.clone());
            set.push(resource.clone());
        }
    }
    if current.is_empty() {
        container["resources"]
            .as_object_mut()
            .map(|r| r.remove(section));
    }
    set
}

/// One side of a constraint: a quantity as given (for the message) and its value.
#[derive(Clone)]
struct Observed {
    text: String,
    value: Quantity,
}

type Resources = BTreeMap<String, Observed>;

fn resources(value: &Value) -> Resources {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| {
            let value = Quantity::from_value(v).ok()?;
            let text = v.as_str().map_or_else(|| value.to_string(), str::to_owned);
            Some((name.clone(), Observed { text, value }))
        })
        .collect()
}

/// The violations of the `min`, `max` and `maxLimitRequestRatio` of one item, for requests and
/// limits observed per `scope` ("Container" or "Pod").
fn violations(item: &Value, scope: &str, requests: &Resources, limits: &Resources) -> Vec<String> {
    let mut out = Vec::new();
    for (resource, min) in resources(&item["min"]) {
        match requests.get(&resource) {
            None => out.push(format!(
                "minimum {resource} usage per {scope} is {}.  No request is specified",
                min.text
            )),
            Some(req) if req.value < min.value => out.push(format!(
                "minimum {resource} usage per {scope} is {}, but request is {}",
                min.text, req.text
            )),
            Some(_) => {}
        }
        if let Some(lim) = limits.get(&resource)
            && lim.value < min.value
        {
            out.push(format!(
                "minimum {resource} usage per {scope} is {}, but limit is {}",
                min.text, lim.text
            ));
        }
    }
    for (resource, max) in resources(&item["max"]) {
        match limits.get(&resource) {
            None => out.push(format!(
                "maximum {resource} usage per {scope} is {}.  No limit is specified",
                max.text
            )),
            Some(lim) if lim.value > max.value => out.push(format!(
                "maximum {resource} usage per {scope} is {}, but limit is {}",
                max.text, lim.text
            )),
            Some(_) => {}
        }
        if let Some(req) = requests.get(&resource)
            && req.value > max.value
        {
            out.push(format!(
                "maximum {resource} usage per {scope} is {}, but request is {}",
                max.text, req.text
            ));
        }
    }
    for (resource, ratio) in resources(&item["maxLimitRequestRatio"]) {
        let head = format!(
            "{resource} max limit to request ratio per {scope} is {}",
            ratio.text
        );
        let request = requests.get(&resource).filter(|r| !r.value.is_zero());
        let limit = limits.get(&resource).filter(|l| !l.value.is_zero());
        match (request, limit) {
            (None, _) => out.push(format!(
                "{head}, but no request is specified or request is 0"
            )),
            (_, None) => out.push(format!("{head}, but no limit is specified or limit is 0")),
            // limit / request > ratio, exactly: limit * 1e9 > ratio * request (all in nanos).
            (Some(req), Some(lim))
                if lim.value.nano_value() * 1_000_000_000
                    > ratio.value.nano_value() * req.value.nano_value() =>
            {
                let observed = lim.value.nano_value() as f64 / req.value.nano_value() as f64;
                out.push(format!("{head}, but provided ratio is {observed:.6}"));
            }
            _ => {}
        }
    }
    out
}

/// A pod's requests or limits summed over its app containers (a resource counts only when
/// every app container sets it), or an init container's when larger.
fn pod_total(pod: &Value, section: &str) -> Resources {
    let app: Vec<Resources> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| resources(&c["resources"][section]))
        .collect();
    let mut total: Resources = BTreeMap::new();
    if let Some(first) = app.first() {
        for resource in first.keys() {
            if app.iter().all(|c| c.contains_key(resource)) {
                let value: Quantity = app.iter().map(|c| c[resource].value).sum();
                total.insert(
                    resource.clone(),
                    Observed {
                        text: value.to_string(),
                        value,
                    },
                );
            }
        }
    }
    for init in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (resource, observed) in resources(&init["resources"][section]) {
            let larger = total
                .get(&resource)
                .is_none_or(|t| observed.value > t.value);
            if larger {
                total.insert(resource, observed);
            }
        }
    }
    total
}

/// Every way `pod` falls outside the Container and Pod items of `ranges`.
pub fn check_pod(ranges: &[Value], pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for item in items(ranges, "Container") {
        for (list, _) in CONTAINER_LISTS {
            for container in pod["spec"][*list].as_array().into_iter().flatten() {
                let requests = resources(&container["resources"]["requests"]);
                let limits = resources(&container["resources"]["limits"]);
                out.extend(violations(item, "Container", &requests, &limits));
            }
        }
    }
    for item in items(ranges, "Pod") {
        let (requests, limits) = (pod_total(pod, "requests"), pod_total(pod, "limits"));
        out.extend(violations(item, "Pod", &requests, &limits));
    }
    out
}

/// Admits a new pod against its namespace's LimitRanges: defaults, then limits (403 naming
/// every violation).
pub fn admit_pod(ranges: &[Value], pod: &mut Value) -> Result<(), ApiError> {
    if ranges.is_empty() {
        return Ok(());
    }
    // Kubernetes defaults a pod's requests from its limits before admission sees it.
    super::defaults::requests_from_limits(&mut pod["spec"]);
    default_pod(ranges, pod);
    let problems = check_pod(ranges, pod);
    if problems.is_empty() {
        return Ok(());
    }
    let name = pod["metadata"]["name"]
        .as_str()
        .or(pod["metadata"]["generateName"].as_str())
        .unwrap_or_default()
        .to_owned();
    let why = match problems.len() {
        1 => problems.join(""),
        _ => format!("[{}]", problems.join(", ")),
    };
    Err(ApiError::forbidden("", "pods", &name, &why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        let mut range = json!({"spec": {"limits": limits}});
        default_range(&mut range);
        range
    }

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "web", "resources": resources}
        ]}})
    }

    #[test]
    fn a_range_defaults_its_default_from_max_and_its_request_from_default_then_min() {
        let r =
            range(json!([{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "8Mi"}}]));
        let item = &r["spec"]["limits"][0];
        assert_eq!(item["default"], json!({"cpu": "2"}));
        assert_eq!(item["defaultRequest"], json!({"cpu": "2", "memory": "8Mi"}));
    }

    #[test]
    fn missing_requests_and_limits_are_filled_and_noted() {
        let ranges = [range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "100m"}}]))];
        let mut p = pod(json!({"limits": {"memory": "64Mi"}}));
        admit_pod(&ranges, &mut p).expect("admitted");
        let res = &p["spec"]["containers"][0]["resources"];
        assert_eq!(res["limits"], json!({"cpu": "500m", "memory": "64Mi"}));
        // The memory request comes from the memory limit, as Kubernetes defaults pods.
        assert_eq!(res["requests"], json!({"cpu": "100m", "memory": "64Mi"}));
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu request for container web; cpu limit for container web"
        );
        let mut bare = pod(json!({}));
        admit_pod(&ranges, &mut bare).expect("admitted");
        assert_eq!(
            bare["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web"
        );
    }

    #[test]
    fn a_pod_without_ranges_is_untouched() {
        let mut p = pod(json!({}));
        let before = p.clone();
        admit_pod(&[], &mut p).expect("admitted");
        assert_eq!(p, before);
    }

    #[test]
    fn every_violation_is_named_in_one_forbidden() {
        let ranges = [json!({"spec": {"limits": [{"type": "Container",
            "min": {"memory": "10Mi"}, "max": {"cpu": "1"}}]}})];
        let mut p = pod(json!({"requests": {"memory": "5Mi"}, "limits": {"cpu": "1500m"}}));
        let err = admit_pod(&ranges, &mut p).expect_err("refused");
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: [minimum memory usage per Container is 10Mi, but request is 5Mi, maximum cpu usage per Container is 1, but limit is 1500m, maximum cpu usage per Container is 1, but request is 1500m]"
        );
    }

    #[test]
    fn a_missing_limit_under_a_max_is_refused() {
        let ranges =
            [json!({"spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}})];
        let problems = check_pod(&ranges, &pod(json!({})));
        assert_eq!(
            problems,
            ["maximum memory usage per Container is 1Gi.  No limit is specified"]
        );
    }

    #[test]
    fn the_limit_to_request_ratio_is_exact() {
        let ranges = [json!({"spec": {"limits": [{"type": "Container",
            "maxLimitRequestRatio": {"cpu": "2"}}]}})];
        let at = pod(json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}}));
        assert!(check_pod(&ranges, &at).is_empty());
        let over = pod(json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "501m"}}));
        assert_eq!(
            check_pod(&ranges, &over),
            ["cpu max limit to request ratio per Container is 2, but provided ratio is 2.004000"]
        );
    }

    #[test]
    fn pod_items_sum_the_containers_and_take_a_larger_init_container() {
        let ranges = [json!({"spec": {"limits": [{"type": "Pod", "max": {"cpu": "1"}}]}})];
        let mut p = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [
                {"name": "a", "resources": {"limits": {"cpu": "600m"}}},
                {"name": "b", "resources": {"limits": {"cpu": "300m"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"limits": {"cpu": "800m"}}}]
        }});
        assert!(check_pod(&ranges, &p).is_empty());
        p["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] = json!("1200m");
        assert_eq!(
            check_pod(&ranges, &p),
            ["maximum cpu usage per Pod is 1, but limit is 1200m"]
        );
        p["spec"]["containers"][1]["resources"] = json!({});
        p["spec"]["initContainers"] = json!([]);
        assert_eq!(
            check_pod(&ranges, &p),
            ["maximum cpu usage per Pod is 1.  No limit is specified"]
        );
    }
}
