//! The command line: `generate-registration`, `check-config`, `run` (default).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "passerelle",
    version,
    about = "A Matrix bridge for IRC, Slack and Telegram"
)]
pub struct Cli {
    /// The config file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "config.yaml",
        env = "PASSERELLE_CONFIG"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the appservice registration file for the homeserver (random tokens).
    GenerateRegistration {
        /// Where to write it; defaults to `appservice.registration` from the config.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Replace an existing file (its tokens change).
        #[arg(long)]
        force: bool,
    },
    /// Check the config file and exit: 0 when it is valid.
    CheckConfig,
    /// Run the bridge (the default).
    Run,
}
