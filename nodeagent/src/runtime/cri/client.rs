//! A CRI v1 client over the runtime's Unix socket: one tonic channel (HTTP/2, reconnecting),
//! one typed call per RPC ferry uses, and gRPC statuses turned into [`RuntimeError`]s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use super::api;
use crate::runtime::RuntimeError;

/// The runtime's gRPC services, as paths.
const RUNTIME: &str = "/runtime.v1.RuntimeService/";
const IMAGES: &str = "/runtime.v1.ImageService/";

/// A CRI client.
#[derive(Clone)]
pub struct CriClient {
    /// Made on first use, inside the tokio runtime (the channel runs a task of its own).
    channel: Arc<OnceLock<Channel>>,
    socket: PathBuf,
}

impl std::fmt::Debug for CriClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriClient")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// A gRPC status as a runtime error: NotFound stays NotFound, the rest say what the runtime
/// said.
fn error(rpc: &str, status: &tonic::Status) -> RuntimeError {
    if status.code() == tonic::Code::NotFound {
        RuntimeError::NotFound(format!("{rpc}: {}", status.message()))
    } else {
        RuntimeError::Failed(format!("{rpc}: {}", status.message()))
    }
}

impl CriClient {
    /// A client of the runtime listening on `socket` (connected on first use, and again
    /// whenever the runtime restarts).
    pub fn new(socket: &Path) -> CriClient {
        CriClient {
            channel: Arc::new(OnceLock::new()),
            socket: socket.to_owned(),
        }
    }

