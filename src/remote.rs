//! What the commands that run against an apiserver share: a runtime, a client for `--server`,
//! and a token that SIGINT and SIGTERM cancel.

use std::future::Future;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// The machine's hostname (`ferry` when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "ferry".into())
}

/// Runs `work` with a client for `server` until it returns; SIGINT or SIGTERM cancel its token.
pub fn run<F, Fut>(server: &str, work: F) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let url = server
            .parse()
            .with_context(|| format!("invalid --server {server}"))?;
        let client =
            kube::Client::try_from(kube::Config::new(url)).context("building the client")?;
        let cancel = CancellationToken::new();
        tokio::spawn(crate::serve::stop_on_signal(cancel.clone()));
        work(client, cancel).await
    })
}
