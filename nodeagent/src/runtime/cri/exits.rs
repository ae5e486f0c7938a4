//! Which of a node's CRI containers have ended, learnt by listing them: containerd 1.6 has no
//! event stream over CRI, so one poller lists the node's containers every
//! [`POLL`] while anyone waits, and wakes every waiter when a container it has not seen
//! ended yet has.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::api;
use super::client::CriClient;

/// How often the node's containers are listed while a worker waits on one.
pub const POLL: Duration = Duration::from_millis(200);

/// The ended containers of one node.
#[derive(Debug)]
pub struct Exits {
    client: CriClient,
    labels: HashMap<String, String>,
    ended: Mutex<HashSet<String>>,
    generation: watch::Sender<u64>,
    polling: Mutex<bool>,
}

impl Exits {
    /// Exits of the containers carrying `labels` (the node's).
    pub fn new(client: CriClient, labels: HashMap<String, String>) -> Arc<Exits> {
        Arc::new(Exits {
            client,
            labels,
            ended: Mutex::new(HashSet::new()),
            generation: watch::Sender::new(0),
            polling: Mutex::new(false),
        })
    }

    fn ended(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `id` has ended (its status said so), waking its waiters.
    pub fn saw_end(&self, id: &str) {
        if self.ended().insert(id.to_owned()) {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Forgets a removed container.
    pub fn forget(&self, id: &str) {
        self.ended().remove(id);
    }

    /// Whether `id` is known to have ended.
    pub fn has_ended(&self, id: &str) -> bool {
        self.ended().contains(id)
    }

    /// Resolves once `id` has ended.
    pub fn wait(self: &Arc<Self>, id: &str) -> impl Future<Output = ()> + Send + 'static {
        let mut generation = self.generation.subscribe();
        self.start_polling();
        let exits = self.clone();
        let id = id.to_owned();
        async move {
            loop {
                generation.borrow_and_update();
                if exits.has_ended(&id) {
                    return;
                }
                if generation.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Starts the poller unless it runs; it stops when nobody waits.
    fn start_polling(self: &Arc<Self>) {
        let mut polling = self.polling.lock().unwrap_or_else(PoisonError::into_inner);
        if *polling {
            return;
        }
        *polling = true;
        let exits = self.clone();
        tokio::spawn(async move { exits.poll().await });
    }

    async fn poll(self: Arc<Self>) {
        loop {
            tokio::time::sleep(POLL).await;
            match self.client.list_containers(self.labels.clone()).await {
                Ok(containers) => {
                    for c in containers {
                        let exited = c.state == api::ContainerState::ContainerExited as i32
                            || c.state == api::ContainerState::ContainerUnknown as i32;
                        if exited {
                            self.saw_end(&c.id);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the runtime's containers could not be listed")
                }
            }
            let mut polling = self.polling.lock().unwrap_or_else(PoisonError::into_inner);
            // Every waiter holds a receiver; with none left the poller rests.
            if self.generation.receiver_count() == 0 {
                *polling = false;
                return;
            }
        }
    }
}
