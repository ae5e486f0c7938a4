//! The CronJob controller: starts a Job from the template at each time of the schedule (in
//! `timeZone`), as [`plan`] decides (concurrency policy, starting deadline, suspend), names it
//! `<cronjob>-<minutes since the epoch>` so a time is never run twice, keeps `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, deletes finished Jobs beyond the history
//! limits, and looks again when the schedule fires next.

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_client::events::{Involved, Recorder};
use ferry_schema::cron::Schedule;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::informer::Informer;
use super::job::status::finished;
use super::owner::{controller_of, controller_ref, key_of};
use super::runner;
use plan::{Decision, Inputs};

/// The annotation with the schedule time a Job was started for.
pub const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What every CronJob reconcile shares.
struct Context {
    client: kube::Client,
    jobs: Store<Job>,
    backoff: Backoff,
    recorder: Recorder,
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

/// The CronJob controller, subscribed to `jobs`; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    jobs: &Informer<Job>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = runner::controller(Api::<CronJob>::all(client.clone()));
    // A Job's change concerns the CronJob that controls it (CronJobs do not adopt).
    let triggers = jobs.subscribe(|job: &Job| {
        let ns = job.namespace().unwrap_or_default();
        controller_of(&job.metadata)
            .filter(|r| r.kind == "CronJob")
            .map(|r| ObjectRef::<CronJob>::new(&r.name).within(&ns))
            .into_iter()
            .collect()
    });
    let ctx = Arc::new(Context {
        client,
        jobs: jobs.store(),
        backoff: Backoff::default(),
        recorder,
    });
    runner::drive(controller, triggers, reconcile, ctx, cancel)
}

#[tracing::instrument(level = "debug", skip_all, fields(cronjob = %key_of(cj.as_ref())))]
async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(cj.as_ref());
    let ns = cj.namespace().unwrap_or_default();
    let Some(spec) = cj.spec.as_ref() else {
        return Err(ControllerError::Invalid {
            what: format!("CronJob {key}"),
            message: "no spec".into(),
        });
    };
    let about = Involved::of(cj.as_ref());
    let uid = cj.uid().unwrap_or_default();
    let mut children: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    children.sort_by_key(|j| j.creation_timestamp().map(|t| t.0));
    let old = cj.status.clone().unwrap_or_default();
    let mut status = old.clone();

    // Running Jobs are the active ones; a finished one records the last success.
    let running: Vec<&Arc<Job>> = children
        .iter()
        .filter(|j| j.status.as_ref().and_then(finished).is_none())
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect();
    status.active = Some(running.iter().map(|j| reference(j)).collect());
    status.active = status.active.filter(|a| !a.is_empty());
    for job in &children {
        let done = job.status.as_ref().and_then(|s| {
            let c = finished(s).filter(|c| c.type_ == "Complete")?;
            s.completion_time.clone().or(c.last_transition_time.clone())
        });
        if let Some(at) = done
            && status
                .last_successful_time
                .as_ref()
                .is_none_or(|t| t.0 < at.0)
        {
            status.last_successful_time = Some(at);
        }
    }
    let mut action = Action::await_change();
    let suspended = spec.suspend == Some(true);
    if cj.metadata.deletion_timestamp.is_none() && !suspended {
        match schedule_of(&cj) {
            Ok((schedule, zone)) => {
                let names: Vec<String> = running.iter().map(|j| j.name_any()).collect();
                let inputs = Inputs {
                    schedule: &schedule,
                    zone: &zone,
                    since: old
                        .last_schedule_time
                        .as_ref()
                        .map(|t| t.0)
                        .or_else(|| cj.creation_timestamp().map(|t| t.0))
                        .unwrap_or_else(jiff::Timestamp::now),
                    starting_deadline: spec.starting_deadline_seconds,
                    policy: spec.concurrency_policy.as_deref().unwrap_or("Allow"),
                    active: &names,
                };
                let now = jiff::Timestamp::now();
                let (decision, next) = plan::decide(&inputs, now);
                match decision {
                    Decision::Wait => {}
                    Decision::Skip { scheduled } => {
                        tracing::debug!(cronjob = %key, %scheduled, "a Job still runs; not starting another (Forbid)");
                    }
                    Decision::Start {
                        scheduled,
                        replace,
                        missed,
                    } => {
                        if missed >= plan::MISSED_LIMIT {
                            let message = format!(
                                "too many missed start times: {missed}; check the clock and the schedule"
                            );
                            ctx.recorder
                                .record(&about, "Warning", "TooManyMissedTimes", &message)
                                .await;
                        }
                        let api = Api::<Job>::namespaced(ctx.client.clone(), &ns);
                        for name in &replace {
                            delete_job(&api, name, &key).await?;
                            let message = format!("Deleted job {name}");
                            ctx.recorder
                                .record(&about, "Normal", "SuccessfulDelete", &message)
                                .await;
                            status
                                .active
                                .get_or_insert_default()
                                .retain(|r| r.name.as_deref() != Some(name.as_str()));
                        }
                        let job = new_job(&cj, &scheduled, &schedule);
                        let name = job.name_any();
                        match api.create(&PostParams::default(), &job).await {
                            Ok(created) => {
                                let message = format!("Created job {name}");
                                ctx.recorder
                                    .record(&about, "Normal", "SuccessfulCreate", &message)
                                    .await;
                                status
                                    .active
                                    .get_or_insert_default()
                                    .push(reference(&created));
                            }
                            // Started before (a restart, a lagging cache): not again.
                            Err(kube::Error::Api(s)) if s.code == 409 => {}
                            Err(e) => {
                                let message = format!("Error creating job: {e}");
                                ctx.recorder
                                    .record(&about, "Warning", "FailedCreate", &message)
                                    .await;
                                return Err(ControllerError::api(
                                    "create",
                                    format!("Job {ns}/{name}"),
                                    e,
                                ));
                            }
                        }
                        status.last_schedule_time = Some(Time(scheduled.timestamp()));
                    }
                }
                if let Some(next) = next {
                    action = Action::requeue(plan::wait_until(&next, jiff::Timestamp::now()));
                }
            }
            Err(message) => {
                // Nothing to do until the CronJob is changed.
                tracing::warn!(cronjob = %key, %message, "cannot schedule");
                ctx.recorder
                    .record(&about, "Warning", "InvalidSchedule", &message)
                    .await;
            }
        }
    }
    prune_history(&ctx, &cj, &children).await?;
    status.active = status.active.filter(|a| !a.is_empty());
    if status != old {
        let mut body = json!({"status": status});
        if status.active.is_none() {
            // No Job runs: the list goes, as Kubernetes leaves it out.
            body["status"]["active"] = serde_json::Value::Null;
        }
        Api::<CronJob>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &cj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
            .map_err(|e| ControllerError::api("patch status of", format!("CronJob {key}"), e))?;
    }
    ctx.backoff.succeeded(&key);
    Ok(action)
}

