//! The GitOps commands that talk to a running ferry: `history`, `show`, `diff`, `sync`,
//! `status` and `rollback`. They read `Source` and `Revision` objects through the `kube`
//! client; `sync` and `rollback` leave a request on the Source and wait for the `Revision`
//! that answers it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use ferry_reconciler::gitops::cluster::{Cluster, sequence};
use ferry_reconciler::gitops::controller::{ROLLBACK_REQUEST, SYNC_REQUEST, open_checkout};
use ferry_reconciler::gitops::manifests::{self, ObjectId};
use ferry_reconciler::gitops::worker::{REQUEST_LABEL, short};
use ferry_reconciler::gitops::{diff, drift};
use ferry_schema::ferry::SourceSpec;
use ferry_schema::validate::{Options, Validator};
use serde_json::{Value, json};

/// Output of `history`, `show` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// A table or a readable report.
    Text,
    /// JSON.
    Json,
}

/// Where the ferry to talk to is.
#[derive(Debug, clap::Args)]
pub struct Server {
    /// The ferry apiserver's URL.
    #[arg(
        long,
        env = "FERRY_SERVER",
        default_value = "http://127.0.0.1:6443",
        global = true
    )]
    server: String,
}

impl Server {
    /// The URL.
    pub fn url(&self) -> &str {
        &self.server
    }
}

/// The GitOps commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every sync attempt, newest last.
    History {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only revisions that changed this object: KIND/NAMESPACE/NAME or KIND/NAME.
        #[arg(long)]
        object: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: AuditFormat,
    },
    /// One revision (by name) or the latest revision of a commit (by SHA or prefix).
    Show {
        /// Commit SHA (or prefix) or revision name.
        what: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: AuditFormat,
    },
    /// A commit's manifests against the live objects, or two commits against each other.
    Diff {
        /// The commit (SHA, prefix, branch or tag).
        commit: String,
        /// A second commit: diff COMMIT → COMMIT2 instead of against the live objects.
        other: Option<String>,
        /// The source (needed when there are several).
        #[arg(long)]
        source: Option<String>,
    },
    /// Sync a source's head now (even if it is pinned by a rollback) and wait for the result.
    Sync {
        /// The source (needed when there are several).
        source: Option<String>,
        /// How long to wait for the result.
        #[arg(long, default_value = "120s", value_parser = crate::serve::parse_duration)]
        timeout: Duration,
    },
    /// Each source: head, applied commit, sync and health state, drift.
    Status {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: AuditFormat,
    },
    /// Apply an earlier commit as one transaction, and pin the source there until a newer
    /// commit arrives.
    Rollback {
        /// The commit to go back to (SHA, prefix, branch or tag).
        commit: String,
        /// Why (kept in the audit).
        #[arg(long)]
        reason: Option<String>,
        /// The source (needed when there are several).
        #[arg(long)]
        source: Option<String>,
        /// How long to wait for the result.
        #[arg(long, default_value = "120s", value_parser = crate::serve::parse_duration)]
        timeout: Duration,
    },
}

/// Runs one of the commands; the exit code says whether what was asked for happened.
pub fn run(server: &Server, command: AuditCommand) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let url = server
            .server
            .parse()
            .with_context(|| format!("invalid --server {}", server.server))?;
        let client =
            kube::Client::try_from(kube::Config::new(url)).context("building the client")?;
        let cluster = Cluster::new(client);
        match command {
            AuditCommand::History {
                source,
                object,
                output,
            } => history(&cluster, source.as_deref(), object.as_deref(), output).await,
            AuditCommand::Show { what, output } => show(&cluster, &what, output).await,
            AuditCommand::Diff {
                commit,
                other,
                source,
            } => diff_command(&cluster, &commit, other.as_deref(), source.as_deref()).await,
            AuditCommand::Sync { source, timeout } => {
                let source = pick_source(&cluster, source.as_deref()).await?;
                let request = json!({"by": who()});
                request_and_wait(&cluster, &source, SYNC_REQUEST, request, timeout).await
            }
            AuditCommand::Status { output } => status(&cluster, output).await,
            AuditCommand::Rollback {
                commit,
                reason,
                source,
                timeout,
            } => {
                let source = pick_source(&cluster, source.as_deref()).await?;
                let request = json!({
                    "by": who(),
                    "commit": commit,
                    "reason": reason.unwrap_or_default(),
                });
                request_and_wait(&cluster, &source, ROLLBACK_REQUEST, request, timeout).await
            }
        }
    })
}

