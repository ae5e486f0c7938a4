//! The Job controller: runs a Job's pods to `completions` successes (NonIndexed, or Indexed
//! with one pod per index and `JOB_COMPLETION_INDEX`), at most `parallelism` at a time;
//! replaces failed pods after a back-off (10 s doubling to 10 min) until `backoffLimit`;
//! honours `activeDeadlineSeconds`, `podFailurePolicy`, `suspend` and
//! `ttlSecondsAfterFinished`; counts every finished pod exactly once ([`tracking`]); writes the
//! status and conditions `kubectl wait --for=condition=complete` and GitOps health read.

pub mod policy;
pub mod status;
pub mod tracking;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::events::{Involved, Recorder};
use ferry_schema::selector::LabelSelector;
use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::expectations::Expectations;
use super::informer::Informer;
use super::owner::{self, controller_ref, key_of};
use super::pods;
use super::runner;
use crate::controllers::cached_pod::CachedPod;
use policy::{INDEX_KEY, Verdict};
use status::Failure;

/// What every Job reconcile shares.
struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    expectations: Expectations,
    backoff: Backoff,
    recorder: Recorder,
    /// Per Job, the pods whose finalizer this controller removed (they are counted) while the
    /// cache may still show it, so that a lagging cache never counts a pod twice; and the pods
    /// it deleted itself (on suspend or a lowered parallelism), which are not failures.
    ledger: Mutex<HashMap<String, Ledger>>,
}

#[derive(Debug, Default)]
struct Ledger {
    released: HashSet<String>,
    removed: HashSet<String>,
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

fn selector_of(job: &Job) -> Result<LabelSelector, ControllerError> {
    runner::parse_selector(job, job.spec.as_ref().and_then(|s| s.selector.as_ref()))
}

/// The Job controller, reading the Jobs from their shared informer (the CronJob controller
/// reads the same cache) and subscribed to `pods`; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    jobs: &Informer<Job>,
    pods: &Informer<CachedPod>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = runner::shared_controller(jobs);
    let jobs = controller.store();
    let (orphans, candidates) = tracking::orphans();
    let seen = jobs.clone();
    let triggers = pods.subscribe(move |pod: &CachedPod| {
        if tracking::maybe_orphan(pod, &seen)
            && orphans.unbounded_send(Arc::new(pod.clone())).is_err()
        {
            tracing::debug!("the orphan sweeper has stopped");
        }
        runner::owners_of(pod, &seen, selector_of)
    });
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.store(),
        expectations: Expectations::default(),
        backoff: Backoff::default(),
        recorder,
        ledger: Mutex::default(),
    });
    let sweeper = tracking::sweep_orphans(client, jobs, candidates, cancel.clone());
    let run = runner::drive(controller, triggers, reconcile, ctx, cancel);
    async move {
        futures::join!(run, sweeper);
    }
}

/// What one pass learnt of a Job's pods.
#[derive(Debug, Default)]
struct Census {
    /// Running or waiting to.
    active: Vec<Arc<CachedPod>>,
    /// Being deleted before they ended.
    terminating: i32,
    /// Ended pods still holding the finalizer: to release.
    to_release: Vec<Arc<CachedPod>>,
    /// The uids of ended pods to count, as `uncountedTerminatedPods` will say.
    succeeded: BTreeSet<String>,
    failed: BTreeSet<String>,
    /// Indexes of Indexed pods that succeeded.
    completed: BTreeSet<i32>,
    /// A `FailJob` rule matched.
    fail_job: Option<String>,
    /// When the latest failed pod ended.
    last_failure: Option<jiff::Timestamp>,
}

