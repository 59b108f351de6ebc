//! `headwall probe --proxy URL --check-url URL`: one request through a gateway to a leak-check
//! endpoint; prints the findings (values redacted) and exits 1 on a leak, 2 when it cannot run.

use std::process::ExitCode;
use std::time::Duration;

use headwall_leakcheck::Verdict;

pub(crate) fn run(proxy: &str, check_url: &str) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let authority = proxy
            .strip_prefix("http://")
            .unwrap_or(proxy)
            .trim_end_matches('/');
        let Some(gateway) = tokio::net::lookup_host(authority)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
        else {
            eprintln!("--proxy {proxy}: give the gateway as http://HOST:PORT");
            return Ok(ExitCode::from(super::EXIT_CANNOT_RUN));
        };
        match headwall_leakcheck::check_through(gateway, None, check_url, Duration::from_secs(10))
            .await
        {
            Err(reason) => {
                eprintln!("probe: {reason}");
                Ok(ExitCode::from(super::EXIT_CANNOT_RUN))
            }
            Ok(report) => {
                println!(
                    "{}: {} ({})",
                    check_url,
                    report.verdict.as_str(),
                    super::check::plural(report.headers_seen, "header seen", "headers seen")
                );
                for finding in &report.findings {
                    println!(
                        "  {}: {} ({})",
                        finding.header,
                        finding.redacted,
                        finding.reason.as_str()
                    );
                }
                Ok(match report.verdict {
                    Verdict::Leak => ExitCode::from(1),
                    Verdict::Clean => ExitCode::SUCCESS,
                })
            }
        }
    })
}
