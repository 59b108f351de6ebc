//! The command line (docs/design.md, Command line).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `--version`: a benchmark-only build says so.
const VERSION: &str = if cfg!(feature = "bench-unaudited") {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (bench-unaudited: disclosures NOT recorded; benchmark only)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

/// headwall: inserts subscriber identity for contracted partners only, and nowhere else.
#[derive(Debug, Parser)]
#[command(name = "headwall", version = VERSION, about)]
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
    /// Show which destinations gain or lose which attributes between two configurations.
    Plan {
        /// The current configuration (only its [[partner]] and [strip] tables are compared).
        #[arg(long)]
        from: PathBuf,
        /// The proposed configuration.
        #[arg(long)]
        to: PathBuf,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Exit 3 when the proposed configuration widens exposure.
        #[arg(long)]
        fail_on_widen: bool,
    },
    /// Query and verify the audit log (the only place subscriber numbers are shown).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write a new pseudonym key and Ed25519 signing key (mode 0600) into a folder.
    Keygen {
        /// Folder to write pseudonym.key and signing.key into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve the public leak-check page (GET /) and API (GET /api/v1/check).
    Leakcheck {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
    /// Send one request through a gateway to a leak-check endpoint; exit 1 on a leak.
    Probe {
        /// The gateway, as http://HOST:PORT.
        #[arg(long)]
        proxy: String,
        /// The leak-check API, e.g. http://leakcheck.example:8090/api/v1/check.
        #[arg(long)]
        check_url: String,
    },
}

/// `headwall audit …`: times are RFC 3339 (`2026-11-01T08:00:00Z`) or a date (`2026-11-01`);
/// `--from` is inclusive, `--to` exclusive.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Every disclosure of one subscriber (data-subject access).
    Subscriber {
        /// The subscriber: international digits, `+CC…`, `00CC…`, or national `0…` with
        /// `[radius].country_code`.
        msisdn: String,
        /// Only records at or after this time.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// Only records before this time.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Configuration file (for `[audit]`).
        #[arg(long, default_value = "headwall.toml")]
        config: PathBuf,
    },
    /// Who was disclosed to whom: distinct subscribers per (partner, host).
    Exposure {
        /// Only this host.
        #[arg(long)]
        host: Option<String>,
        /// Only this partner.
        #[arg(long)]
        partner: Option<String>,
        /// Only records at or after this time.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// Only records before this time.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
        /// List only the disclosures this policy (a config file) would not have allowed;
        /// exit 1 when there are any (breach scoping).
        #[arg(long)]
        against: Option<PathBuf>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Configuration file (for `[audit]`).
        #[arg(long, default_value = "headwall.toml")]
        config: PathBuf,
    },
    /// Check the hash chains and the latest signed checkpoint; exit 1 naming the first bad
    /// record.
    Verify {
        /// Configuration file (for `[audit]` and the signing key).
        #[arg(long, default_value = "headwall.toml")]
        config: PathBuf,
    },
}

fn parse_time(text: &str) -> Result<i64, String> {
    headwall_audit::time::parse_rfc3339(text)
}