/// Who is asking: `$FERRY_USER`, else `$USER`.
fn who() -> String {
    std::env::var("FERRY_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The named source, or the only one.
async fn pick_source(cluster: &Cluster, name: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = name {
        anyhow::ensure!(
            cluster.source(name).await?.is_some(),
            "there is no source {name:?}"
        );
        return Ok(name.to_owned());
    }
    let sources = cluster.sources().await.context("listing sources")?;
    let names: Vec<&str> = sources
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    match names.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => anyhow::bail!("there are no sources"),
        many => anyhow::bail!("there are several sources ({}): name one", many.join(", ")),
    }
}

/// A revision as one flat audit record.
fn record(revision: &Value) -> Value {
    let spec = &revision["spec"];
    let status = &revision["status"];
    let changes: Vec<Value> = status["changes"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    json!({
                        "action": c["action"],
                        "apiVersion": c["object"]["apiVersion"],
                        "kind": c["object"]["kind"],
                        "namespace": c["object"]["namespace"].as_str().unwrap_or_default(),
                        "name": c["object"]["name"],
                        "diff": c["diff"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "revision": revision["metadata"]["name"],
        "source": spec["source"],
        "commit": spec["commit"],
        "parents": spec["parents"].as_array().cloned().unwrap_or_default(),
        "author": spec["author"],
        "committer": spec["committer"],
        "message": spec["message"],
        "trigger": spec["trigger"],
        "requestedBy": spec["requestedBy"],
        "reason": spec["reason"],
        "rollbackFrom": spec["rollbackFrom"],
        "result": status["result"],
        "health": status["health"],
        "started": status["started"],
        "finished": status["finished"],
        "healthChanged": status["healthChanged"],
        "changes": changes,
        "errors": status["errors"].as_array().cloned().unwrap_or_default(),
    })
}

/// Whether a record changed the object named `KIND/NAMESPACE/NAME` or `KIND/NAME`.
fn touches(record: &Value, object: &str) -> bool {
    let parts: Vec<&str> = object.split('/').collect();
    let (kind, namespace, name) = match parts.as_slice() {
        [k, ns, n] => (*k, *ns, *n),
        [k, n] => (*k, "", *n),
        _ => return false,
    };
    record["changes"].as_array().is_some_and(|changes| {
        changes.iter().any(|c| {
            c["kind"]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case(kind))
                && c["name"] == name
                && (namespace.is_empty() || c["namespace"] == namespace)
        })
    })
}

fn first_line(text: &Value) -> String {
    text.as_str()
        .and_then(|t| t.lines().next())
        .unwrap_or_default()
        .chars()
        .take(50)
        .collect()
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn history(
    cluster: &Cluster,
    source: Option<&str>,
    object: Option<&str>,
    output: AuditFormat,
) -> anyhow::Result<std::process::ExitCode> {
    if let Some(o) = object {
        anyhow::ensure!(
            matches!(o.split('/').count(), 2 | 3),
            "--object takes KIND/NAMESPACE/NAME or KIND/NAME, not {o:?}"
        );
    }
    let mut revisions = cluster
        .revisions(source)
        .await
        .context("listing revisions")?;
    revisions.sort_by(|a, b| {
        let key = |r: &Value| {
            (
                r["status"]["started"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                sequence(r),
            )
        };
        key(a).cmp(&key(b))
    });
    let records: Vec<Value> = revisions
        .iter()
        .map(record)
        .filter(|r| object.is_none_or(|o| touches(r, o)))
        .collect();
    if output == AuditFormat::Json {
        print_json(&Value::Array(records))?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut rows = vec![
        [
            "REVISION", "COMMIT", "TRIGGER", "RESULT", "HEALTH", "CHANGES", "AUTHOR", "STARTED",
            "MESSAGE",
        ]
        .map(str::to_owned),
    ];
    for r in &records {
        rows.push([
            r["revision"].as_str().unwrap_or_default().to_owned(),
            short(r["commit"].as_str().unwrap_or_default()).to_owned(),
            r["trigger"].as_str().unwrap_or_default().to_owned(),
            r["result"].as_str().unwrap_or_default().to_owned(),
            r["health"].as_str().unwrap_or_default().to_owned(),
            r["changes"].as_array().map_or(0, Vec::len).to_string(),
            r["author"]["name"].as_str().unwrap_or("-").to_owned(),
            r["started"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(19)
                .collect(),
            first_line(&r["message"]),
        ]);
    }
    print_table(&rows);
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

async fn show(
    cluster: &Cluster,
    what: &str,
    output: AuditFormat,
) -> anyhow::Result<std::process::ExitCode> {
    let revisions = cluster.revisions(None).await.context("listing revisions")?;
    let found = revisions
        .iter()
        .find(|r| r["metadata"]["name"] == what)
        .or_else(|| {
            revisions.iter().rev().find(|r| {
                r["spec"]["commit"]
                    .as_str()
                    .is_some_and(|c| !what.is_empty() && c.starts_with(what))
            })
        });
    let Some(revision) = found else {
        anyhow::bail!("no revision or commit {what:?} in the audit");
    };
    let r = record(revision);
    if output == AuditFormat::Json {
        print_json(&r)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    println!("revision  {}", r["revision"].as_str().unwrap_or_default());
    println!("source    {}", r["source"].as_str().unwrap_or_default());
    println!("commit    {}", r["commit"].as_str().unwrap_or_default());
    for who in ["author", "committer"] {
        if r[who].is_object() {
            println!(
                "{who:<9} {} <{}> {}",
                r[who]["name"].as_str().unwrap_or_default(),
                r[who]["email"].as_str().unwrap_or_default(),
                r[who]["time"].as_str().unwrap_or_default()
            );
        }
    }
    println!(
        "trigger   {}{}",
        r["trigger"].as_str().unwrap_or_default(),
        r["requestedBy"]
            .as_str()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default()
    );
    if let Some(from) = r["rollbackFrom"].as_str() {
        println!("rollback  from {from}");
    }
    if let Some(reason) = r["reason"].as_str().filter(|s| !s.is_empty()) {
        println!("reason    {reason}");
    }
    println!(
        "result    {}, health {}",
        r["result"].as_str().unwrap_or_default(),
        r["health"].as_str().unwrap_or_default()
    );
    println!(
        "time      {} → {}",
        r["started"].as_str().unwrap_or_default(),
        r["finished"].as_str().unwrap_or_default()
    );
    if let Some(message) = r["message"].as_str() {
        println!();
        for line in message.lines() {
            println!("    {line}");
        }
    }
    if let Some(errors) = r["errors"].as_array().filter(|e| !e.is_empty()) {
        println!("\nerrors:");
        for e in errors {
            let at = match (e["file"].as_str(), e["line"].as_u64()) {
                (Some(f), Some(l)) => format!("{f}:{l}: "),
                (Some(f), None) => format!("{f}: "),
                _ => String::new(),
            };
            let object = e["object"]
                .as_str()
                .map(|o| format!("{o}: "))
                .unwrap_or_default();
            let path = e["path"]
                .as_str()
                .map(|p| format!("{p}: "))
                .unwrap_or_default();
            println!(
                "  {at}{object}{path}{}",
                e["message"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(changes) = r["changes"].as_array().filter(|c| !c.is_empty()) {
        println!("\nchanges:");
        for c in changes {
            println!(
                "  {} {} {}",
                c["action"].as_str().unwrap_or_default().to_lowercase(),
                c["kind"].as_str().unwrap_or_default(),
                ObjectName(&c["namespace"], &c["name"])
            );
        }
        for c in changes {
            if let Some(d) = c["diff"].as_str() {
                println!();
                print!("{d}");
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

struct ObjectName<'a>(&'a Value, &'a Value);

impl std::fmt::Display for ObjectName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_str().filter(|s| !s.is_empty()) {
            Some(ns) => write!(f, "{ns}/{}", self.1.as_str().unwrap_or_default()),
            None => write!(f, "{}", self.1.as_str().unwrap_or_default()),
        }
    }
}

async fn diff_command(
    cluster: &Cluster,
    commit: &str,
    other: Option<&str>,
    source: Option<&str>,
) -> anyhow::Result<std::process::ExitCode> {
    let name = pick_source(cluster, source).await?;
    let object = cluster
        .source(&name)
        .await?
        .with_context(|| format!("there is no source {name:?}"))?;
    let spec: SourceSpec = serde_json::from_value(object["spec"].clone())
        .with_context(|| format!("the spec of source {name} is invalid"))?;
    anyhow::ensure!(
        !ferry_reconciler::gitops::controller::is_remote(&spec.url),
        "ferry diff reads the repository on this machine; source {name} is remote ({}): \
         clone it and diff there, or use ferry show",
        spec.url
    );
    let checkout = open_checkout(&spec, &name, std::path::Path::new("."))
        .with_context(|| format!("opening source {name}"))?;
    let validator = Validator::new(
        Options {
            strict: true,
            ..Options::default()
        },
        Vec::new(),
    );
    let mut loader = manifests::Loader::new(std::sync::Arc::new(validator), &name);
    let mut load = |rev: &str| -> anyhow::Result<manifests::Desired> {
        let id = checkout.resolve(rev)?;
        let snapshot = checkout.snapshot(&id, &loader.known())?;
        Ok(loader.load(&snapshot))
    };
    let first = load(commit)?;
    let mut differs = false;
    let report = |findings: &[ferry_schema::ferry::RevisionFinding], which: &str| {
        for f in findings {
            println!(
                "# {which} would be refused: {}{}",
                f.file
                    .as_deref()
                    .map(|file| format!("{file}:{}: ", f.line.unwrap_or(0)))
                    .unwrap_or_default(),
                f.message
            );
        }
    };
    report(&first.findings, commit);
    let before: BTreeMap<ObjectId, Value> = match other {
        Some(_) => first
            .objects
            .iter()
            .map(|o| (o.id.clone(), Value::clone(&o.object)))
            .collect(),
        None => {
            // The live objects, cut down to what the manifests set, plus what would be pruned.
            let mut live = BTreeMap::new();
            let wanted: BTreeSet<&ObjectId> = first.objects.iter().map(|o| &o.id).collect();
            for o in &first.objects {
                if let Some(l) = cluster.get(&o.id).await? {
                    live.insert(o.id.clone(), drift::project(&o.object, &l));
                }
            }
            for (id, l) in cluster.applied_by(&name).await? {
                if !wanted.contains(&id) {
                    live.insert(id, l);
                }
            }
            live
        }
    };
    let after: BTreeMap<ObjectId, Value> = match other {
        Some(rev) => {
            let second = load(rev)?;
            report(&second.findings, rev);
            second
                .objects
                .into_iter()
                .map(|o| (o.id, Value::clone(&o.object)))
                .collect()
        }
        None => first
            .objects
            .iter()
            .map(|o| (o.id.clone(), Value::clone(&o.object)))
            .collect(),
    };
    let ids: BTreeSet<&ObjectId> = before.keys().chain(after.keys()).collect();
    for id in ids {
        let text = diff::unified(&id.slashed(), before.get(id), after.get(id));
        if !text.is_empty() {
            differs = true;
            print!("{text}");
        }
    }
    // Like diff(1) and kubectl diff: 1 when there are differences.
    Ok(if differs {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

async fn request_and_wait(
    cluster: &Cluster,
    source: &str,
    annotation: &str,
    mut request: Value,
    timeout: Duration,
) -> anyhow::Result<std::process::ExitCode> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let id = format!("{nanos:x}-{}", std::process::id());
    request["id"] = json!(id);
    let patch = json!({"metadata": {"annotations": {annotation: request.to_string()}}});
    cluster
        .patch_source(source, &patch, false)
        .await
        .with_context(|| format!("asking source {source}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        let revisions = cluster.revisions(Some(source)).await?;
        if let Some(r) = revisions
            .iter()
            .find(|r| r["metadata"]["labels"][REQUEST_LABEL] == id.as_str())
        {
            let rec = record(r);
            let result = rec["result"].as_str().unwrap_or_default();
            println!(
                "{}: commit {} {} ({} changes)",
                rec["revision"].as_str().unwrap_or_default(),
                short(rec["commit"].as_str().unwrap_or_default()),
                result,
                rec["changes"].as_array().map_or(0, Vec::len)
            );
            for e in rec["errors"].as_array().into_iter().flatten() {
                println!(
                    "  {}{}",
                    e["file"]
                        .as_str()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default()
                );
            }
            return Ok(if result == "Applied" {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            });
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no answer from source {source} within {}s (is ferry up running?)",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(cluster: &Cluster, output: AuditFormat) -> anyhow::Result<std::process::ExitCode> {
    let sources = cluster.sources().await.context("listing sources")?;
    if output == AuditFormat::Json {
        let out: Vec<Value> = sources
            .iter()
            .map(|s| json!({"name": s["metadata"]["name"], "spec": s["spec"], "status": s["status"]}))
            .collect();
        print_json(&Value::Array(out))?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut rows = vec![
        [
            "SOURCE", "HEAD", "APPLIED", "PINNED", "SYNC", "HEALTH", "MESSAGE",
        ]
        .map(str::to_owned),
    ];
    for s in &sources {
        let st = &s["status"];
        let commit = |k: &str| {
            st[k]
                .as_str()
                .map(|c| short(c).to_owned())
                .unwrap_or_else(|| "-".into())
        };
        rows.push([
            s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            commit("headCommit"),
            commit("appliedCommit"),
            commit("pinnedCommit"),
            st["sync"].as_str().unwrap_or("Unknown").to_owned(),
            st["health"].as_str().unwrap_or("Unknown").to_owned(),
            st["message"].as_str().unwrap_or_default().to_owned(),
        ]);
    }
    print_table(&rows);
    for s in &sources {
        for d in s["status"]["drift"].as_array().into_iter().flatten() {
            println!(
                "drift: {} {} {} {}",
                s["metadata"]["name"].as_str().unwrap_or_default(),
                d["kind"].as_str().unwrap_or_default(),
                ObjectName(&d["namespace"], &d["name"]),
                d["fields"]
                    .as_array()
                    .map(|f| f
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|p| if p.is_empty() { "(missing)" } else { p })
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
