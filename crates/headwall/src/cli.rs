//! The command line (docs/design.md, Command line).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `--version`: the version, the commit and its date (build.rs); a benchmark-only build says
/// so.
const VERSION: &str = if cfg!(feature = "bench-unaudited") {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("HEADWALL_COMMIT"),
        ", ",
        env!("HEADWALL_BUILD_DATE"),
        "; bench-unaudited: disclosures NOT recorded; benchmark only)"
    )
} else {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("HEADWALL_COMMIT"),
        ", ",
        env!("HEADWALL_BUILD_DATE"),
        ")"
    )
};

/// What `headwall --help` opens with (the package description is for developers).
const ABOUT: &str = "headwall, the mobile operator's identity gateway: tells contracted partners who \
a subscriber is (header enrichment on plain HTTP, the CAMARA Number Verification and KYC Age \
Verification APIs over HTTPS) and nobody else, with every disclosure on a hash-chained audit \
record.";

/// The rest of `--help`.
const AFTER_HELP: &str = "Start with `headwall demo` (the whole job on loopback, no set-up), then \
`headwall check --config FILE` before `headwall serve --config FILE`. \
Documentation: docs/operations.md and docs/config.md (installed under \
/usr/share/doc/headwall).";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "headwall", version = VERSION, about = ABOUT, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
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
        #[command(flatten)]
        config: ConfigArgs,
        /// Print one JSON document (findings with their severity) instead of text.
        #[arg(long)]
        json: bool,
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
    /// Write a new pseudonym key and Ed25519 signing key (mode 0600) into a folder; with
    /// --tls, a self-signed certificate and key (api.crt, api.key) for `[api]` instead.
    Keygen {
        /// Folder to write the files into (created if missing). Existing files are never
        /// overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Host names for a self-signed TLS certificate (the first is its subject).
        #[arg(long, num_args = 1.., value_name = "NAME")]
        tls: Vec<String>,
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
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (headwall.1 and one per command) into a folder.
    #[command(hide = true)]
    Man {
        /// Folder to write them into (created if missing).
        #[arg(long)]
        out: PathBuf,
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
        #[command(flatten)]
        config: ConfigArgs,
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
        /// List the subscribers themselves per (partner, host), each with its disclosure
        /// count and first and last time: the list a breach notification needs.
        #[arg(long, conflicts_with = "against")]
        subscribers: bool,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Check the hash chains and the latest signed checkpoint; exit 1 naming the first bad
    /// record.
    Verify {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// Which configuration, and where the files headwall writes live.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConfigArgs {
    /// Configuration file.
    #[arg(long, default_value = "headwall.toml")]
    pub(crate) config: PathBuf,
    /// Folder that relative paths of the files headwall writes (databases, generated keys and
    /// token, access log) resolve against. Default: $STATE_DIRECTORY (systemd's
    /// StateDirectory=), else the configuration file's folder.
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// The file and its state folder, resolved once.
    pub(crate) fn source(&self) -> crate::config::ConfigSource {
        crate::config::ConfigSource {
            path: self.config.clone(),
            state_dir: self.state_dir(),
        }
    }

    /// `--state-dir`, else the first folder of `$STATE_DIRECTORY`; `None` means the
    /// configuration file's folder.
    pub(crate) fn state_dir(&self) -> Option<PathBuf> {
        self.state_dir.clone().or_else(|| {
            let value = std::env::var_os("STATE_DIRECTORY")?;
            // systemd joins several StateDirectory= folders with ':'.
            let first = std::env::split_paths(&value).next()?;
            (!first.as_os_str().is_empty()).then_some(first)
        })
    }
}

fn parse_time(text: &str) -> Result<i64, String> {
    headwall_audit::time::parse_rfc3339(text)
}
