//! Log output: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`), as text or
//! JSON lines (`--log-format`).

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the span fields.
    Json,
}

/// Libraries whose debug output drowns ferry's own (every SQL statement, every tower buffer
/// poll): kept at `warn` unless `RUST_LOG` names them.
const QUIET: &[&str] = &["sqlx", "tower", "hyper", "hyper_util", "h2", "rustls"];

/// Installs the subscriber for the process.
pub fn init(format: LogFormat) {
    let mut directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    for target in QUIET {
        if !directives.contains(target) {
            directives.push_str(&format!(",{target}=warn"));
        }
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|error| {
        eprintln!("ferry: RUST_LOG is not a valid filter ({error}); logging at info");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    if let Err(error) = installed {
        eprintln!("ferry: logging is not set up: {error}");
    }
}
