//! Running until the process is told to stop: SIGINT or SIGTERM cancel the server, which then
//! stops accepting, drains in-flight requests and stops its background tasks.

use super::{AppConfig, Registrations, StartError};

/// Starts the server and runs it until SIGINT/SIGTERM, then drains it.
pub async fn serve_until_signal(
    config: &AppConfig,
    registrations: Registrations,
) -> Result<(), StartError> {
    // Before starting: a signal that arrives as soon as the server says it listens must stop it
    // gracefully, not kill it with the default action.
    let signals = ShutdownSignals::install();
    let server = super::start(config, registrations).await?;
    let cancel = server.cancel_token();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    server.wait().await;
    Ok(())
}

/// SIGINT and SIGTERM, listened for from the moment they are installed.
struct ShutdownSignals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                // Without handlers, fall back to ctrl_c below.
                _ => None,
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.streams {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
