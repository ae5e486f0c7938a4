//! A node agent started again finds its pods again: every sandbox recorded under the node's
//! root whose network is still there comes back with its containers; those whose process
//! still runs (the same process: pid and start time) are adopted, their pipes read again and
//! their end watched; those that ended meanwhile get the exit code their
//! keeper wrote. Pods whose network is gone (the machine restarted) are removed, and what the
//! network holds for pods not found again is swept. The pod workers then take each pod up
//! where it was ([`ProcessRuntime::adopted`]).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use tokio::sync::watch;

use super::keeper::Pipes;
use super::record;
use super::{Proc, ProcessRuntime, Sandbox, Waiter, now, persist};
use crate::runtime::network::PodNet;
use crate::runtime::{Adopted, AdoptedContainer, ContainerState, SandboxInfo};

/// The number in a container id (`process-12` → 12), for ordering.
fn serial(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The starts of one container name: (serial, id, record).
type Starts<'a> = Vec<(u64, &'a String, &'a Proc)>;

impl ProcessRuntime {
    /// Loads the records under the node's root and adopts what still runs; returns how many
    /// containers were adopted running.
    pub async fn recover_records(&self) -> usize {
        let mut kept = HashSet::new();
        let mut running = 0;
        let mut highest = 0;
        for pod in record::load(&self.root.join("pods")) {
            let gone = pod
                .sandbox
                .netns
                .as_ref()
                .is_some_and(|ns| !Path::new("/run/netns").join(ns).exists());
            if gone {
                tracing::info!(pod = %pod.sandbox.name, "the network of a recorded pod is gone; it starts afresh");
                if let Err(e) = std::fs::remove_dir_all(&pod.dir) {
                    tracing::warn!(dir = %pod.dir.display(), error = %e, "a stale pod directory could not be removed");
                }
                continue;
            }
            kept.insert(pod.sandbox.pod_uid.clone());
            let sandbox = Sandbox {
                info: SandboxInfo {
                    id: pod.sandbox.id.clone(),
                    pod_uid: pod.sandbox.pod_uid.clone(),
                    ip: pod.sandbox.ip.clone(),
                    ready: true,
                },
                pod: (pod.sandbox.namespace.clone(), pod.sandbox.name.clone()),
                dir: pod.dir.clone(),
                net: PodNet {
                    ip: pod.sandbox.ip.clone(),
                    netns: pod.sandbox.netns.clone(),
                },
            };
            let mut follow = Vec::new();
            let mut procs = Vec::new();
            for record in pod.containers {
                highest = highest.max(serial(&record.id));
                let pipes = Pipes::beside(&record.log);
                let waiter = match (record.pid, record.start_ticks) {
                    (Some(pid), Some(ticks)) if record::alive(&record) => {
                        Some(Waiter::Adopted { pid, ticks })
                    }
                    _ => None,
                };
                let mut proc = Proc {
                    stdin: super::stdin::StdinState::after_restart(&record.config),
                    sandbox: record.sandbox.clone(),
                    config: record.config.clone(),
                    log: record.log.clone(),
                    state: record.state.clone(),
                    pid: None,
                    start_ticks: None,
                    pipes: pipes.clone(),
                    ended: watch::channel(true).0,
                };
                match waiter {
                    Some(waiter) => {
                        proc.pid = record.pid;
                        proc.start_ticks = record.start_ticks;
                        proc.ended.send_replace(false);
                        running += 1;
                        follow.push((record.id.clone(), waiter, pipes));
                    }
                    None => {
                        if let ContainerState::Running { started_at } = &record.state {
                            // It ended while no agent watched: its keeper wrote the code
                            // (none: the keeper was killed too).
                            let code = pipes.exit_code().unwrap_or(137);
                            proc.state = ContainerState::Exited {
                                started_at: started_at.clone(),
                                finished_at: now(),
                                exit_code: code,
                                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                            };
                            persist(&proc.record(&record.id));
                        }
                    }
                }
                procs.push((record.id, proc));
            }
            let adopted = self.with(|inner| {
                inner.sandboxes.insert(sandbox.info.id.clone(), sandbox);
                for (id, proc) in procs {
                    inner.containers.insert(id, proc);
                }
            });
            if adopted.is_err() {
                tracing::error!("the process runtime's state is poisoned");
                return 0;
            }
            for (id, waiter, pipes) in follow {
                let log = self
                    .with(|inner| inner.containers.get(&id).map(|p| p.log.clone()))
                    .ok()
                    .flatten();
                if let Some(log) = log {
                    tracing::info!(container = %id, "adopted a running container");
                    let readers = pipes.open();
                    self.follow(id, waiter, pipes, readers, log);
                }
            }
        }
        if self
            .with(|inner| inner.next = inner.next.max(highest))
            .is_err()
        {
            tracing::error!("the process runtime's state is poisoned");
        }
        self.network.sweep(&kept);
        running
    }

    /// What this runtime has of pod `pod_uid`: its sandbox and the latest container of each
    /// name, with how often each was started before.
    pub fn adopted(&self, pod_uid: &str) -> Option<Adopted> {
        self.with(|inner| {
            let sandbox = inner
                .sandboxes
                .values()
                .find(|s| s.info.pod_uid == pod_uid)?;
            let mut by_name: BTreeMap<(bool, String), Starts<'_>> = BTreeMap::new();
            for (id, proc) in &inner.containers {
                if proc.sandbox == sandbox.info.id {
                    by_name
                        .entry((proc.config.init, proc.config.name.clone()))
                        .or_default()
                        .push((serial(id), id, proc));
                }
            }
            let containers = by_name
                .into_iter()
                .filter_map(|((init, name), mut starts)| {
                    starts.sort_by_key(|(n, _, _)| *n);
                    let (_, id, latest) = starts.last()?;
                    let previous = starts
                        .len()
                        .checked_sub(2)
                        .map(|i| starts[i].2.state.clone());
                    Some(AdoptedContainer {
                        id: (*id).clone(),
                        name,
                        init,
                        restarts: u32::try_from(starts.len() - 1).unwrap_or(u32::MAX),
                        state: latest.state.clone(),
                        previous,
                    })
                })
                .collect();
            Some(Adopted {
                sandbox: sandbox.info.clone(),
                containers,
            })
        })
        .ok()
        .flatten()
    }
}