/// The schedule and its zone (`timeZone`, else the machine's).
fn schedule_of(cj: &CronJob) -> Result<(Schedule, TimeZone), String> {
    let spec = cj.spec.as_ref().ok_or("no spec")?;
    let schedule = Schedule::parse(&spec.schedule)
        .map_err(|e| format!("unparseable schedule {:?}: {e}", spec.schedule))?;
    let zone = match spec.time_zone.as_deref() {
        Some(name) => {
            TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?
        }
        None => TimeZone::system(),
    };
    Ok((schedule, zone))
}

/// The Job for `scheduled`, from the template, controlled by the CronJob.
fn new_job(cj: &CronJob, scheduled: &jiff::Zoned, schedule: &Schedule) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_ANNOTATION.into(),
        scheduled.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(plan::job_name(&cj.name_any(), scheduled, schedule)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some(Job::api_version(&()).into_owned()),
        kind: Some(Job::kind(&()).into_owned()),
        name: job.meta().name.clone(),
        namespace: job.meta().namespace.clone(),
        uid: job.meta().uid.clone(),
        resource_version: job.meta().resource_version.clone(),
        ..ObjectReference::default()
    }
}

async fn delete_job(api: &Api<Job>, name: &str, key: &str) -> Result<(), ControllerError> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ControllerError::api(
            "delete",
            format!("Job {name} of CronJob {key}"),
            e,
        )),
    }
}

/// Deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit` (3) and
/// `failedJobsHistoryLimit` (1). `children` are oldest first.
async fn prune_history(
    ctx: &Context,
    cj: &CronJob,
    children: &[Arc<Job>],
) -> Result<(), ControllerError> {
    let Some(spec) = cj.spec.as_ref() else {
        return Ok(());
    };
    let key = key_of(cj);
    let api = Api::<Job>::namespaced(ctx.client.clone(), &cj.namespace().unwrap_or_default());
    let about = Involved::of(cj);
    for (outcome, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let done: Vec<&Arc<Job>> = children
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter(|j| {
                j.status
                    .as_ref()
                    .and_then(finished)
                    .is_some_and(|c| c.type_ == outcome)
            })
            .collect();
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        for job in &done[..extra] {
            delete_job(&api, &job.name_any(), &key).await?;
            let message = format!("Deleted job {}", job.name_any());
            ctx.recorder
                .record(&about, "Normal", "SuccessfulDelete", &message)
                .await;
        }
    }
    Ok(())
}