#[tracing::instrument(level = "debug", skip_all, fields(job = %key_of(job.as_ref())))]
async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(job.as_ref());
    let ns = job.namespace().unwrap_or_default();
    let Some(spec) = job.spec.as_ref() else {
        return Err(ControllerError::Invalid {
            what: format!("Job {key}"),
            message: "no spec".into(),
        });
    };
    let selector = runner::non_empty(job.as_ref(), selector_of(&job)?)?;
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = claim(&job, &selector, &ctx).await?;
    let old = job.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();

    if status::finished(&old).is_some() || job.metadata.deletion_timestamp.is_some() {
        // Everything is counted (or nothing needs to be): free the pods still held.
        for pod in owned.iter().filter(|p| tracking::has_finalizer(p)) {
            tracking::release(&pod_api, pod).await?;
        }
        if job.metadata.deletion_timestamp.is_some() {
            forget(&ctx, &key);
            return Ok(Action::await_change());
        }
        return expire(&job, &key, &ctx, now).await;
    }

    let census = census(spec, &old, &owned, &key, &ctx);
    let failed_total = old.failed.unwrap_or(0) + census.failed.len() as i32;
    let succeeded_total = old.succeeded.unwrap_or(0) + census.succeeded.len() as i32;
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let mut completed = policy::parse_indexes(
        old.completed_indexes.as_deref().unwrap_or_default(),
        completions.unwrap_or(0),
    );
    completed.extend(census.completed.iter().copied());

    // The start, reset on each resume.
    let suspended = spec.suspend == Some(true);
    let was_suspended = status::holds(&old, "Suspended").is_some();
    let start = match (&old.start_time, suspended, was_suspended) {
        (_, true, _) => old.start_time.clone(),
        (Some(t), false, false) => Some(t.clone()),
        _ => Some(Time(now)),
    };

    // The outcome, once decided, stays decided.
    let failure = decided_failure(&old)
        .or_else(|| census.fail_job.clone().map(Failure::policy))
        .or_else(|| (failed_total > spec.backoff_limit.unwrap_or(6)).then(Failure::backoff_limit))
        .or_else(|| deadline_passed(spec, start.as_ref(), suspended, now).then(Failure::deadline));
    let success = failure.is_none()
        && (status::holds(&old, "SuccessCriteriaMet").is_some()
            || match (indexed, completions) {
                (true, Some(c)) => (0..c).all(|i| completed.contains(&i)),
                (_, Some(c)) => succeeded_total >= c,
                (_, None) => succeeded_total > 0 && census.active.is_empty(),
            });
    let stamp = Time(now);
    let mut conditions = old.conditions.clone().unwrap_or_default();
    if let Some(f) = &failure {
        status::set(
            &mut conditions,
            "FailureTarget",
            true,
            &f.reason,
            &f.message,
            &stamp,
        );
    } else if success {
        status::set(
            &mut conditions,
            "SuccessCriteriaMet",
            true,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            &stamp,
        );
    }

    // Step one: write down what is about to be counted, before any finalizer goes.
    let mut uncounted = UncountedTerminatedPods {
        succeeded: Some(census.succeeded.iter().cloned().collect()),
        failed: Some(census.failed.iter().cloned().collect()),
    };
    let mut version = job.resource_version();
    let newly_decided = conditions != old.conditions.clone().unwrap_or_default();
    if !census.to_release.is_empty() || newly_decided {
        let first = JobStatus {
            uncounted_terminated_pods: Some(uncounted.clone()),
            completed_indexes: indexed.then(|| policy::format_indexes(&completed)),
            conditions: Some(conditions.clone()),
            ..old.clone()
        };
        version = write_status(&ctx, &job, version, &first).await?;
    }
    // Step two: release them.
    let released = join_all(
        census
            .to_release
            .iter()
            .map(|p| tracking::release(&pod_api, p)),
    )
    .await;
    for (pod, result) in census.to_release.iter().zip(released) {
        result?;
        if let Some(uid) = pod.uid() {
            ledger(&ctx, &key, |l| l.released.insert(uid));
        }
    }
    // Step three (in the final status): they move into the counts.
    uncounted.succeeded = Some(Vec::new());
    uncounted.failed = Some(Vec::new());

    // Pods: none once the outcome is decided or while suspended; else toward the wanted
    // number, a failed pod's replacement after its back-off.
    let mut requeue: Option<Duration> = None;
    let about = Involved::of(job.as_ref());
    let mut active = census.active.clone();
    let mut removing = 0;
    if failure.is_some() || success || suspended {
        remove(&ctx, &key, &pod_api, &about, &active).await?;
        removing += active.len();
        active.clear();
    } else if ctx.expectations.satisfied(&key, |name| {
        ctx.pods.get(&ObjectRef::new(name).within(&ns)).is_some()
    }) {
        let wait = census
            .last_failure
            .map(|at| {
                let since = Duration::from_secs((now.as_second() - at.as_second()).max(0) as u64);
                policy::backoff(failed_total).saturating_sub(since)
            })
            .unwrap_or_default();
        let missing = if indexed {
            let running: BTreeSet<i32> =
                active.iter().filter_map(|p| policy::index_of(p)).collect();
            let room = (spec.parallelism.unwrap_or(1) - active.len() as i32).max(0) as usize;
            (0..completions.unwrap_or(0))
                .filter(|i| !completed.contains(i) && !running.contains(i))
                .take(room)
                .map(Some)
                .collect::<Vec<_>>()
        } else {
            let want =
                policy::wanted_active(spec.parallelism.unwrap_or(1), completions, succeeded_total);
            let have = active.len() as i32;
            if have > want {
                let mut extra = active.clone();
                pods::deletion_order(&mut extra);
                extra.truncate((have - want) as usize);
                remove(&ctx, &key, &pod_api, &about, &extra).await?;
                removing += extra.len();
                active.retain(|p| !extra.iter().any(|e| e.uid() == p.uid()));
            }
            vec![None; (want - have).max(0) as usize]
        };
        if !missing.is_empty() && !wait.is_zero() {
            requeue = Some(wait);
        } else if !missing.is_empty() {
            let new: Vec<Pod> = missing.iter().map(|i| new_pod(&job, spec, *i)).collect();
            let created = pods::create_each(&pod_api, new).await;
            if !created.names.is_empty() {
                let message = match created.names.as_slice() {
                    [one] => format!("Created pod: {one}"),
                    many => format!("Created {} pods", many.len()),
                };
                ctx.recorder
                    .record(&about, "Normal", "SuccessfulCreate", &message)
                    .await;
            }
            ctx.expectations.created(&key, created.names);
            if let Some(e) = created.failure {
                ctx.recorder
                    .record(&about, "Warning", "FailedCreate", &e.to_string())
                    .await;
                return Err(e);
            }
        }
    }

    // The final status.
    let ready = active.iter().filter(|p| pods::is_ready(p)).count() as i32;
    // Complete or Failed once no pod of the Job is left running or terminating.
    let settled = active.is_empty() && census.terminating == 0 && removing == 0;
    let mut completion_time = old.completion_time.clone();
    if let (Some(f), true) = (&failure, settled) {
        status::set(
            &mut conditions,
            "Failed",
            true,
            &f.reason,
            &f.message,
            &stamp,
        );
        ctx.recorder
            .record(&about, "Warning", &f.reason, &f.message)
            .await;
    } else if success && settled {
        let message = "Reached expected number of succeeded pods";
        status::set(
            &mut conditions,
            "Complete",
            true,
            "CompletionsReached",
            message,
            &stamp,
        );
        completion_time.get_or_insert(stamp.clone());
        ctx.recorder
            .record(&about, "Normal", "Completed", "Job completed")
            .await;
    } else if suspended {
        status::set(
            &mut conditions,
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            &stamp,
        );
    } else if was_suspended {
        status::set(
            &mut conditions,
            "Suspended",
            false,
            "JobResumed",
            "Job resumed",
            &stamp,
        );
    }
    let next = JobStatus {
        active: nonzero(active.len() as i32),
        ready: Some(ready),
        terminating: Some(census.terminating),
        succeeded: nonzero(succeeded_total),
        failed: nonzero(failed_total),
        start_time: start.clone(),
        completion_time,
        completed_indexes: indexed.then(|| policy::format_indexes(&completed)),
        uncounted_terminated_pods: Some(uncounted),
        conditions: (!conditions.is_empty()).then_some(conditions),
        ..old.clone()
    };
    if comparable(&next) != comparable(&old) {
        write_status(&ctx, &job, version, &next).await?;
    }
    ctx.backoff.succeeded(&key);

    // Look again when the back-off or the deadline ends.
    let deadline = spec
        .active_deadline_seconds
        .filter(|_| !suspended && failure.is_none() && !success)
        .and_then(|s| {
            let started = start.as_ref()?.0.as_second();
            Some(Duration::from_secs(
                (started + s - now.as_second()).max(1) as u64
            ))
        });
    Ok(match requeue.into_iter().chain(deadline).min() {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// The Job's pods after adoption and release (see [`owner::claim`]).
async fn claim(
    job: &Arc<Job>,
    selector: &LabelSelector,
    ctx: &Context,
) -> Result<Vec<Arc<CachedPod>>, ControllerError> {
    let ns = job.namespace().unwrap_or_default();
    let candidates = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()));
    let cached_api: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &ns);
    owner::claim_and_settle(&cached_api, job.as_ref(), selector, candidates).await
}

