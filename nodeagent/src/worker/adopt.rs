//! A pod worker taking over a pod its node's runtime still runs from before the node agent
//! restarted: the sandbox and the latest container of each name become the worker's own
//! (with their restart counts and last states), so nothing is started twice; containers that
//! ended meanwhile are then restarted, or not, by the pod's restart policy as usual.

use k8s_openapi::api::core::v1 as core;
use tokio::time::Instant;

use super::{PodState, PodWorker, name_of, probe};
use crate::runtime::{Adopted, ContainerState};

impl PodWorker {
    /// Takes `adopted` over; the state the pod is in.
    pub(super) fn take_over(&mut self, adopted: Adopted) -> PodState {
        let spec = self.spec();
        let inits = spec.init_containers.clone().unwrap_or_default();
        let now = Instant::now();
        let mut any_app = false;
        for found in &adopted.containers {
            let (list, slots): (&[core::Container], &mut Vec<super::Slot>) = if found.init {
                (&inits, &mut self.init)
            } else {
                (&spec.containers, &mut self.containers)
            };
            let Some(index) = list.iter().position(|c| c.name == found.name) else {
                continue;
            };
            let slot = &mut slots[index];
            slot.id = Some(found.id.clone());
            slot.restarts = found.restarts;
            slot.last = found.previous.clone();
            slot.running = matches!(found.state, ContainerState::Running { .. });
            if !found.init {
                any_app = true;
                if slot.running {
                    slot.probes = probe::ContainerProbes::of(&list[index], now).0;
                }
            }
        }
        tracing::info!(pod = %name_of(&self.pod), containers = adopted.containers.len(), "took over a pod its runtime still had");
        let sandbox = adopted.sandbox;
        if any_app {
            return PodState::Running { sandbox };
        }
        // Init containers: the first that has not succeeded is the one running or next.
        let next = inits
            .iter()
            .position(|c| {
                !adopted.containers.iter().any(|f| {
                    f.init
                        && f.name == c.name
                        && matches!(f.state, ContainerState::Exited { exit_code: 0, .. })
                })
            })
            .unwrap_or(inits.len());
        PodState::Initializing { sandbox, next }
    }
}
