//! The command line (DESIGN, Command line).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// headwall: inserts subscriber identity for contracted partners only, and nowhere else.
#[derive(Debug, Parser)]
#[command(name = "headwall", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file.
        #[arg(long, default_value = "headwall.toml")]
        config: PathBuf,
    },
    /// Run a whole scenario on loopback with no set-up and print what each origin received.
    Demo {
        /// Keep the demo gateway and origins running after the scenario (until Ctrl-C).
        #[arg(long)]
        keep_running: bool,
        /// Ignored: the demo writes its own configuration.
        #[arg(long, hide = true)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration; errors print as file:line:col: message.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "headwall.toml")]
        config: PathBuf,
    },
    /// Write a new pseudonym key and Ed25519 signing key (mode 0600) into a folder.
    Keygen {
        /// Folder to write pseudonym.key and signing.key into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Reserved: the leak-check page (a later issue).
    #[command(hide = true)]
    Leakcheck {
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}
