use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use passerelle::cli::{Cli, Command};
use passerelle::config::{Config, LogFormat};
use passerelle::registration::Registration;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => check_config(&cli.config),
        Command::GenerateRegistration { output, force } => {
            generate_registration(&cli.config, output, force)
        }
        Command::Run => run(&cli.config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(
    path: &std::path::Path,
) -> anyhow::Result<(Config, Vec<std::sync::Arc<dyn passerelle_api::Network>>)> {
    let config = Config::load(path)?;
    let networks = passerelle::networks::build(&config)?;
    Ok((config, networks))
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let (_, networks) = load(path)?;
    println!(
        "{}: ok ({} network(s) enabled)",
        path.display(),
        networks.len()
    );
    Ok(())
}

fn generate_registration(
    path: &std::path::Path,
    output: Option<std::path::PathBuf>,
    force: bool,
) -> anyhow::Result<()> {
    let (config, networks) = load(path)?;
    let output = output.unwrap_or_else(|| config.appservice.registration.clone());
    if output.exists() && !force {
        anyhow::bail!(
            "{} exists; pass --force to replace it (the homeserver must then load the new tokens)",
            output.display()
        );
    }
    let registration = Registration::generate(&config, &passerelle::bridge::namespaces(&networks));
    write_private(&output, &registration.to_yaml())
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "wrote {}; add it to your homeserver's app_service_config_files",
        output.display()
    );
    Ok(())
}

/// Writes a file readable by its owner only: it holds the tokens.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let (config, networks) = load(path)?;
    init_logging(&config);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.appservice.listen)
            .await
            .with_context(|| format!("binding appservice.listen {}", config.appservice.listen))?;
        passerelle::bridge::run(config, networks, listener, shutdown_signal()).await
    })
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config.log_filter()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.logging.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
