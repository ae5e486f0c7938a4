//! The GitOps commands that talk to a running ferry: `history`, `show`, `diff`, `sync`,
//! `status` and `rollback`. They read `Source` and `Revision` objects through the `kube`
//! client; `sync` and `rollback` leave a request on the Source and wait for the `Revision`
//! that answers it.

use std::time::Duration;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use ferry_reconciler::audit::query::{self, ObjectQuery};
use ferry_reconciler::audit::{AuditRecord, compare, request};
use ferry_reconciler::gitops::cluster::Cluster;
use ferry_reconciler::gitops::controller::{ROLLBACK_REQUEST, SYNC_REQUEST};
use ferry_reconciler::gitops::worker::short;
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
                let source = query::pick_source(&cluster, source.as_deref()).await?;
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
                let source = query::pick_source(&cluster, source.as_deref()).await?;
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
    let object = object.map(ObjectQuery::parse).transpose()?;
    let records = query::history(cluster, source, object.as_ref())
        .await
        .context("listing revisions")?;
    if output == AuditFormat::Json {
        print_json(&serde_json::to_value(&records)?)?;
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
            AuditRecord::text(&r.revision).to_owned(),
            short(AuditRecord::text(&r.commit)).to_owned(),
            AuditRecord::text(&r.trigger).to_owned(),
            AuditRecord::text(&r.result).to_owned(),
            AuditRecord::text(&r.health).to_owned(),
            r.changes.len().to_string(),
            r.author["name"].as_str().unwrap_or("-").to_owned(),
            AuditRecord::text(&r.started).chars().take(19).collect(),
            first_line(&r.message),
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
    let record = query::find(cluster, what).await?;
    let r = serde_json::to_value(&record)?;
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
    let name = query::pick_source(cluster, source).await?;
    let comparison = compare::compare(cluster, &name, commit, other).await?;
    for (which, f) in &comparison.refusals {
        println!(
            "# {which} would be refused: {}{}",
            f.file
                .as_deref()
                .map(|file| format!("{file}:{}: ", f.line.unwrap_or(0)))
                .unwrap_or_default(),
            f.message
        );
    }
    for text in &comparison.diffs {
        print!("{text}");
    }
    // Like diff(1) and kubectl diff: 1 when there are differences.
    Ok(if comparison.differs() {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

async fn request_and_wait(
    cluster: &Cluster,
    source: &str,
    annotation: &str,
    request: Value,
    timeout: Duration,
) -> anyhow::Result<std::process::ExitCode> {
    let rec = request::request_and_wait(cluster, source, annotation, request, timeout).await?;
    println!(
        "{}: commit {} {} ({} changes)",
        AuditRecord::text(&rec.revision),
        short(AuditRecord::text(&rec.commit)),
        AuditRecord::text(&rec.result),
        rec.changes.len()
    );
    for e in &rec.errors {
        println!(
            "  {}{}",
            e["file"]
                .as_str()
                .map(|f| format!("{f}: "))
                .unwrap_or_default(),
            e["message"].as_str().unwrap_or_default()
        );
    }
    Ok(if rec.applied() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

async fn status(cluster: &Cluster, output: AuditFormat) -> anyhow::Result<std::process::ExitCode> {
    let sources = query::sources(cluster).await.context("listing sources")?;
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
