//! The `ferry` command line: argument parsing and wiring of the library crates, nothing more.

mod audit;
mod controller;
mod heap;
mod logging;
mod node;
mod output;
mod remote;
mod serve;
mod up;

use std::io::{IsTerminal, Read, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ferry_schema::loader::LoadLimits;
use ferry_schema::run::{Input, expand, run};
use ferry_schema::validate::{KindFilter, Options, Validator};

/// jemalloc, built (see `.cargo/config.toml`) with background threads that give freed memory
/// back within a second: a big sync or list peaks, then the process returns to its working
/// set (glibc kept the peak). Built unprefixed, it is also the `malloc` of the C code linked in
/// (SQLite), which otherwise kept glibc arenas of its own.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// ferry: a Kubernetes-compatible cluster appliance driven by Git.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    server: audit::Server,
    /// Log lines as text or JSON (stderr; filter with RUST_LOG, e.g. RUST_LOG=debug or
    /// RUST_LOG=ferry_reconciler=debug).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate Kubernetes manifests against JSON Schema and the apiserver's rules.
    Validate(ValidateArgs),
    /// Work with ferry's JSON Schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Run the Kubernetes API server on SQLite or PostgreSQL.
    Apiserver(serve::ServeArgs),
    /// Run the apiserver and the GitOps engine following a repository (default: the demo).
    Up(Box<up::UpArgs>),
    /// The GitOps audit and actions against a running ferry.
    #[command(flatten)]
    Audit(audit::AuditCommand),
    /// Print a kubeconfig that points kubectl at a ferry apiserver.
    Kubeconfig,
    /// Run node agents against an apiserver (--count N hollow nodes in one process).
    Node(node::NodeArgs),
    /// Run the scheduler against an apiserver; several elect one leader.
    Controller(controller::ControllerArgs),
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Write every kind's schema (normal and strict) under DIR, in kubeconform's layout.
    Export {
        /// Directory to write to (e.g. schema/jsonschema).
        dir: PathBuf,
    },
}

/// Output formats of `ferry validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per finding, then a summary line.
    Text,
    /// One JSON object with every resource and a summary.
    Json,
    /// JUnit XML, one testcase per resource.
    Junit,
    /// Test Anything Protocol, one test per resource.
    Tap,
}

#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// Files, directories (searched recursively for .yaml, .yml, .json), or - for stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    output: Format,
    /// Print the summary line in TAP output too (text always ends with it; JSON and JUnit
    /// always carry the counts).
    #[arg(long)]
    summary: bool,
    /// Also list valid and skipped resources in text output.
    #[arg(short, long)]
    verbose: bool,
    /// Unknown fields and duplicate YAML keys are errors.
    #[arg(long)]
    strict: bool,
    /// Kinds not to check, e.g. Secret,apps/v1/Deployment.
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    skip: Vec<String>,
    /// Kinds to refuse outright.
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    reject: Vec<String>,
    /// Skip resources whose kind has no schema, instead of failing them.
    #[arg(long)]
    ignore_missing_schemas: bool,
    /// Extra directory of schemas ({kind}-{group}-{version}.json), searched before the
    /// built-in ones. May be repeated.
    #[arg(long, value_name = "DIR")]
    schema_location: Vec<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(short = 'n', long, value_name = "N")]
    workers: Option<usize>,
    /// Stop at the first invalid resource or error.
    #[arg(long)]
    exit_on_error: bool,
}

fn main() -> ExitCode {
    // The YAML library's own panics are caught and reported as findings; keep them quiet.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !ferry_schema::events::is_yaml_library_panic(info) {
            default_hook(info);
        }
    }));
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Validate(args) => validate(args),
        Command::Schema(SchemaCommand::Export { dir }) => export_schemas(&dir),
        Command::Apiserver(args) => {
            serve::run(args, "apiserver", serve::Alone).map(|()| ExitCode::SUCCESS)
        }
        Command::Up(args) => up::up(*args).map(|()| ExitCode::SUCCESS),
        Command::Audit(command) => audit::run(&cli.server, command),
        Command::Kubeconfig => kubeconfig(cli.server.url()),
        Command::Node(args) => node::run(cli.server.url(), args).map(|()| ExitCode::SUCCESS),
        Command::Controller(args) => {
            controller::run(cli.server.url(), args).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ferry: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    for dir in &args.schema_location {
        anyhow::ensure!(
            dir.is_dir(),
            "--schema-location {}: not a directory",
            dir.display()
        );
    }
    let options = Options {
        strict: args.strict,
        skip: KindFilter::new(args.skip.iter().map(|s| s.trim().to_owned())),
        reject: KindFilter::new(args.reject.iter().map(|s| s.trim().to_owned())),
        ignore_missing_schemas: args.ignore_missing_schemas,
        limits: LoadLimits::default(),
    };
    let validator = Validator::new(options, args.schema_location.clone());
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(workers > 0, "--workers must be at least 1");

    let stdin_count = args.paths.iter().filter(|p| p.as_os_str() == "-").count();
    anyhow::ensure!(stdin_count <= 1, "- (stdin) may be given only once");
    let mut stdin_bytes = None;
    if stdin_count == 1 {
        let mut bytes = Vec::new();
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("ferry: reading manifests from the terminal; end with Ctrl-D");
        }
        stdin
            .lock()
            .take(LoadLimits::default().max_file_bytes + 1)
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        stdin_bytes = Some(bytes);
    }
    let mut files = Vec::new();
    let mut inputs: Vec<Input> = Vec::new();
    for path in args.paths {
        if path.as_os_str() == "-" {
            if !files.is_empty() {
                inputs.extend(expand(std::mem::take(&mut files)));
            }
            inputs.push(Input::Bytes(
                "stdin".into(),
                stdin_bytes.take().unwrap_or_default(),
            ));
        } else {
            files.push(path);
        }
    }
    let inputs = inputs.into_iter().chain(expand(files));

    let stdout = std::io::stdout();
    let mut reporter = output::reporter(args.output, stdout.lock(), args.verbose, args.summary);
    reporter.start()?;
    let mut write_error = None;
    let summary = run(&validator, inputs, workers, |file| {
        if let Err(e) = reporter.file(file) {
            write_error = Some(e);
            return ControlFlow::Break(());
        }
        let failed = file.resources.iter().any(|r| r.status.is_failure());
        if args.exit_on_error && failed {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(e) = write_error {
        // A closed pipe (`ferry validate ... | head`) is not worth a message.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing output");
        }
    } else {
        reporter.finish(&summary)?;
    }
    Ok(if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn export_schemas(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let files = ferry_schema::generate::all_schema_files().context("generating schemas")?;
    for (relative, contents) in &files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    writeln!(
        std::io::stdout(),
        "wrote {} schemas under {}",
        files.len(),
        dir.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn kubeconfig(server: &str) -> anyhow::Result<ExitCode> {
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferry\n  cluster:\n    server: {server}\ncontexts:\n- name: ferry\n  context:\n    cluster: ferry\n    user: ferry\n    namespace: default\ncurrent-context: ferry\nusers:\n- name: ferry\n  user: {{}}\n"
    );
    std::io::stdout().write_all(config.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
