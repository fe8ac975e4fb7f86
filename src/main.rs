//! The binary: parses the command line, turns it into the components' plain configurations and
//! hands them to [`mcp_oauth_operator::app`].

use mcp_oauth_operator::app::{self, AppConfig, Registrations};
use mcp_oauth_operator::cli::{Cli, Command};
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
    if let Err(e) =
        mcp_oauth_operator::telemetry::init(cli.log.log_format.into(), &cli.log.log_level)
    {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Crds => ExitCode::SUCCESS,
        Command::RotateKeys(args) => {
            match mcp_oauth_operator::app::stores::rotate_keys(&args.valkey.settings()).await {
                Ok(report) if report.failed_by_key_id.is_empty() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(2),
                Err(e) => {
                    tracing::error!(error = %e, "rotate-keys failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let registrations = match args.manifests {
                Some(dir) => Registrations::Dir(dir),
                None => Registrations::Embedded,
            };
            serve_until_signal(&args.server.app_config(), registrations).await
        }
        Command::Run(args) => {
            let env = |name: &str| std::env::var(name).ok();
            let registrations = match app::run::connect(args.controller_config(env)).await {
                Ok(source) => Registrations::Kubernetes(source),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a Kubernetes client (in-cluster config or KUBECONFIG)");
                    return ExitCode::FAILURE;
                }
            };
            serve_until_signal(&args.server.app_config(), registrations).await
        }
    }
}

/// Runs the server until SIGINT/SIGTERM; a failure to start is logged.
async fn serve_until_signal(config: &AppConfig, registrations: Registrations) -> ExitCode {
    match app::serve_until_signal(config, registrations).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            ExitCode::FAILURE
        }
    }
}
