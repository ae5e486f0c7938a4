//! Parsing request paths into what they address. Kubernetes paths cannot be routed by shape
//! alone (`/api/v1/namespaces/x/status` is a namespace's status, `/api/v1/namespaces/x/pods`
//! the pods in it), so this parser knows which names are subresources.

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/metrics`.
    Metrics,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    ResourceList {
        /// API group ("" for core).
        group: String,
        /// Version.
        version: String,
    },
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Root,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
    OpenApiV3 {
        /// API group ("" for core).
        group: String,
        /// Version.
        version: String,
    },
    /// A resource collection, object or subresource.
    Resource(ResourcePath),
    /// `/api/v1/nodes/{node}/proxy/{path}`: a request for the node's kubelet endpoint.
    NodeProxy {
        /// The node.
        node: String,
        /// The path at the node (without its leading `/`).
        path: String,
    },
}

/// A path under a group version that names a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Resource (plural) name.
    pub resource: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
}

/// Subresources ferry serves.
pub const SUBRESOURCES: &[&str] = &["status", "scale", "binding", "eviction", "finalize"];

/// Parses a path (without the query string).
pub fn parse(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["version"] => Some(Target::Version),
        ["healthz" | "readyz" | "livez", ..] => Some(Target::Health),
        ["metrics"] => Some(Target::Metrics),
        ["api"] => Some(Target::CoreVersions),
        ["apis"] => Some(Target::Groups),
        ["apis", group] => Some(Target::Group((*group).to_owned())),
        ["openapi", "v2"] => Some(Target::OpenApiV2),
        ["openapi", "v3"] => Some(Target::OpenApiV3Root),
        ["openapi", "v3", "api", version] => Some(Target::OpenApiV3 {
            group: String::new(),
            version: (*version).to_owned(),
        }),
        ["openapi", "v3", "apis", group, version] => Some(Target::OpenApiV3 {
            group: (*group).to_owned(),
            version: (*version).to_owned(),
        }),
        ["api", "v1", "nodes", node, "proxy", rest @ ..] => Some(Target::NodeProxy {
            node: (*node).to_owned(),
            path: rest.join("/"),
        }),
        ["api", version, rest @ ..] => resource(String::new(), version, rest),
        ["apis", group, version, rest @ ..] => resource((*group).to_owned(), version, rest),
        _ => None,
    }
}

fn resource(group: String, version: &str, rest: &[&str]) -> Option<Target> {
    let version = version.to_owned();
    let path = |namespace: Option<&str>, resource: &str, name: Option<&str>, sub: Option<&str>| {
        Some(Target::Resource(ResourcePath {
            group: group.clone(),
            version: version.clone(),
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        }))
    };
    match rest {
        [] => Some(Target::ResourceList {
            group: group.clone(),
            version: version.clone(),
        }),
        [res] => path(None, res, None, None),
        [res, name] => path(None, res, Some(name), None),
        ["namespaces", ns, third] if !SUBRESOURCES.contains(third) => {
            path(Some(ns), third, None, None)
        }
        [res, name, sub] => path(None, res, Some(name), Some(sub)),
        ["namespaces", ns, res, name] => path(Some(ns), res, Some(name), None),
        ["namespaces", ns, res, name, sub] => path(Some(ns), res, Some(name), Some(sub)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_proxy_paths_keep_their_tail() {
        assert_eq!(
            parse("/api/v1/nodes/n1/proxy/containerLogs/ns/p/c"),
            Some(Target::NodeProxy {
                node: "n1".into(),
                path: "containerLogs/ns/p/c".into()
            })
        );
        assert_eq!(
            parse("/api/v1/nodes/n1/proxy"),
            Some(Target::NodeProxy {
                node: "n1".into(),
                path: String::new()
            })
        );
    }

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Some(Target::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn shapes() {
        let r = res("/api/v1/namespaces/default/pods");
        assert_eq!(
            (
                r.group.as_str(),
                r.resource.as_str(),
                r.namespace.as_deref(),
                r.name
            ),
            ("", "pods", Some("default"), None)
        );
        let r = res("/apis/apps/v1/namespaces/shop/deployments/web/scale");
        assert_eq!(
            (
                r.group.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("apps", Some("web"), Some("scale"))
        );
        let r = res("/api/v1/namespaces/shop/status");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("shop"), Some("status"))
        );
        let r = res("/api/v1/namespaces/shop");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("shop"), None)
        );
        let r = res("/api/v1/pods");
        assert_eq!((r.resource.as_str(), r.namespace), ("pods", None));
        assert_eq!(
            parse("/apis/apps/v1"),
            Some(Target::ResourceList {
                group: "apps".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse("/api"), Some(Target::CoreVersions));
        assert_eq!(parse("/nonsense"), None);
    }
}
