//! `headwall demo`: the whole job on loopback with no set-up.
//!
//! Starts a partner for age verification (127.0.0.2), a billing partner (127.0.0.4) and an
//! ordinary website (127.0.0.3), runs the real gateway on the configuration below, binds a test
//! subscriber to 127.0.0.5 with a real RADIUS Accounting-Start (a simulated packet gateway), sends
//! requests through the gateway's real listener, lets a shop's app ask the HTTPS APIs about
//! the same subscriber (`https.rs`), then a Stop. It prints what every origin and API client
//! received and checks it: the demo exits 1 if anything went where it must not.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use headwall_leakcheck::{EchoOrigin, ReceivedRequest, proxy_get, send_raw};
use headwall_radius::{AccountingRequest, AcctStatusType, PacketResult};
use tokio::net::UdpSocket;

mod https;

/// A number from Ofcom's range reserved for drama: never a real subscriber.
const SUBSCRIBER: &str = "447700900123";
const SUBSCRIBER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// A second subscriber, from the same reserved range.
const SECOND: &str = "447700900456";
const SECOND_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);
const UNBOUND_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
const AGECHECK_HOST: &str = "verify.agecheck.test";
/// A name in agecheck's contract that resolves outside its contracted addresses.
const CDN_HOST: &str = "cdn.agecheck.test";
const BILLING_HOST: &str = "pay.carrierbilling.test";
const WEBSITE_HOST: &str = "news.example.test";
const CHECK_HOST: &str = "leakcheck.example.test";
/// The shared secret of the simulated packet gateway.
const RADIUS_SECRET: &[u8] = b"demo-secret";
/// `[canary].msisdn`: the synthetic subscriber the canary probes as.
const CANARY_MSISDN: &str = "447700900000";

pub(crate) fn run(keep_running: bool) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(scenario(keep_running))
}