    fn channel(&self) -> Channel {
        self.channel
            .get_or_init(|| {
                let path = self.socket.clone();
                // The URI is a placeholder: the connector always dials the socket.
                Endpoint::from_static("http://cri.invalid")
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(300))
                    .connect_with_connector_lazy(tower::service_fn(move |_| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                        }
                    }))
            })
            .clone()
    }

    /// The socket it talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn call<Req, Resp>(
        &self,
        service: &'static str,
        rpc: &'static str,
        request: Req,
    ) -> Result<Resp, RuntimeError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel());
        grpc.ready().await.map_err(|e| {
            RuntimeError::Failed(format!(
                "{rpc}: the runtime at {} cannot be reached: {e}",
                self.socket.display()
            ))
        })?;
        let path = PathAndQuery::try_from(format!("{service}{rpc}"))
            .map_err(|e| RuntimeError::Failed(format!("{rpc}: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(tonic::Request::new(request), path, codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| error(rpc, &status))
    }

    /// `Version`.
    pub async fn version(&self) -> Result<api::VersionResponse, RuntimeError> {
        self.call(
            RUNTIME,
            "Version",
            api::VersionRequest {
                version: "v1".into(),
            },
        )
        .await
    }

    /// `UpdateRuntimeConfig` with the node's pod CIDR.
    pub async fn set_pod_cidr(&self, cidr: &str) -> Result<(), RuntimeError> {
        let request = api::UpdateRuntimeConfigRequest {
            runtime_config: Some(api::RuntimeConfig {
                network_config: Some(api::NetworkConfig {
                    pod_cidr: cidr.to_owned(),
                }),
            }),
        };
        self.call::<_, api::Empty>(RUNTIME, "UpdateRuntimeConfig", request)
            .await
            .map(drop)
    }

    /// `RunPodSandbox`; the new sandbox's id.
    pub async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
    ) -> Result<String, RuntimeError> {
        let request = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let response: api::RunPodSandboxResponse =
            self.call(RUNTIME, "RunPodSandbox", request).await?;
        Ok(response.pod_sandbox_id)
    }

    /// `StopPodSandbox`.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let request = api::SandboxRef {
            pod_sandbox_id: id.to_owned(),
        };
        self.call::<_, api::Empty>(RUNTIME, "StopPodSandbox", request)
            .await
            .map(drop)
    }

    /// `RemovePodSandbox`.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let request = api::SandboxRef {
            pod_sandbox_id: id.to_owned(),
        };
        self.call::<_, api::Empty>(RUNTIME, "RemovePodSandbox", request)
            .await
            .map(drop)
    }

    /// `PodSandboxStatus`.
    pub async fn pod_sandbox_status(
        &self,
        id: &str,
    ) -> Result<api::PodSandboxStatus, RuntimeError> {
        let request = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: false,
        };
        let response: api::PodSandboxStatusResponse =
            self.call(RUNTIME, "PodSandboxStatus", request).await?;
        response
            .status
            .ok_or_else(|| RuntimeError::Failed(format!("PodSandboxStatus of {id}: no status")))
    }

    /// `PodSandboxStatus` with `verbose`: the runtime's own description of the sandbox.
    pub async fn pod_sandbox_info(
        &self,
        id: &str,
    ) -> Result<HashMap<String, String>, RuntimeError> {
        let request = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: true,
        };
        let response: api::PodSandboxStatusResponse =
            self.call(RUNTIME, "PodSandboxStatus", request).await?;
        Ok(response.info)
    }

    /// `ListPodSandbox`, of the sandboxes carrying `labels`.
    pub async fn list_pod_sandboxes(
        &self,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<Vec<api::PodSandbox>, RuntimeError> {
        let request = api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                id: String::new(),
                label_selector: labels,
            }),
        };
        let response: api::ListPodSandboxResponse =
            self.call(RUNTIME, "ListPodSandbox", request).await?;
        Ok(response.items)
    }

    /// `CreateContainer`; the new container's id.
    pub async fn create_container(
        &self,
        sandbox: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, RuntimeError> {
        let request = api::CreateContainerRequest {
            pod_sandbox_id: sandbox.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let response: api::CreateContainerResponse =
            self.call(RUNTIME, "CreateContainer", request).await?;
        Ok(response.container_id)
    }

    /// `StartContainer`.
    pub async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let request = api::ContainerRef {
            container_id: id.to_owned(),
        };
        self.call::<_, api::Empty>(RUNTIME, "StartContainer", request)
            .await
            .map(drop)
    }

    /// `StopContainer`, killing after `timeout` seconds.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), RuntimeError> {
        let request = api::StopContainerRequest {
            container_id: id.to_owned(),
            timeout,
        };
        self.call::<_, api::Empty>(RUNTIME, "StopContainer", request)
            .await
            .map(drop)
    }

    /// `RemoveContainer`.
    pub async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let request = api::ContainerRef {
            container_id: id.to_owned(),
        };
        self.call::<_, api::Empty>(RUNTIME, "RemoveContainer", request)
            .await
            .map(drop)
    }

    /// `ReopenContainerLog`: the runtime writes a new file at the container's log path (after
    /// the old one was renamed).
    pub async fn reopen_container_log(&self, id: &str) -> Result<(), RuntimeError> {
        let request = api::ContainerRef {
            container_id: id.to_owned(),
        };
        self.call::<_, api::Empty>(RUNTIME, "ReopenContainerLog", request)
            .await
            .map(drop)
    }

    /// `ListContainers`, of the containers carrying `labels`.
    pub async fn list_containers(
        &self,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<Vec<api::Container>, RuntimeError> {
        let request = api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                id: String::new(),
                pod_sandbox_id: String::new(),
                label_selector: labels,
            }),
        };
        let response: api::ListContainersResponse =
            self.call(RUNTIME, "ListContainers", request).await?;
        Ok(response.containers)
    }

    /// `ContainerStatus`.
    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, RuntimeError> {
        let request = api::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        let response: api::ContainerStatusResponse =
            self.call(RUNTIME, "ContainerStatus", request).await?;
        response
            .status
            .ok_or_else(|| RuntimeError::Failed(format!("ContainerStatus of {id}: no status")))
    }

    /// `ExecSync`.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse, RuntimeError> {
        let request = api::ExecSyncRequest {
            container_id: id.to_owned(),
            cmd,
            timeout: i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX),
        };
        self.call(RUNTIME, "ExecSync", request).await
    }

    /// `Exec`: the URL of the runtime's streaming server for it.
    pub async fn exec(&self, request: api::ExecRequest) -> Result<String, RuntimeError> {
        let response: api::ExecResponse = self.call(RUNTIME, "Exec", request).await?;
        Ok(response.url)
    }

    /// `Attach`: the URL of the runtime's streaming server for it.
    pub async fn attach(&self, request: api::AttachRequest) -> Result<String, RuntimeError> {
        let response: api::ExecResponse = self.call(RUNTIME, "Attach", request).await?;
        Ok(response.url)
    }

    /// `ImageStatus`: the image when the runtime has it.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>, RuntimeError> {
        let request = api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: image.to_owned(),
                user_specified_image: image.to_owned(),
            }),
            verbose: false,
        };
        let response: api::ImageStatusResponse = self.call(IMAGES, "ImageStatus", request).await?;
        Ok(response.image.filter(|i| !i.id.is_empty()))
    }

    /// `PullImage`; the image's reference.
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
    ) -> Result<String, RuntimeError> {
        let request = api::PullImageRequest {
            image: Some(api::ImageSpec {
                image: image.to_owned(),
                user_specified_image: image.to_owned(),
            }),
            auth,
        };
        let response: api::PullImageResponse = self.call(IMAGES, "PullImage", request).await?;
        Ok(response.image_ref)
    }
}
