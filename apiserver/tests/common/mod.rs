//! An apiserver in the test's own process, on SQLite or PostgreSQL, served over loopback TCP
//! and reached with the `kube` crate's client. (Shared by several test crates; each uses part
//! of it.)
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ferry_apiserver::api::{ApiState, admission::Admission};
use ferry_apiserver::storage::Storage;
use tokio_util::sync::CancellationToken;

/// A running apiserver and a client for it.
pub struct Server {
    /// Its storage, for what no API offers (compaction).
    pub storage: Storage,
    /// A kube client pointed at it.
    pub client: kube::Client,
    /// Stops it.
    pub cancel: CancellationToken,
    /// Where it serves.
    pub url: String,
    _dir: tempfile::TempDir,
}

/// An apiserver on a fresh SQLite database.
pub async fn server() -> Server {
    server_on(None).await
}

/// An apiserver on `db` (a PostgreSQL URL), or on a fresh SQLite database.
pub async fn server_on(db: Option<String>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("db").display()));
    let storage = Storage::open(&url).await.expect("storage");
    let admission = Admission::default();
    admission
        .attach(&storage)
        .await
        .expect("CRDs and PriorityClasses");
    ferry_apiserver::bootstrap::system_namespaces(&storage, &admission)
        .await
        .expect("namespaces");
    let cancel = CancellationToken::new();
    let state = Arc::new(ApiState {
        storage: storage.clone(),
        admission,
        shutdown: cancel.child_token(),
        ranges: Default::default(),
        metrics: Default::default(),
    });
    let (listener, addr) = ferry_apiserver::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    tokio::spawn(ferry_apiserver::server::serve(
        listener,
        state,
        cancel.clone(),
        Duration::from_secs(5),
    ));
    let url = format!("http://{addr}");
    let config = kube::Config::new(url.parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    Server {
        storage,
        client,
        cancel,
        url,
        _dir: dir,
    }
}

impl Drop for Server {
    /// Stops the server. (Being `Drop` also makes an `async move` block that uses the server
    /// take all of it, the temporary directory included, not just the fields it names.)
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