async fn scenario(keep_running: bool) -> anyhow::Result<ExitCode> {
    let origin = |last: u8| SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0));
    let agecheck = EchoOrigin::start(origin(2))
        .await
        .context("partner origin on 127.0.0.2")?;
    let website = EchoOrigin::start(origin(3))
        .await
        .context("website origin on 127.0.0.3")?;
    let billing = EchoOrigin::start(origin(4))
        .await
        .context("billing origin on 127.0.0.4")?;

    // The public leak-check page, on the website's address: the canary's non-partner target.
    let check_listener = tokio::net::TcpListener::bind(origin(3))
        .await
        .context("leak-check page on 127.0.0.3")?;
    let check = check_listener.local_addr()?;
    tokio::spawn(headwall_leakcheck::serve(
        check_listener,
        std::future::pending(),
    ));

    let ports = Ports {
        agecheck: agecheck.addr().port(),
        billing: billing.addr().port(),
        website: website.addr().port(),
        check: check.port(),
    };
    let state = tempfile::tempdir().context("temporary folder for the demo state")?;
    let config_path = state.path().join("headwall.toml");
    let good = config_text(&ports, false);
    std::fs::write(&config_path, &good)?;
    std::fs::write(
        state.path().join("subscribers.csv"),
        format!("msisdn,age_verified\n{SUBSCRIBER},true\n{SECOND},false\n"),
    )?;
    let api_root = https::prepare(state.path())?;
    let source = crate::config::ConfigSource {
        path: config_path.clone(),
        state_dir: None,
    };
    let config = source.load()?;
    let running = crate::runtime::start(&config, &source).await?;
    let proxy = running.explicit_addr;
    let started = std::time::Instant::now();

    println!(
        "headwall demo: gateway on {proxy}, admin on {}",
        running.admin_addr
    );
    println!(
        "  partner  agecheck   (age_verification) {AGECHECK_HOST} -> {}",
        agecheck.addr()
    );
    println!(
        "  partner  carrierpay (billing)          {BILLING_HOST} -> {}",
        billing.addr()
    );
    println!(
        "  website  (no contract)                  {WEBSITE_HOST} -> {}",
        website.addr()
    );
    println!("  leak-check page (no contract)           {CHECK_HOST} -> {check}");

    // A simulated packet gateway announces two sessions over real RADIUS.
    let radius = running.radius_addr.context("demo config has [radius]")?;
    accounting(
        radius,
        AcctStatusType::Start,
        1,
        SUBSCRIBER_ADDR,
        SUBSCRIBER,
        "demo-1",
    )
    .await?;
    accounting(
        radius,
        AcctStatusType::Start,
        2,
        SECOND_ADDR,
        SECOND,
        "demo-2",
    )
    .await?;
    println!(
        "\nRADIUS Accounting-Start acknowledged: {SUBSCRIBER} is on {SUBSCRIBER_ADDR}, \
         {SECOND} on {SECOND_ADDR}\n"
    );

    let mut checks = Checks::default();
    let url = |host: &str, port: u16| format!("http://{host}:{port}/");

    // 1. Age-verification partner, with a spoofed number the gateway must strip.
    let spoof = [
        ("X-MSISDN", "447700900999"),
        ("x_up_calling_line_id", "447700900999"),
    ];
    request(
        proxy,
        SUBSCRIBER_ADDR,
        &url(AGECHECK_HOST, ports.agecheck),
        &spoof,
    )
    .await?;
    let got = last(&agecheck, "agecheck")?;
    show(
        "1. subscriber A -> agecheck (sent a spoofed X-MSISDN and x_up_calling_line_id)",
        &got,
    );
    checks.expect(
        "agecheck got X-Age-Verified: true",
        got.header("x-age-verified") == Some("true"),
    );
    checks.expect(
        "agecheck got a 22-character pseudonym",
        got.header("x-subscriber-id").is_some_and(|v| v.len() == 22),
    );
    checks.expect(
        "spoofed headers never arrived",
        !carries_number(&got, "447700900999"),
    );
    checks.expect(
        "agecheck did not get the raw number",
        !carries_number(&got, SUBSCRIBER),
    );

    // 2. Billing partner: the raw number and a signed token.
    request(
        proxy,
        SUBSCRIBER_ADDR,
        &url(BILLING_HOST, ports.billing),
        &[],
    )
    .await?;
    let got = last(&billing, "carrierpay")?;
    show("2. subscriber A -> carrierpay (billing)", &got);
    checks.expect(
        "carrierpay got A's X-MSISDN",
        got.header("x-msisdn") == Some(SUBSCRIBER),
    );
    checks.expect(
        "carrierpay got a signed token",
        got.header("x-billing-token")
            .is_some_and(|v| v.split('.').count() == 3),
    );

    // 3. The second subscriber is told apart: its own number, never A's.
    request(proxy, SECOND_ADDR, &url(BILLING_HOST, ports.billing), &[]).await?;
    let got = last(&billing, "carrierpay")?;
    show("3. subscriber B -> carrierpay", &got);
    checks.expect(
        "carrierpay got B's number, not A's",
        got.header("x-msisdn") == Some(SECOND),
    );

    // 4. An ordinary website, with a spoof attempt: it must see no identity at all.
    let spoof = [("x_msisdn", SUBSCRIBER), ("X-Subscriber-Id", "forged")];
    request(
        proxy,
        SUBSCRIBER_ADDR,
        &url(WEBSITE_HOST, ports.website),
        &spoof,
    )
    .await?;
    let got = last(&website, "website")?;
    show(
        "4. subscriber A -> news.example.test (no contract; sent x_msisdn and X-Subscriber-Id)",
        &got,
    );
    checks.expect(
        "the website saw no identity header",
        !has_identity_header(&got),
    );
    checks.expect(
        "the website saw no phone number",
        !carries_number(&got, SUBSCRIBER),
    );

    // 5. A partner name that resolves outside the partner's contracted addresses.
    request(proxy, SUBSCRIBER_ADDR, &url(CDN_HOST, ports.website), &[]).await?;
    let got = last(&website, "website")?;
    show(
        "5. subscriber A -> cdn.agecheck.test (in agecheck's contract: hosts verify. and \
         cdn.agecheck.test, destinations 127.0.0.2/32; but this name resolves to 127.0.0.3)",
        &got,
    );
    checks.expect(
        "pinning mismatch: the address outside the contract got nothing",
        !has_identity_header(&got) && running.gateway.metrics().pinning_mismatches() == 1,
    );

    // 6. A client with no session binding gets nothing, even to a partner.
    request(
        proxy,
        UNBOUND_ADDR,
        &url(AGECHECK_HOST, ports.agecheck),
        &[],
    )
    .await?;
    let got = last(&agecheck, "agecheck")?;
    show("6. unbound client 127.0.0.6 -> agecheck", &got);
    checks.expect(
        "unbound client: partner got no identity",
        !has_identity_header(&got),
    );

    // 7. The canary: the gateway probed the leak-check page as a synthetic subscriber at start.
    let canary_ran = wait_until(Duration::from_secs(10), || {
        running.gateway.metrics().canary_last_success() > 0
            || running.gateway.metrics().canary_leaks() > 0
    })
    .await;
    let clean = canary_ran && running.gateway.metrics().canary_leaks() == 0;
    println!(
        "7. canary -> http://{CHECK_HOST}/api/v1/check as synthetic subscriber {CANARY_MSISDN}: {}\n",
        if clean {
            "clean (a non-partner sees nothing)"
        } else {
            "NOT CLEAN"
        }
    );
    checks.expect("the canary proved a non-partner sees nothing", clean);

    // 8. The 2012 mistake: a routine change widens carrierpay to the whole domain.
    println!(
        "8. a routine change: carrierpay's hosts gain \"*.example.test\" and its destinations \
         127.0.0.0/24"
    );
    let bad = config_text(&ports, true);
    let plan = headwall_policy::plan(
        &config.policy,
        &headwall_policy::load_policy("proposed.toml", &bad)
            .map_err(|errors| anyhow::anyhow!("{errors}"))?,
    );
    println!("   $ headwall plan --from running.toml --to proposed.toml --fail-on-widen");
    // The hash lines are for the review record; the changes are what a reviewer reads. The
    // origins' ports are random: shown by name, so the plan reads as it would in production.
    let names = [
        (ports.agecheck, "AGECHECK_PORT"),
        (ports.billing, "BILLING_PORT"),
        (ports.website, "WEBSITE_PORT"),
        (ports.check, "LEAKCHECK_PORT"),
    ];
    for line in plan.to_text().lines().skip(3) {
        println!("   {}", name_ports(line, &names));
    }
    println!("   (exit 3: a reviewer would stop it here)");
    checks.expect(
        "plan flagged the change as widening exposure",
        plan.widens(),
    );

    // Applied anyway: the canary runs right after the reload and trips the kill switch.
    std::fs::write(&config_path, &bad)?;
    let reloaded = std::time::Instant::now();
    running
        .reload()
        .await
        .map_err(|reason| anyhow::anyhow!("reload: {reason}"))?;
    let tripped = wait_until(Duration::from_secs(10), || {
        running.gateway.metrics().canary_leaks() > 0 && !running.gateway.enrichment_enabled()
    })
    .await;
    println!(
        "   applied anyway: the canary saw the number at the leak-check page {} ms after the \
         reload; kill switch: enrichment {}",
        reloaded.elapsed().as_millis(),
        if running.gateway.enrichment_enabled() {
            "still ON"
        } else {
            "OFF"
        }
    );
    checks.expect(
        "the canary caught the bad change within seconds and switched enrichment off",
        tripped,
    );
    request(
        proxy,
        SUBSCRIBER_ADDR,
        &url(BILLING_HOST, ports.billing),
        &[],
    )
    .await?;
    let got = last(&billing, "carrierpay")?;
    checks.expect(
        "with the kill switch on, even the partner got no identity",
        !has_identity_header(&got),
    );
    request(
        proxy,
        SUBSCRIBER_ADDR,
        &url(WEBSITE_HOST, ports.website),
        &[],
    )
    .await?;
    let got = last(&website, "website")?;
    checks.expect(
        "and the websites the bad rule covered got nothing",
        !has_identity_header(&got) && !carries_number(&got, SUBSCRIBER),
    );

    // The operator reverts the change, then turns enrichment back on (POST /v1/enrichment).
    std::fs::write(&config_path, &good)?;
    running
        .reload()
        .await
        .map_err(|reason| anyhow::anyhow!("reload: {reason}"))?;
    running.gateway.set_enrichment(true, "operator");
    request(
        proxy,
        SUBSCRIBER_ADDR,
        &url(BILLING_HOST, ports.billing),
        &[],
    )
    .await?;
    let got = last(&billing, "carrierpay")?;
    println!(
        "   reverted and re-enabled by the operator: carrierpay gets X-MSISDN again: {}\n",
        got.header("x-msisdn").unwrap_or("(none)")
    );
    checks.expect(
        "after the revert and re-enable, the partner is served again",
        got.header("x-msisdn") == Some(SUBSCRIBER),
    );

    // 9. HTTPS: the same knowledge answering CAMARA's questions.
    let api = running.api_addr.context("demo config has [api]")?;
    https::act(
        api,
        &api_root,
        SUBSCRIBER_ADDR,
        UNBOUND_ADDR,
        SUBSCRIBER,
        &mut checks,
    )
    .await?;

    // 10. The session ends: after the acknowledged Stop, the partner gets nothing.
    accounting(
        radius,
        AcctStatusType::Stop,
        3,
        SUBSCRIBER_ADDR,
        SUBSCRIBER,
        "demo-1",
    )
    .await?;
    println!("RADIUS Accounting-Stop acknowledged: A's session on {SUBSCRIBER_ADDR} ended");
    request(
        proxy,
        SUBSCRIBER_ADDR,
        &url(AGECHECK_HOST, ports.agecheck),
        &[],
    )
    .await?;
    let got = last(&agecheck, "agecheck")?;
    show("10. subscriber A -> agecheck after Stop", &got);
    checks.expect(
        "after Stop: partner got no identity",
        !has_identity_header(&got),
    );

    let metrics = running.gateway.metrics();
    println!(
        "gateway counters: {} identity headers stripped, {} inserted, {} pinning mismatches, \
         {} canary leaks",
        metrics.stripped_headers(),
        metrics.disclosures(),
        metrics.pinning_mismatches(),
        metrics.canary_leaks()
    );
    let radius_metrics = &running.radius_metrics;
    let accepted = radius_metrics.packets("start", PacketResult::Accepted)
        + radius_metrics.packets("stop", PacketResult::Accepted);
    println!("RADIUS counters: {accepted} accounting packets accepted");
    checks.expect(
        "all three RADIUS packets were accepted and applied",
        accepted == 3,
    );
    if keep_running {
        println!("\n--keep-running: gateway on {proxy}; Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
    }
    running.stop().await;

    // The regulator's questions, answered from the record the gateway just wrote.
    let source = crate::runtime::audit_source(&config.audit.backend);
    let msisdn = headwall_identity::Msisdn::parse(SUBSCRIBER)?;
    let range = headwall_audit::TimeRange::default();
    let records = source
        .subscriber(&msisdn, range)
        .await
        .map_err(anyhow::Error::msg)?;
    println!("\n$ headwall audit subscriber {SUBSCRIBER}");
    print!(
        "{}",
        super::audit::subscriber_text(&msisdn, range, &records)
    );
    // Header disclosures name a host; API answers their endpoint path.
    let partners: Vec<&str> = records
        .iter()
        .filter(|r| !headwall_policy::is_api_endpoint(&r.host))
        .map(|r| r.partner.as_str())
        .collect();
    checks.expect(
        "the audit log holds exactly A's three disclosures the partners received",
        partners == ["agecheck", "carrierpay", "carrierpay"],
    );
    let api_answers = records
        .iter()
        .filter(|r| headwall_policy::is_api_endpoint(&r.host) && r.partner == "shop-app")
        .count();
    checks.expect(
        "beside them, the API's three tokens and three answers to shop-app",
        api_answers == 6,
    );
    // Who the bad change exposed: every disclosure the policy meant to be running would not
    // have allowed.
    let intended = config.policy.clone();
    let unallowed = source
        .against(&intended, &headwall_audit::ExposureFilter::default())
        .await
        .map_err(anyhow::Error::msg)?;
    println!("\n$ headwall audit exposure --against running.toml");
    let rows: Vec<Vec<String>> = unallowed.iter().map(super::audit::against_row).collect();
    if !rows.is_empty() {
        print!(
            "{}",
            super::audit::table(&super::audit::AGAINST_HEADER, &rows)
        );
    }
    let exposed: std::collections::BTreeSet<&str> = unallowed
        .iter()
        .map(|finding| finding.record.msisdn.as_str())
        .collect();
    println!(
        "who the bad change exposed: {}",
        if exposed.iter().all(|number| *number == CANARY_MSISDN) && !exposed.is_empty() {
            "only the canary's synthetic subscriber, before the kill switch; no real subscriber"
        } else {
            "real subscribers (see the rows above)"
        }
    );
    checks.expect(
        "audit exposure --against: the bad change exposed only the canary's synthetic subscriber",
        !exposed.is_empty() && exposed.iter().all(|number| *number == CANARY_MSISDN),
    );
    let public_key = crate::keys::signing_key(&config.identity)?.public_key_bytes();
    let verified = source
        .verify(&public_key)
        .await
        .map_err(anyhow::Error::msg)?;
    checks.expect(
        "the audit hash chain verifies and reaches its signed checkpoint",
        verified.is_ok_and(|report| report.checkpoint.is_some()),
    );
    println!("\n(whole tour: {:.1} s)", started.elapsed().as_secs_f64());
    let ok = checks.report();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The origins' ports, for the configuration.
struct Ports {
    agecheck: u16,
    billing: u16,
    website: u16,
    check: u16,
}

/// The demo's configuration; `widened` is the bad change: carrierpay's rule covering every
/// `*.example.test` host on 127.0.0.0/24 (the leak-check page and the website among them).
fn config_text(ports: &Ports, widened: bool) -> String {
    let Ports {
        agecheck: agecheck_port,
        billing: billing_port,
        website: website_port,
        check: check_port,
    } = *ports;
    let (billing_hosts, billing_ports, billing_destinations) = if widened {
        (
            format!("[\"{BILLING_HOST}\", \"*.example.test\"]"),
            format!("[{billing_port}, {website_port}, {check_port}]"),
            "[\"127.0.0.4/32\", \"127.0.0.0/24\"]".to_owned(),
        )
    } else {
        (
            format!("[\"{BILLING_HOST}\"]"),
            format!("[{billing_port}]"),
            "[\"127.0.0.4/32\"]".to_owned(),
        )
    };
    format!(
        r#"# Written by `headwall demo`.
[gateway]
listen = "127.0.0.1:0"
[gateway.hosts]
"{AGECHECK_HOST}" = "127.0.0.2"
"{CDN_HOST}" = "127.0.0.3"
"{BILLING_HOST}" = "127.0.0.4"
"{WEBSITE_HOST}" = "127.0.0.3"
"{CHECK_HOST}" = "127.0.0.3"

[admin]
listen = "127.0.0.1:0"

[radius]
listen = "127.0.0.1:0"
[[radius.clients]]
source = "127.0.0.1/32"
secret = "demo-secret"

[subscribers]
file = "subscribers.csv"

[canary]
url = "http://{CHECK_HOST}:{check_port}/api/v1/check"
interval = "30s"
msisdn = "{CANARY_MSISDN}"
kill_switch = true

[identity]
issuer = "headwall.demo"

[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["{AGECHECK_HOST}", "{CDN_HOST}"]
ports = [{agecheck_port}, {website_port}]
destinations = ["127.0.0.2/32"]
headers = {{ "X-Age-Verified" = "age_verified", "X-Subscriber-Id" = "pseudonym" }}

[[partner]]
name = "carrierpay"
purpose = "billing"
hosts = {billing_hosts}
ports = {billing_ports}
destinations = {billing_destinations}
headers = {{ "X-MSISDN" = "msisdn", "X-Billing-Token" = "token" }}
{api}"#,
        api = https::config()
    )
}

/// `line` with each of the numbers in `names` (whole digit runs only) replaced by its name.
fn name_ports(line: &str, names: &[(u16, &str)]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        let named = digits
            .parse::<u16>()
            .ok()
            .and_then(|port| names.iter().find(|(p, _)| *p == port))
            .map(|(_, name)| *name);
        out.push_str(named.unwrap_or(digits));
        digits.clear();
    };
    for c in line.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

async fn request(
    proxy: SocketAddr,
    from: Ipv4Addr,
    url: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<()> {
    let response = send_raw(
        proxy,
        Some(IpAddr::V4(from)),
        &proxy_get(url, headers),
        Duration::from_secs(10),
    )
    .await
    .with_context(|| format!("request to {url} through the gateway"))?;
    anyhow::ensure!(
        response.status == 200,
        "{url}: gateway answered {}",
        response.status
    );
    Ok(())
}

fn last(origin: &EchoOrigin, name: &str) -> anyhow::Result<ReceivedRequest> {
    origin
        .received()
        .pop()
        .with_context(|| format!("{name} received nothing"))
}

fn show(title: &str, request: &ReceivedRequest) {
    println!("{title}");
    println!("   origin received: {} {}", request.method, request.target);
    for (name, value) in &request.headers {
        let mark = if is_identity_name(name) {
            "  <- identity"
        } else {
            ""
        };
        println!("     {name}: {value}{mark}");
    }
    println!();
}

fn is_identity_name(name: &str) -> bool {
    let name = headwall_policy::normalize_header_name(name);
    headwall_policy::builtin_identity_headers().any(|listed| listed == name)
        || ["x-age-verified", "x-billing-token"].contains(&name.as_str())
}

fn has_identity_header(request: &ReceivedRequest) -> bool {
    request
        .headers
        .iter()
        .any(|(name, _)| is_identity_name(name))
}

fn carries_number(request: &ReceivedRequest, number: &str) -> bool {
    request
        .headers
        .iter()
        .any(|(_, value)| value.contains(number))
}

/// Sends one Accounting-Request for a demo subscriber and waits for a valid response.
async fn accounting(
    radius: SocketAddr,
    status: AcctStatusType,
    identifier: u8,
    address: Ipv4Addr,
    msisdn: &str,
    session: &str,
) -> anyhow::Result<()> {
    let request = AccountingRequest {
        identifier,
        authenticator: [0; 16],
        status,
        framed_ip: Some(address),
        framed_ipv6_prefix: None,
        calling_station_id: Some(msisdn.into()),
        session_id: Some(session.into()),
        nas_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        nas_identifier: Some("demo-pgw".into()),
        imsi: None,
    };
    let datagram = headwall_radius::encode_accounting_request(&request, RADIUS_SECRET);
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(datagram.get(4..20).context("encoded request too short")?);
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.send_to(&datagram, radius).await?;
    let mut response = [0u8; 64];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut response))
        .await
        .context("no RADIUS response within 5 s")??;
    anyhow::ensure!(
        headwall_radius::response_is_valid(
            &response[..len],
            identifier,
            &authenticator,
            RADIUS_SECRET
        ),
        "invalid RADIUS response"
    );
    Ok(())
}

#[derive(Default)]
struct Checks(Vec<(&'static str, bool)>);

impl Checks {
    fn expect(&mut self, what: &'static str, ok: bool) {
        self.0.push((what, ok));
    }

    fn report(&self) -> bool {
        println!("\nchecks:");
        for (what, ok) in &self.0 {
            println!("  [{}] {what}", if *ok { "ok" } else { "FAILED" });
        }
        let failed = self.0.iter().filter(|(_, ok)| !ok).count();
        if failed == 0 {
            println!("demo: all {} checks passed", self.0.len());
        } else {
            println!("demo: {failed} of {} checks FAILED", self.0.len());
        }
        failed == 0
    }
}

async fn wait_until(limit: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
