//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount, as
//! pods and clients expect (the official Python client's tests wait for it); one deleted is
//! made again.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};

/// The account every namespace gets.
pub const DEFAULT: &str = "default";

struct Context {
    client: kube::Client,
    backoff: Backoff,
}

/// Runs until `cancel`.
pub fn run(
    client: kube::Client,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    // Watch only the default accounts: their deletion names the namespace to look at.
    let accounts = watcher::Config::default().fields(&format!("metadata.name={DEFAULT}"));
    let controller = super::runner::controller(Api::<Namespace>::all(client.clone())).watches(
        Api::<ServiceAccount>::all(client.clone()),
        accounts,
        |sa| {
            sa.namespace()
                .map(|ns| kube::runtime::reflector::ObjectRef::new(&ns))
        },
    );
    let ctx = Arc::new(Context {
        client,
        backoff: Backoff::default(),
    });
    async move {
        controller
            .graceful_shutdown_on(cancel.cancelled_owned())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {})
            .await;
    }
}

fn error_policy(ns: Arc<Namespace>, error: &ControllerError, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failed(&ns.name_any());
    tracing::warn!(namespace = %ns.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let name = ns.name_any();
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let mut account = ServiceAccount::default();
    account.metadata.name = Some(DEFAULT.into());
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => tracing::debug!(namespace = %name, "created the default service account"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        // The namespace went away meanwhile, or is being deleted.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => {}
        Err(e) => {
            return Err(ControllerError::api(
                "create",
                format!("ServiceAccount {name}/default"),
                e,
            ));
        }
    }
    ctx.backoff.succeeded(&name);
    Ok(Action::await_change())
}
