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
        Command::RotateKeys(args) => match serve::rotation::run_command(&args.valkey).await {
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
    let server = match serve::start(args, registrations).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let cancel = server.cancel_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    server.wait().await;
    ExitCode::SUCCESS
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
