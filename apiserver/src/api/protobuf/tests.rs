//! Bodies encoded by prost from the Kubernetes messages (the `k8s-pb` crate), the way client-go
//! writes them, decoded back to the JSON a JSON client would have sent.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

use super::*;

/// What client-go sends: `k8s\0` and a `runtime.Unknown` around the object's message.
fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Go writes non-pointer fields even when empty: an ObjectMeta as kubectl's typed client sends it.
fn meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time {
            seconds: Some(0),
            nanos: Some(0),
        }),
        ..Default::default()
    })
}

#[test]
fn the_table_parses_and_every_reference_resolves() {
    let catalog = Catalog::get().expect("messages.json parses");
    assert!(catalog.len() > 200, "{} messages", catalog.len());
    for (kind, message) in catalog.kinds() {
        assert!(catalog.message(message).is_some(), "{kind} -> {message}");
    }
    for (_, message) in catalog.kinds() {
        for field in catalog.message(message).unwrap_or_default() {
            if let FieldType::Message(inner) = &field.ty {
                assert!(
                    catalog.message(inner).is_some(),
                    "{message}.{} -> {inner}",
                    field.name
                );
            }
        }
    }
    assert_eq!(
        catalog.kind("v1", "Namespace"),
        Some("api.core.v1.Namespace")
    );
    assert_eq!(
        catalog.kind("apps/v1", "Deployment"),
        Some("api.apps.v1.Deployment")
    );
}

#[test]
fn a_namespace_as_kubectl_create_namespace_sends_it() {
    let ns = core::Namespace {
        metadata: meta("team-a"),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            ..Default::default()
        }),
    };
    let decoded = decode_object(&envelope("v1", "Namespace", &ns)).expect("decodes");
    assert_eq!(
        decoded,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"},
               "spec": {}, "status": {}})
    );
}

#[test]
fn a_deployment_with_quantities_probes_volumes_and_an_explicit_zero() {
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        image_pull_policy: s(""),
        args: vec!["--port".into(), "".into()],
        ports: vec![core::ContainerPort {
            container_port: Some(8080),
            host_port: Some(0),
            protocol: s("TCP"),
            ..Default::default()
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("memory".to_owned(), Quantity { string: s("128Mi") })].into(),
            requests: [("cpu".to_owned(), Quantity { string: s("100m") })].into(),
            ..Default::default()
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("http"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        volume_mounts: vec![core::VolumeMount {
            name: s("config"),
            mount_path: s("/etc/web"),
            read_only: Some(true),
            ..Default::default()
        }],
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: [("app".to_owned(), "web".to_owned())].into(),
            ..meta("web").unwrap_or_default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: [("app".to_owned(), "web".to_owned())].into(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: [("app".to_owned(), "web".to_owned())].into(),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    volumes: vec![core::Volume {
                        name: s("config"),
                        volume_source: Some(core::VolumeSource {
                            config_map: Some(core::ConfigMapVolumeSource {
                                local_object_reference: Some(core::LocalObjectReference {
                                    name: s("web-config"),
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    }],
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy::default()),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    };
    let decoded = decode_object(&envelope("apps/v1", "Deployment", &deployment)).expect("decodes");
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web", "image": "nginx:1.27",
                            "args": ["--port", ""],
                            "ports": [{"containerPort": 8080, "hostPort": 0, "protocol": "TCP"}],
                            "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": true}]
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "web-config"}}]
                    }
                }
            },
            "status": {}
        })
    );
}

#[test]
fn secret_bytes_become_base64_and_service_ports_int_or_string() {
    let secret = core::Secret {
        metadata: meta("db"),
        data: [("password".to_owned(), b"s3cr\xff".to_vec())].into(),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let decoded = decode_object(&envelope("v1", "Secret", &secret)).expect("decodes");
    assert_eq!(decoded["data"], json!({"password": "czNjcv8="}));
    assert_eq!(decoded["type"], json!("Opaque"));

    let service = core::Service {
        metadata: meta("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: s("http"),
                port: Some(80),
                target_port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: s(""),
                }),
                node_port: Some(0),
                ..Default::default()
            }],
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode_object(&envelope("v1", "Service", &service)).expect("decodes");
    assert_eq!(
        decoded["spec"],
        json!({"ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 0}], "type": "ClusterIP"})
    );
}

#[test]
fn times_and_micro_times_are_rfc3339() {
    let lease = coordination::Lease {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(0),
            }),
            ..meta("node-1").unwrap_or_default()
        }),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(40),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let decoded =
        decode_object(&envelope("coordination.k8s.io/v1", "Lease", &lease)).expect("decodes");
    assert_eq!(
        decoded["metadata"]["creationTimestamp"],
        json!("2023-11-14T22:13:20Z")
    );
    assert_eq!(
        decoded["spec"]["renewTime"],
        json!("2023-11-14T22:13:20.123456Z")
    );
}

#[test]
fn delete_options_decode_for_typed_deletes() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    let decoded =
        decode_object(&envelope("meta.k8s.io/v1", "DeleteOptions", &options)).expect("decodes");
    assert_eq!(decoded["gracePeriodSeconds"], json!(0));
    assert_eq!(decoded["propagationPolicy"], json!("Foreground"));
    assert_eq!(decoded["dryRun"], json!(["All"]));
}

#[test]
fn bad_bodies_are_errors_never_panics() {
    assert_eq!(
        decode_object(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::NoMagic)
    );
    let ns = core::Namespace {
        metadata: meta("x"),
        ..Default::default()
    };
    let body = envelope("v1", "Namespace", &ns);
    // Every truncation of a good body fails cleanly or decodes a prefix; none panics.
    for end in 0..body.len() {
        let _ = decode_object(&body[..end]);
    }
    assert!(matches!(
        decode_object(&body[..body.len() - 3]),
        Err(ProtobufError::Truncated { .. })
    ));
    assert_eq!(
        decode_object(&envelope("ferry.dev/v1", "Source", &ns)),
        Err(ProtobufError::UnknownKind {
            api_version: "ferry.dev/v1".into(),
            kind: "Source".into()
        })
    );
    let mut no_type = MAGIC.to_vec();
    no_type.extend(Unknown::default().encode_to_vec());
    assert_eq!(decode_object(&no_type), Err(ProtobufError::NoTypeMeta));
    // metadata (field 1) sent as a varint: a wire-type error naming the field.
    let mut wrong = MAGIC.to_vec();
    wrong.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("Namespace"),
            }),
            raw: Some(vec![0x08, 0x01]),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let error = decode_object(&wrong).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "metadata: field 1 has wire type 0, which does not fit its declared type"
    );
    // Arbitrary bytes after the magic.
    for seed in 0u8..=255 {
        let mut junk = MAGIC.to_vec();
        junk.extend((0..64).map(|i: u8| i.wrapping_mul(seed).wrapping_add(seed)));
        let _ = decode_object(&junk);
    }
}
