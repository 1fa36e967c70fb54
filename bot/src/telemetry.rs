//! Logs (tracing, to stderr: stdout stays clean for command output; an interactive
//! `opsbot shell` writes them to a file) and the Prometheus
//! metrics recorder behind `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// How log lines are written: `text` for people, `json` for log pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the logger: on stderr, or appended to `file` (`opsbot shell` at a terminal, so
/// log lines do not land between the answers). `RUST_LOG` filters (default: `info` for
/// opsbot, `warn` else). A file that cannot be opened leaves the logs on stderr.
pub fn init_logging(format: LogFormat, file: Option<&std::path::Path>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,opsbot=info,opsbot_commands=info"));
    let opened = file.map(|path| {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot write the log file {}: {e}", path.display()))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match opened {
        Some(Ok(log)) => {
            let builder = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(log));
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().flatten_event(true).try_init(),
            }
        }
        other => {
            if let Some(Err(why)) = other {
                eprintln!("warning: {why}; logging to stderr");
            }
            let builder = builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr);
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().flatten_event(true).try_init(),
            }
        }
    };
}

/// Latency buckets for command handling, in seconds: from a cached read to a slow backend.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide metrics recorder (installed on first use) with `opsbot_build_info` set.
pub fn metrics() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .map(PrometheusBuilder::build_recorder);
            let recorder = match recorder {
                Ok(recorder) => recorder,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets rejected; histograms become summaries");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            metrics::describe_counter!("opsbot_commands_total", "Commands handled, by command and outcome");
            metrics::describe_histogram!("opsbot_command_duration_seconds", "Time from a command's arrival to its reply");
            metrics::describe_counter!("opsbot_audit_appends_total", "Events appended to the audit trail, by outcome");
            metrics::describe_counter!("opsbot_audit_sealed_total", "Events sealed into the audit chain");
            metrics::describe_gauge!("opsbot_build_info", "Always 1; labels carry the version");
            metrics::describe_gauge!("opsbot_gateway_connected", "1 while the Discord gateway is connected (READY received), else 0");
            metrics::gauge!("opsbot_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}
