//! The one place that sets up `tracing`: JSON lines in production, readable lines locally.

use tracing_subscriber::EnvFilter;

use crate::configuration::{LogFormat, TelemetrySettings};

/// Installs the global subscriber writing to stdout; `RUST_LOG`, when set, replaces the
/// configured filter. A second call is a no-op (tests start several services in one process).
pub fn init_subscriber(settings: &TelemetrySettings) {
    init_subscriber_with(settings, std::io::stdout);
}

/// As [`init_subscriber`], writing to `sink` (tests pass `std::io::sink` to keep quiet).
pub fn init_subscriber_with<W>(settings: &TelemetrySettings, sink: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(sink);
    let _already_set = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
