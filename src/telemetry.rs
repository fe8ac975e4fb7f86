//! Logging setup and the redaction helpers every log line uses for identifiers.
//!
//! Tokens, authorization codes, PKCE verifiers, client secrets and full flow ids are never
//! logged; session and user ids are logged truncated to 8 characters.
//!
//! A leaf: nothing here uses another module of the crate, so every module may log through it.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (fields flattened), for log collectors.
    Json,
}

/// Install the global subscriber. `RUST_LOG`, when set, overrides `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(default_filter),
    }
    .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| TelemetryError::Install(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("could not install the logger: {0}")]
    Install(String),
}

/// An identifier shortened for logs: its first 8 characters, then `…`.
pub fn short(id: &str) -> String {
    match id.char_indices().nth(8) {
        Some((idx, _)) => format!("{}…", &id[..idx]),
        None => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_truncates_to_eight_characters() {
        assert_eq!(short("0123456789abcdef"), "01234567…");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short("12345678"), "12345678");
        // Multi-byte characters are not split.
        assert_eq!(short("ééééééééé"), "éééééééé…");
    }
}