/// Sorts the Job's pods: active ones, and ended ones to count.
fn census(
    spec: &JobSpec,
    old: &JobStatus,
    owned: &[Arc<CachedPod>],
    key: &str,
    ctx: &Context,
) -> Census {
    let mut census = Census::default();
    let uncounted = old.uncounted_terminated_pods.clone().unwrap_or_default();
    census
        .succeeded
        .extend(uncounted.succeeded.unwrap_or_default());
    census.failed.extend(uncounted.failed.unwrap_or_default());
    let (released, removed) = ctx
        .ledger
        .lock()
        .map(|mut all| {
            let l = all.entry(key.to_owned()).or_default();
            // What the cache now shows released needs no remembering.
            l.released.retain(|uid| {
                owned
                    .iter()
                    .any(|p| p.uid().as_deref() == Some(uid.as_str()) && tracking::has_finalizer(p))
            });
            (l.released.clone(), l.removed.clone())
        })
        .unwrap_or_default();
    for pod in owned {
        let uid = pod.uid().unwrap_or_default();
        if pods::is_active(pod) {
            census.active.push(pod.clone());
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some()
            && !matches!(phase, Some("Succeeded" | "Failed"))
        {
            census.terminating += 1;
        }
        if phase == Some("Failed") {
            let ended = finished_at(pod);
            census.last_failure = census.last_failure.max(ended);
        }
        if !tracking::has_finalizer(pod) || released.contains(&uid) || !tracking::has_ended(pod) {
            continue;
        }
        census.to_release.push(pod.clone());
        if census.succeeded.contains(&uid) || census.failed.contains(&uid) || removed.contains(&uid)
        {
            continue;
        }
        match policy::judge(pod, spec.pod_failure_policy.as_ref()) {
            Verdict::Succeeded => {
                census.succeeded.insert(uid);
                if let Some(i) = policy::index_of(pod) {
                    census.completed.insert(i);
                }
            }
            Verdict::Failed => {
                census.failed.insert(uid);
            }
            Verdict::Ignored => {}
            Verdict::FailJob(message) => {
                census.failed.insert(uid);
                census.fail_job.get_or_insert(message);
            }
        }
    }
    census
}

/// When a pod's containers last ended.
fn finished_at(pod: &CachedPod) -> Option<jiff::Timestamp> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

/// A failure already written down (FailureTarget or Failed).
fn decided_failure(old: &JobStatus) -> Option<Failure> {
    let c = status::holds(old, "FailureTarget").or_else(|| status::holds(old, "Failed"))?;
    Some(Failure {
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
    })
}

fn deadline_passed(
    spec: &JobSpec,
    start: Option<&Time>,
    suspended: bool,
    now: jiff::Timestamp,
) -> bool {
    match (spec.active_deadline_seconds, start) {
        (Some(limit), Some(start)) if !suspended => now.as_second() - start.0.as_second() >= limit,
        _ => false,
    }
}

/// The pod a Job makes: from its template, holding the tracking finalizer; an Indexed Job's
/// pod carries its index (label, annotation, hostname, `JOB_COMPLETION_INDEX`).
fn new_pod(job: &Job, spec: &JobSpec, index: Option<i32>) -> Pod {
    let name = job.name_any();
    let prefix = match index {
        Some(i) => format!("{name}-{i}"),
        None => name.clone(),
    };
    let mut pod = pods::from_template(&spec.template, controller_ref(job), &prefix);
    pod.metadata
        .finalizers
        .get_or_insert_default()
        .push(tracking::FINALIZER.to_owned());
    if let Some(i) = index {
        pod.metadata
            .labels
            .get_or_insert_default()
            .insert(INDEX_KEY.into(), i.to_string());
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert(INDEX_KEY.into(), i.to_string());
        if let Some(pod_spec) = pod.spec.as_mut() {
            pod_spec
                .hostname
                .get_or_insert_with(|| format!("{name}-{i}"));
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: format!("metadata.annotations['{INDEX_KEY}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            let containers = pod_spec
                .containers
                .iter_mut()
                .chain(pod_spec.init_containers.iter_mut().flatten());
            for c in containers {
                c.env.get_or_insert_default().push(env.clone());
            }
        }
    }
    pod
}

/// Deletes `victims` (this controller's choice, not failures).
async fn remove(
    ctx: &Context,
    key: &str,
    pod_api: &Api<Pod>,
    about: &Involved,
    victims: &[Arc<CachedPod>],
) -> Result<(), ControllerError> {
    if victims.is_empty() {
        return Ok(());
    }
    for uid in victims.iter().filter_map(|p| p.uid()) {
        ledger(ctx, key, |l| l.removed.insert(uid));
    }
    let (deleted, failure) = pods::delete_all(pod_api, victims).await;
    if !deleted.is_empty() {
        let message = format!("Deleted {} pods", deleted.len());
        ctx.recorder
            .record(about, "Normal", "SuccessfulDelete", &message)
            .await;
    }
    failure.map_or(Ok(()), Err)
}

/// Writes `next` as the Job's status, guarded by `version` (a stale view of the Job fails
/// with a conflict and is looked at again, so nothing is counted twice); answers the new
/// resourceVersion.
async fn write_status(
    ctx: &Context,
    job: &Job,
    version: Option<String>,
    next: &JobStatus,
) -> Result<Option<String>, ControllerError> {
    let mut body = json!({"metadata": {"resourceVersion": version}, "status": next});
    // Counts of zero are left out, as Kubernetes writes them; a merge patch removes them.
    for count in ["active", "succeeded", "failed"] {
        if body["status"].get(count).is_none() {
            body["status"][count] = serde_json::Value::Null;
        }
    }
    let written = Api::<Job>::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default())
        .patch_status(
            &job.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
        .map_err(|e| ControllerError::api("patch status of", format!("Job {}", key_of(job)), e))?;
    Ok(written.resource_version())
}

/// A count as Kubernetes writes it: absent when zero.
fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// The status without the probe times, which change on every write.
fn comparable(s: &JobStatus) -> JobStatus {
    let mut s = s.clone();
    for c in s.conditions.iter_mut().flatten() {
        c.last_probe_time = None;
    }
    if s.uncounted_terminated_pods.as_ref().is_some_and(|u| {
        u.succeeded.as_deref().unwrap_or_default().is_empty()
            && u.failed.as_deref().unwrap_or_default().is_empty()
    }) {
        s.uncounted_terminated_pods = None;
    }
    s
}

/// Deletes a finished Job whose `ttlSecondsAfterFinished` ran out (its pods first, as the TTL
/// controller does); otherwise looks again when it will.
async fn expire(
    job: &Job,
    key: &str,
    ctx: &Context,
    now: jiff::Timestamp,
) -> Result<Action, ControllerError> {
    let Some(left) = status::ttl_left(job, now) else {
        return Ok(Action::await_change());
    };
    if left > 0 {
        return Ok(Action::requeue(Duration::from_secs(left as u64)));
    }
    let api = Api::<Job>::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let params = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
        preconditions: Some(kube::api::Preconditions {
            uid: job.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&job.name_any(), &params).await {
        Ok(_) => {
            tracing::info!(job = %key, "deleted after its ttlSecondsAfterFinished");
            forget(ctx, key);
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(ControllerError::api("delete", format!("Job {key}"), e)),
    }
}

fn ledger(ctx: &Context, key: &str, change: impl FnOnce(&mut Ledger) -> bool) {
    match ctx.ledger.lock() {
        Ok(mut all) => {
            change(all.entry(key.to_owned()).or_default());
        }
        Err(_) => tracing::error!(job = %key, "job ledger poisoned"),
    }
}

fn forget(ctx: &Context, key: &str) {
    ctx.expectations.forget(key);
    if let Ok(mut all) = ctx.ledger.lock() {
        all.remove(key);
    }
}
