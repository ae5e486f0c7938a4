//! Images as a node pulls them: the pull policy of a container (Kubernetes' defaults), the
//! credentials of a pod's `imagePullSecrets` (`kubernetes.io/dockerconfigjson` and
//! `kubernetes.io/dockercfg`) matched to an image's registry, and what a pull did.

use std::time::Duration;

use base64::Engine as _;

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time a container starts.
    Always,
    /// Pull when the node does not have it.
    IfNotPresent,
    /// Never pull: the image must be on the node.
    Never,
}

impl PullPolicy {
    /// The policy of a container: the one it names, else `Always` for an image tagged
    /// `:latest` or not tagged (and not pinned by digest), else `IfNotPresent`.
    pub fn of(given: Option<&str>, image: &str) -> PullPolicy {
        match given {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let (_, tag) = split_tag(image);
                if !image.contains('@') && tag.is_none_or(|t| t == "latest") {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        }
    }
}

/// `image` without its tag, and the tag (a `:` after the last `/`).
fn split_tag(image: &str) -> (&str, Option<&str>) {
    let name = image.split('@').next().unwrap_or(image);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(&name[slash + i + 1..])),
        None => (name, None),
    }
}

/// The registry an image is pulled from: its first component when that looks like a host
/// (has a `.` or a `:`, or is `localhost`), else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_owned()
        }
        _ => "docker.io".to_owned(),
    }
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry (`host[:port]`) as the secret names it.
    pub server: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why a pull secret could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PullSecretError {
    /// Not JSON of the docker config shape.
    #[error("is not a docker config: {0}")]
    Shape(String),
    /// An `auth` entry is not base64 of `user:password`.
    #[error("has an auth entry for {0} that is not base64 of user:password")]
    Auth(String),
}

/// The credentials in a pull secret's data: `.dockerconfigjson` (`{"auths": {...}}`) or the
/// older `.dockercfg` (the `auths` map itself).
pub fn parse_docker_config(
    bytes: &[u8],
    legacy: bool,
) -> Result<Vec<RegistryAuth>, PullSecretError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| PullSecretError::Shape(e.to_string()))?;
    let auths = if legacy {
        Some(&value)
    } else {
        value.get("auths")
    };
    let Some(auths) = auths.and_then(serde_json::Value::as_object) else {
        return Err(PullSecretError::Shape("no \"auths\" map".into()));
    };
    let mut out = Vec::new();
    for (server, entry) in auths {
        let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let (mut username, mut password) =
            (text("username").to_owned(), text("password").to_owned());
        if !text("auth").is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text("auth"))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| PullSecretError::Auth(server.clone()))?;
            let (u, p) = decoded
                .split_once(':')
                .ok_or_else(|| PullSecretError::Auth(server.clone()))?;
            (username, password) = (u.to_owned(), p.to_owned());
        }
        // Servers are written as hosts or as URLs (`https://index.docker.io/v1/`).
        let server = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        out.push(RegistryAuth {
            server,
            username,
            password,
        });
    }
    Ok(out)
}

/// The credentials among `auths` for `image`'s registry.
pub fn auth_for<'a>(auths: &'a [RegistryAuth], image: &str) -> Option<&'a RegistryAuth> {
    let registry = registry_of(image);
    let hub = |s: &str| matches!(s, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    auths
        .iter()
        .find(|a| a.server == registry || (hub(&a.server) && hub(&registry)))
}

/// What a node is asked to make sure of before it creates a container.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// The image as the pod names it.
    pub image: String,
    /// Its pull policy.
    pub policy: PullPolicy,
    /// The pod's pull credentials.
    pub auths: Vec<RegistryAuth>,
}

/// What making sure of an image did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReady {
    /// It was on the node already.
    Present,
    /// It was pulled; how long that took.
    Pulled(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_default_as_kubernetes_does() {
        assert_eq!(PullPolicy::of(None, "busybox"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "busybox:latest"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::of(None, "127.0.0.1:5000/a/b"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::of(None, "127.0.0.1:5000/a/b:2"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::of(None, "a/b@sha256:00"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(PullPolicy::of(Some("Never"), "busybox"), PullPolicy::Never);
    }

    #[test]
    fn registries_and_credentials_are_matched() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(
            registry_of("127.0.0.1:5000/ferry/busybox:2"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_of("ferry.local/pause:1"), "ferry.local");
        let config = br#"{"auths": {"127.0.0.1:5000": {"auth": "ZmVycnk6c2VrcmV0"},
            "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}"#;
        let auths = parse_docker_config(config, false).expect("parsed");
        let local = auth_for(&auths, "127.0.0.1:5000/ferry/busybox:2").expect("found");
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("ferry", "sekret")
        );
        assert_eq!(
            auth_for(&auths, "busybox").map(|a| a.username.as_str()),
            Some("u")
        );
        assert!(auth_for(&auths, "quay.io/x").is_none());
        assert!(!format!("{local:?}").contains("sekret"));
    }

    #[test]
    fn bad_pull_secrets_say_why() {
        assert!(matches!(
            parse_docker_config(b"[]", false),
            Err(PullSecretError::Shape(_))
        ));
        assert_eq!(
            parse_docker_config(br#"{"auths": {"r.io": {"auth": "!!"}}}"#, false),
            Err(PullSecretError::Auth("r.io".into()))
        );
        let legacy = parse_docker_config(br#"{"r.io": {"username": "a", "password": "b"}}"#, true)
            .expect("legacy");
        assert_eq!(legacy[0].server, "r.io");
    }
}
