use mcp_oauth_operator::cli::{Cli, Command, RunArgs};
use mcp_oauth_operator::controller::{ControllerConfig, KubeSource, Leadership};
use mcp_oauth_operator::serve::{self, Registrations};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse_with_defaults(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Refused before anything starts (no listener, no API server connection): a setting that
    // would hand every stored token to whoever reaches the gateway. Exit code 2, like clap's
    // own usage errors.
    if let Err(message) = cli.command.refuse_unsafe_identity() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    if let Command::Crds = cli.command {
        return match mcp_oauth_operator::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // One TLS crypto provider for every client (kube, reqwest): aws-lc-rs.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("a TLS crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    if let Err(e) = mcp_oauth_operator::telemetry::init(cli.log.log_format, &cli.log.log_level) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Crds => ExitCode::SUCCESS,
        Command::RotateKeys(args) => match serve::stores::rotate_keys(&args.valkey).await {
            Ok(report) if report.failed_by_key_id.is_empty() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(2),
            Err(e) => {
                tracing::error!(error = %e, "rotate-keys failed");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => {
            let registrations = match args.manifests {
                Some(dir) => Registrations::Dir(dir),
                None => Registrations::Embedded,
            };
            serve_until_signal(&args.server, registrations).await
        }
        Command::Run(args) => {
            let registrations = match kubernetes(&args).await {
                Ok(source) => Registrations::Kubernetes(source),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a Kubernetes client (in-cluster config or KUBECONFIG)");
                    return ExitCode::FAILURE;
                }
            };
            serve_until_signal(&args.server, registrations).await
        }
    }
}

/// The API server connection and controller settings of `run`.
async fn kubernetes(args: &RunArgs) -> Result<KubeSource, kube::Error> {
    let client = kube::Client::try_default().await?;
    let env = |name: &str| std::env::var(name).ok();
    let identity = args.identity(env);
    Ok(KubeSource {
        client,
        config: ControllerConfig {
            namespaces: args.namespaces.clone(),
            leadership: Leadership::Lease {
                namespace: args.lease_namespace(env),
                name: args.lease_name.clone(),
                duration: args.lease_duration(),
            },
            identity,
        },
    })
}

/// Starts the server and runs it until SIGINT/SIGTERM, then drains it.
async fn serve_until_signal(
    args: &mcp_oauth_operator::cli::ServerArgs,
    registrations: Registrations,
) -> ExitCode {
    // Before starting: a signal that arrives as soon as the server says it listens must stop it
    // gracefully, not kill it with the default action.
    let signals = ShutdownSignals::install();
    let server = match serve::start(args, registrations).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let cancel = server.cancel_token();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    server.wait().await;
    ExitCode::SUCCESS
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
