//! A soak with faults (docs/operations.md, "Soak"), short form: the real binary under a steady
//! mix of partner and non-partner requests while a RADIUS churner rebinds subscribers with
//! address reuse (a Start on an address another subscriber just left, late Stops, Interim
//! storms with stale sessions, Accounting-Off of a whole NAS), a reload every few seconds, a
//! `kill -9` and restart half-way, and (as root, as CI runs) the state disk filled to the last
//! block for a while and then given room again.
//!
//! Ground truth: the churner records who may hold each address when (from the moment a Start
//! is sent until the moment the change that ends it is acknowledged), the origins record what
//! they received. It passes when no request was enriched with a number that was not bound to
//! its address at that moment, no non-partner request carried identity, every disclosure the
//! partner received has a durable audit record, `audit verify` passes after the restart and at
//! the end, enrichment resumes by itself once the full disk has room, and the process's open
//! files do not grow.
//!
//! `scripts/test` runs it for 2 minutes; `bench/soak` runs the same test for 30 minutes
//! (`HEADWALL_SOAK_SECONDS`, `HEADWALL_SOAK_SUBSCRIBERS`, `HEADWALL_SOAK_RELOAD_SECONDS`,
//! `HEADWALL_SOAK_KILL_SECONDS`, `HEADWALL_SOAK_FILL_AT` and `HEADWALL_SOAK_FILL_SECONDS` for
//! when and how long the disk is full, `HEADWALL_SOAK_DISK_MIB` for its size) and prints the
//! figures the issue asks for.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use headwall_radius::{
    AccountingRequest, AcctStatusType, encode_accounting_request, response_is_valid,
};
use headwall_testkit::{
    EchoOrigin, ServeProcess, SplitMix64, loopback, origin, proxy_get, send_raw,
};

use crate::binary;

const SECRET: &str = "soak-secret";
/// Subscriber addresses 127.0.0.FIRST.. (reused by many subscribers over the run).
const FIRST: u8 = 10;
const ADDRESSES: u8 = 40;
const NASES: [&str; 2] = ["pgw-1", "pgw-2"];

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn config(partner_port: u16) -> String {
    let admin_and_radius = crate::admin_and_radius(SECRET);
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
[gateway.hosts]
"verify.partner.test" = "127.0.0.2"
"other.test" = "127.0.0.3"
{admin_and_radius}
[[partner]]
name = "partner"
purpose = "identification"
hosts = ["verify.partner.test"]
ports = [{partner_port}]
destinations = ["127.0.0.2/32"]
headers = {{ "X-MSISDN" = "msisdn" }}
"#
    )
}

/// Who may hold one address: a number from the moment its Start was sent until the moment the
/// change that ended it was acknowledged (`None`: not ended, or its end was never
/// acknowledged).
struct Span {
    msisdn: String,
    session: String,
    nas: usize,
    from: Instant,
    until: Option<Instant>,
}

/// Indexed so that a 30-minute run (millions of spans) stays linear: ending spans looks only at
/// the open ones, and checking a request only at that subscriber's spans on that address.
#[derive(Default)]
struct Truth {
    spans: HashMap<u8, Vec<Span>>,
    /// Per address, the indices of its spans still open.
    open: HashMap<u8, Vec<usize>>,
    /// Per (address, subscriber), the indices of their spans.
    held: HashMap<(u8, String), Vec<usize>>,
}

impl Truth {
    fn current(&self, address: u8) -> Option<&Span> {
        self.spans
            .get(&address)
            .and_then(|spans| spans.last())
            .filter(|span| span.until.is_none())
    }

    fn push(&mut self, address: u8, span: Span) {
        let spans = self.spans.entry(address).or_default();
        let index = spans.len();
        self.open.entry(address).or_default().push(index);
        self.held
            .entry((address, span.msisdn.clone()))
            .or_default()
            .push(index);
        spans.push(span);
    }

    /// Ends the open spans of `address` that `ended` picks, at `at` (the acknowledgement of
    /// what ended them).
    fn end(&mut self, address: u8, at: Instant, ended: impl Fn(&Span) -> bool) {
        let (Some(spans), Some(open)) = (self.spans.get_mut(&address), self.open.get_mut(&address))
        else {
            return;
        };
        open.retain(|index| match spans.get_mut(*index) {
            Some(span) if ended(span) => {
                span.until = Some(at);
                false
            }
            _ => true,
        });
    }

    /// Whether `msisdn` may have been bound to `address` at some moment in `[sent, answered]`.
    fn allows(&self, address: u8, msisdn: &str, sent: Instant, answered: Instant) -> bool {
        let (Some(spans), Some(held)) = (
            self.spans.get(&address),
            self.held.get(&(address, msisdn.to_owned())),
        ) else {
            return false;
        };
        held.iter()
            .filter_map(|index| spans.get(*index))
            .any(|span| span.from <= answered && span.until.is_none_or(|until| until >= sent))
    }
}

/// The RADIUS side of the soak: one packet at a time, each waited for.
struct Churner {
    socket: tokio::net::UdpSocket,
    server: SocketAddr,
    identifier: u8,
    sent: u64,
    acknowledged: u64,
    /// Every packet: when it was sent, its address, what it was, whether it was acknowledged.
    log: Vec<(Instant, Option<u8>, String, bool)>,
}

impl Churner {
    /// Sends one Accounting-Request; whether it was acknowledged within a second.
    async fn send(
        &mut self,
        status: AcctStatusType,
        address: Option<u8>,
        subscriber: Option<&str>,
        session: &str,
        nas: usize,
    ) -> bool {
        self.identifier = self.identifier.wrapping_add(1);
        let msisdn = subscriber.map(str::to_owned);
        let session = Some(session.to_owned());
        let request = AccountingRequest {
            identifier: self.identifier,
            authenticator: [0; 16],
            status,
            framed_ip: address.map(|last| Ipv4Addr::new(127, 0, 0, last)),
            framed_ipv6_prefix: None,
            calling_station_id: msisdn,
            session_id: session,
            nas_ip: None,
            nas_identifier: Some(NASES[nas].to_owned()),
            imsi: None,
        };
        let packet = encode_accounting_request(&request, SECRET.as_bytes());
        let what = format!(
            "{:?} {:?} {:?} nas {nas}",
            request.status, request.calling_station_id, request.session_id
        );
        let at = Instant::now();
        let acknowledged = self.exchange(&packet).await;
        self.log.push((at, address, what, acknowledged));
        acknowledged
    }

    async fn exchange(&mut self, packet: &[u8]) -> bool {
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&packet[4..20]);
        self.sent += 1;
        if self.socket.send_to(packet, self.server).await.is_err() {
            return false;
        }
        let mut answer = [0u8; 64];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok((length, _))) =
            tokio::time::timeout_at(deadline, self.socket.recv_from(&mut answer)).await
        {
            if response_is_valid(
                &answer[..length],
                self.identifier,
                &authenticator,
                SECRET.as_bytes(),
            ) {
                self.acknowledged += 1;
                return true;
            }
        }
        false
    }
}

/// What one client request saw.
struct Sent {
    address: u8,
    sent: Instant,
    answered: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_with_churn_reloads_and_a_kill_keeps_every_disclosure_true() {
    let seconds = setting("HEADWALL_SOAK_SECONDS", 120);
    let subscribers = setting("HEADWALL_SOAK_SUBSCRIBERS", 2_000);
    let reload_every = Duration::from_secs(setting("HEADWALL_SOAK_RELOAD_SECONDS", 5));
    let kill_every = Duration::from_secs(setting("HEADWALL_SOAK_KILL_SECONDS", seconds / 2));
    // At 70 % of the run by default: clear of the half-way kill, with time after it to see
    // enrichment come back.
    let fill_at = Duration::from_secs(setting("HEADWALL_SOAK_FILL_AT", seconds * 7 / 10));
    let fill_for = Duration::from_secs(setting("HEADWALL_SOAK_FILL_SECONDS", 10));
    let run_for = Duration::from_secs(seconds);

    let partner: EchoOrigin = origin(2).await;
    let other: EchoOrigin = origin(3).await;
    let text = config(partner.addr().port());
    // The state on a disk of its own that can be filled (tmpfs needs root; elsewhere the run
    // goes on without the full-disk phase and says so).
    let state = headwall_testkit::temp_dir();
    let disk = running_as_root().then(|| {
        SmallDisk::mount(
            state.path(),
            &format!("{}m", setting("HEADWALL_SOAK_DISK_MIB", 1024)),
        )
    });
    let gateway = Arc::new(Mutex::new(Some(ServeProcess::start_in(
        binary(),
        &text,
        state,
    ))));
    let addrs = |gateway: &Mutex<Option<ServeProcess>>| {
        let gateway = gateway.lock().unwrap_or_else(PoisonError::into_inner);
        gateway.as_ref().map(|g| (g.explicit, g.radius.unwrap()))
    };
    let truth = Arc::new(Mutex::new(Truth::default()));
    let sent: Arc<Mutex<HashMap<u64, Sent>>> = Arc::default();
    let down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    // The churner.
    let churn = {
        let (truth, down, stop, gateway) =
            (truth.clone(), down.clone(), stop.clone(), gateway.clone());
        tokio::spawn(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut churner = Churner {
                socket,
                server: "127.0.0.1:9".parse().unwrap(),
                identifier: 0,
                sent: 0,
                acknowledged: 0,
                log: Vec::new(),
            };
            let mut random = SplitMix64::new(0x50a6);
            let mut next_session = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if down.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let Some((_, radius)) = addrs(&gateway) else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                churner.server = radius;
                let address = FIRST + random.below(u64::from(ADDRESSES)) as u8;
                match random.below(100) {
                    // A new subscriber on the address: the old one's Stop, then the new Start
                    // (the address reused at once).
                    0..=59 => {
                        let old = truth
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .current(address)
                            .map(|s| (s.msisdn.clone(), s.session.clone(), s.nas));
                        if let Some((msisdn, session, nas)) = old
                            && churner
                                .send(
                                    AcctStatusType::Stop,
                                    Some(address),
                                    Some(&msisdn),
                                    &session,
                                    nas,
                                )
                                .await
                        {
                            truth.lock().unwrap_or_else(PoisonError::into_inner).end(
                                address,
                                Instant::now(),
                                |span| span.session == session,
                            );
                        }
                        next_session += 1;
                        let msisdn = format!("4477009{:05}", random.below(subscribers));
                        let session = format!("s{next_session:08x}");
                        let nas = random.below(2) as usize;
                        let from = Instant::now();
                        let acknowledged = churner
                            .send(
                                AcctStatusType::Start,
                                Some(address),
                                Some(&msisdn),
                                &session,
                                nas,
                            )
                            .await;
                        let mut truth = truth.lock().unwrap_or_else(PoisonError::into_inner);
                        // An acknowledged Start replaced whoever was still there (a Stop that
                        // was lost); an unacknowledged one may or may not have, so the old
                        // span stays open.
                        if acknowledged {
                            truth.end(address, Instant::now(), |_| true);
                        }
                        // Acknowledged or not, the new span stands from `from`: it may be bound.
                        truth.push(
                            address,
                            Span {
                                msisdn,
                                session,
                                nas,
                                from,
                                until: None,
                            },
                        );
                    }
                    // A late Stop of an earlier holder: must not unbind the current one.
                    60..=74 => {
                        let late = {
                            let truth = truth.lock().unwrap_or_else(PoisonError::into_inner);
                            truth.spans.get(&address).and_then(|spans| {
                                let ended: Vec<&Span> =
                                    spans.iter().filter(|s| s.until.is_some()).collect();
                                ended
                                    .last()
                                    .map(|s| (s.msisdn.clone(), s.session.clone(), s.nas))
                            })
                        };
                        if let Some((msisdn, session, nas)) = late {
                            let _ = churner
                                .send(
                                    AcctStatusType::Stop,
                                    Some(address),
                                    Some(&msisdn),
                                    &session,
                                    nas,
                                )
                                .await;
                        }
                    }
                    // An Interim storm: every current holder refreshed, and stale sessions'
                    // Interims on addresses others now hold (which must not take them back).
                    75..=96 => {
                        let (current, stale): (Vec<_>, Vec<_>) = {
                            let truth = truth.lock().unwrap_or_else(PoisonError::into_inner);
                            let current = (FIRST..FIRST + ADDRESSES)
                                .filter_map(|a| {
                                    truth
                                        .current(a)
                                        .map(|s| (a, s.msisdn.clone(), s.session.clone(), s.nas))
                                })
                                .collect();
                            let stale = (FIRST..FIRST + ADDRESSES)
                                .filter(|a| truth.current(*a).is_some())
                                .filter_map(|a| {
                                    truth
                                        .spans
                                        .get(&a)?
                                        .iter()
                                        .rev()
                                        .find(|s| s.until.is_some())
                                        .map(|s| (a, s.msisdn.clone(), s.session.clone(), s.nas))
                                })
                                .collect();
                            (current, stale)
                        };
                        for (a, msisdn, session, nas) in current.iter().chain(&stale) {
                            let _ = churner
                                .send(
                                    AcctStatusType::InterimUpdate,
                                    Some(*a),
                                    Some(msisdn),
                                    session,
                                    *nas,
                                )
                                .await;
                        }
                    }
                    // Accounting-Off of a whole NAS.
                    _ => {
                        let nas = random.below(2) as usize;
                        if churner
                            // Its own Acct-Session-Id: two Offs of one NAS are otherwise the
                            // same bytes, and with a recycled identifier within 30 s a
                            // retransmission by RFC 5080's rule (answered, not applied again).
                            .send(
                                AcctStatusType::AccountingOff,
                                None,
                                None,
                                &format!("off-{}", random.next_u64()),
                                nas,
                            )
                            .await
                        {
                            let at = Instant::now();
                            let mut truth = truth.lock().unwrap_or_else(PoisonError::into_inner);
                            for a in FIRST..FIRST + ADDRESSES {
                                truth.end(a, at, |span| span.nas == nas);
                            }
                        }
                    }
                }
            }
            (churner.sent, churner.acknowledged, churner.log)
        })
    };

    // The clients: partner and non-partner requests from the subscriber addresses.
    let next_id = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..6u64 {
        let (sent, stop, gateway, next_id) =
            (sent.clone(), stop.clone(), gateway.clone(), next_id.clone());
        let (partner_port, other_port) = (partner.addr().port(), other.addr().port());
        clients.push(tokio::spawn(async move {
            let mut random = SplitMix64::new(0xc11e + client);
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Some((explicit, _)) = addrs(&gateway) else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let address = FIRST + random.below(u64::from(ADDRESSES)) as u8;
                let url = if random.below(4) == 0 {
                    format!("http://other.test:{other_port}/r/{id}")
                } else {
                    format!("http://verify.partner.test:{partner_port}/r/{id}")
                };
                let at = Instant::now();
                let answer = send_raw(
                    explicit,
                    Some(loopback(address)),
                    &proxy_get(&url, &[]),
                    Duration::from_secs(5),
                )
                .await;
                let answered = Instant::now();
                match answer {
                    Ok(_) => {
                        sent.lock().unwrap_or_else(PoisonError::into_inner).insert(
                            id,
                            Sent {
                                address,
                                sent: at,
                                answered,
                            },
                        );
                    }
                    Err(_) => errors += 1,
                }
            }
            errors
        }));
    }

    // Faults: reloads, a kill -9 with a restart on the same state, and the disk full once.
    let mut full: Option<(Instant, Instant)> = None;
    let mut restarts = 0;
    let mut last_reload = Instant::now();
    let mut last_kill = Instant::now();
    // (seconds, open files, VmRSS KiB, RssAnon KiB): VmRSS also counts the state files' pages
    // the process maps (on the tmpfs, its memory); RssAnon is the heap alone.
    let mut fds: Vec<(f64, usize, u64, u64)> = Vec::new();
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if last_reload.elapsed() >= reload_every {
            if let Some(g) = gateway
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                g.signal("HUP");
            }
            last_reload = Instant::now();
        }
        if disk.is_some() && full.is_none() && started.elapsed() >= fill_at {
            let filler = gateway
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|g| g.path("filler"))
                .expect("a running gateway");
            let filled = {
                let filler = filler.clone();
                tokio::task::spawn_blocking(move || fill_to_the_last_block(&filler))
                    .await
                    .unwrap()
            };
            let from = Instant::now();
            tokio::time::sleep(fill_for).await;
            std::fs::remove_file(&filler).unwrap();
            println!("soak: disk full for {fill_for:?} after {filled} MiB of filler");
            full = Some((from, Instant::now()));
        }
        let just_full = full.is_some_and(|(_, until)| until.elapsed() < Duration::from_secs(5));
        if last_kill.elapsed() >= kill_every
            && !just_full
            && started.elapsed() + Duration::from_secs(5) < run_for
        {
            down.store(true, Ordering::Relaxed);
            let dir = gateway
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .map(ServeProcess::kill);
            let dir = dir.expect("a running gateway");
            let restarted = ServeProcess::start_in(binary(), &text, dir);
            let verify = std::process::Command::new(binary())
                .args(["audit", "verify", "--config"])
                .arg(restarted.path("headwall.toml"))
                .output()
                .unwrap();
            assert!(
                verify.status.success(),
                "audit verify after kill -9: {verify:?}"
            );
            *gateway.lock().unwrap_or_else(PoisonError::into_inner) = Some(restarted);
            down.store(false, Ordering::Relaxed);
            restarts += 1;
            last_kill = Instant::now();
            fds.clear();
        }
        if let Some(g) = gateway
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let pid = g.pid();
            let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|dir| dir.count())
                .unwrap_or(0);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kib = |field: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    .unwrap_or(0)
            };
            let sample = (
                started.elapsed().as_secs_f64(),
                open,
                kib("VmRSS:"),
                kib("RssAnon:"),
            );
            // A line a minute, so a long run shows whether the heap levels off.
            if fds.len() % 240 == 239 {
                println!(
                    "soak: at {:.0} s: {} open files, RSS {} MiB, heap {} MiB",
                    sample.0,
                    sample.1,
                    sample.2 / 1024,
                    sample.3 / 1024
                );
            }
            fds.push(sample);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (packets, acknowledged, log) = churn.await.unwrap();
    let mut client_errors = 0;
    for client in clients {
        client_errors += client.await.unwrap();
    }
    let gateway = gateway
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("a running gateway");
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));

    // What the origins received, against the truth.
    let truth = truth.lock().unwrap_or_else(PoisonError::into_inner);
    let sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
    let request_of = |target: &str| {
        target
            .strip_prefix("/r/")
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| sent.get(&id))
    };
    let mut enriched = 0u64;
    let mut withheld = 0u64;
    let during = |at: Instant| full.is_some_and(|(from, until)| at >= from && at <= until);
    // The ten seconds before the disk filled (2 s clear of it), and the ten from 2 s after it
    // had room: the rate must come back.
    let window = Duration::from_secs(10);
    let gap = Duration::from_secs(2);
    let before =
        |at: Instant| full.is_some_and(|(from, _)| at + gap <= from && at + gap + window > from);
    let after =
        |at: Instant| full.is_some_and(|(_, until)| at >= until + gap && at < until + gap + window);
    let (mut enriched_while_full, mut enriched_before_full, mut enriched_after_full) =
        (0u64, 0u64, 0u64);
    for received in partner.take() {
        let Some(request) = request_of(&received.target) else {
            continue;
        };
        match received.header_values("x-msisdn").as_slice() {
            [] => withheld += 1,
            [msisdn] => {
                enriched += 1;
                enriched_while_full += u64::from(during(request.sent));
                enriched_before_full += u64::from(before(request.sent));
                enriched_after_full += u64::from(after(request.sent));
                if !truth.allows(request.address, msisdn, request.sent, request.answered) {
                    // The synthetic subscribers and the churner's record, to see the race.
                    let t = |at: Instant| at.duration_since(started).as_secs_f64();
                    let spans: Vec<String> = truth.spans[&request.address]
                        .iter()
                        .map(|s| {
                            format!(
                                "{} {} nas {} {:.3}..{:?}",
                                s.msisdn,
                                s.session,
                                s.nas,
                                t(s.from),
                                s.until.map(t)
                            )
                        })
                        .collect();
                    let packets: Vec<String> = log
                        .iter()
                        .filter(|(_, a, _, _)| *a == Some(request.address) || a.is_none())
                        .map(|(at, _, what, ack)| format!("{:.3} {what} ack {ack}", t(*at)))
                        .collect();
                    panic!(
                        "127.0.0.{} was enriched with {msisdn}, not bound to it in {:.3}..{:.3}\nspans:\n{}\npackets:\n{}",
                        request.address,
                        t(request.sent),
                        t(request.answered),
                        spans.join("\n"),
                        packets.join("\n")
                    );
                }
            }
            more => panic!("{} identity headers on one request", more.len()),
        }
    }
    let others = other.take();
    assert!(
        others
            .iter()
            .all(|r| r.header_values("x-msisdn").is_empty()),
        "a non-partner received identity"
    );

    // Every disclosure the partner received has its durable record.
    let recorded = verified_records(&dir.path().join("headwall.toml"));
    assert!(
        recorded >= enriched,
        "{enriched} enriched requests but {recorded} audit records"
    );

    // Open files flat after the restart's warm-up; RSS reported.
    // Warm-up: the first minute after the last restart (half the samples in a short run), while
    // the heap grows to its working size (it then stays level: the minute lines show it).
    let warmup = (fds.len() / 2).min(240);
    let after_warmup: Vec<&(f64, usize, u64, u64)> = fds.iter().skip(warmup).collect();
    let slope = |values: Vec<(f64, f64)>| {
        let n = values.len() as f64;
        let (sx, sy) = values
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (mx, my) = (sx / n, sy / n);
        let (num, den) = values.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
            (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
        });
        if den == 0.0 { 0.0 } else { num / den }
    };
    let fd_slope = slope(
        after_warmup
            .iter()
            .map(|(t, f, ..)| (*t, *f as f64))
            .collect(),
    );
    let rss_slope = slope(
        after_warmup
            .iter()
            .map(|(t, _, r, _)| (*t, *r as f64))
            .collect(),
    );
    let anon_slope = slope(
        after_warmup
            .iter()
            .map(|(t, .., anon)| (*t, *anon as f64))
            .collect(),
    );
    let anon_mib =
        |sample: Option<&&(f64, usize, u64, u64)>| sample.map_or(0, |(.., anon)| *anon / 1024);
    let (anon_first, anon_last) = (
        anon_mib(after_warmup.first()),
        anon_mib(after_warmup.last()),
    );
    let (fd_min, fd_max) = after_warmup
        .iter()
        .fold((usize::MAX, 0), |(lo, hi), (_, f, ..)| {
            (lo.min(*f), hi.max(*f))
        });
    println!(
        "soak: {seconds} s, {restarts} kill -9 restarts; RADIUS {acknowledged}/{packets} acknowledged; \
         partner requests {enriched} enriched, {withheld} without identity; {} non-partner; \
         {client_errors} client errors; open fds {fd_min}..{fd_max} (slope {fd_slope:.3}/s); \
         RSS slope {rss_slope:.1} KiB/s; heap (RssAnon) {anon_first} -> {anon_last} MiB, slope \
         {anon_slope:.1} KiB/s",
        others.len()
    );
    if full.is_some() {
        let while_full: Vec<bool> = log
            .iter()
            .filter(|(at, ..)| during(*at))
            .map(|(.., acknowledged)| *acknowledged)
            .collect();
        println!(
            "soak: while the disk was full, {enriched_while_full} requests enriched (the \
             preallocated journal) and {} of {} RADIUS packets acknowledged; enriched in the \
             10 s before it filled {enriched_before_full}, in the 10 s from 2 s after it had \
             room {enriched_after_full}",
            while_full
                .iter()
                .filter(|acknowledged| **acknowledged)
                .count(),
            while_full.len(),
        );
        assert!(
            enriched_after_full * 2 >= enriched_before_full && enriched_after_full > 0,
            "enrichment did not come back once the disk had room: {enriched_before_full} in \
             the 10 s before, {enriched_after_full} in the 10 s after"
        );
    } else if disk.is_none() {
        println!("soak: not root, so the state disk was never filled (CI runs as root)");
    } else {
        println!("soak: the run ended before HEADWALL_SOAK_FILL_AT, so the disk was never filled");
    }
    assert!(restarts >= 1, "the run never restarted the gateway");
    assert!(
        enriched > 100,
        "too little enriched traffic to mean anything: {enriched}"
    );
    assert!(
        fd_max <= fd_min + 64,
        "open files grew: {fd_min} -> {fd_max}"
    );
    drop(disk);
    drop(dir);
}

/// After `audit verify` passes on the log `config` names: how many disclosures it records (every
/// partner's; the soak's config has one).
fn verified_records(config: &std::path::Path) -> u64 {
    let audit = |args: &[&str]| {
        std::process::Command::new(binary())
            .arg("audit")
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .unwrap()
    };
    let verify = audit(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");
    let exposure = audit(&["exposure", "--json"]);
    assert!(exposure.status.success(), "{exposure:?}");
    let rows: serde_json::Value = serde_json::from_slice(&exposure.stdout).unwrap();
    rows["exposure"]
        .as_array()
        .expect("exposure rows")
        .iter()
        .map(|row| row["disclosures"].as_u64().unwrap_or(0))
        .sum()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uid = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(uid.split_whitespace().nth(1)? == "0")
        })
        .unwrap_or(false)
}

/// Writes `path` until the disk has no block left (the write fails with "no space"); returns
/// how many MiB it took.
fn fill_to_the_last_block(path: &std::path::Path) -> u64 {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write_all(&block).and_then(|()| file.sync_data()) {
            Ok(()) => written += block.len() as u64,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                return written / (1024 * 1024);
            }
            Err(error) => panic!("filling the disk: {error}"),
        }
    }
}

/// A tmpfs mounted over a folder for the length of a test (needs root, as CI runs; the
/// transparent-mode tests need it too), unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "mount a {size} tmpfs failed: {}\n(the full-disk test needs root; CI runs scripts/test as root)",
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The state folder (audit journal and index, bindings) on a small disk that is then filled:
/// nothing is disclosed without its durable record, accounting that cannot be stored is not
/// acknowledged, and once there is room again bindings and enrichment come back by themselves,
/// with the audit log intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_loses_no_record_and_enrichment_resumes_when_there_is_room() {
    let partner = origin(2).await;
    let dir = headwall_testkit::temp_dir();
    let disk = SmallDisk::mount(dir.path(), "48m");
    let gateway = ServeProcess::start_in(binary(), &config(partner.addr().port()), dir);
    let radius = gateway.radius.unwrap();
    let start = |address: u8, session: &str| {
        format!(
            "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.{address}\nCalling-Station-Id = \"4477009000{address:02}\"\nAcct-Session-Id = \"{session}\"\nNAS-Identifier = \"pgw-1\"\n"
        )
    };
    let url = format!("http://verify.partner.test:{}/", partner.addr().port());
    let request = async |address: u8| {
        let answer = send_raw(
            gateway.explicit,
            Some(loopback(address)),
            &proxy_get(&url, &[]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200);
        let received = partner.take();
        assert_eq!(received.len(), 1);
        !received[0].header_values("x-msisdn").is_empty()
    };
    assert!(headwall_testkit::radclient(radius, SECRET, &start(10, "a")));
    assert!(request(10).await, "enriched before the disk filled");

    // Fill the disk to the last block.
    let filler = gateway.path("filler");
    fill_to_the_last_block(&filler);
    let mut enriched_while_full = 0;
    for _ in 0..200 {
        if request(10).await {
            enriched_while_full += 1;
        }
    }
    let stored_while_full = headwall_testkit::radclient(radius, SECRET, &start(11, "b"));

    // Room again: accounting is stored and acknowledged, and enrichment works, by themselves.
    std::fs::remove_file(&filler).unwrap();
    let mut resumed = false;
    for attempt in 0..50 {
        if headwall_testkit::radclient(radius, SECRET, &start(11, &format!("c{attempt}")))
            && request(11).await
        {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(resumed, "enrichment did not resume once the disk had room");
    let mut enriched_after = 1;
    for _ in 0..20 {
        if request(10).await {
            enriched_after += 1;
        }
    }

    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));
    let recorded = verified_records(&dir.path().join("headwall.toml"));
    let enriched = 1 + enriched_while_full + enriched_after;
    println!(
        "full disk: {enriched_while_full} of 200 enriched while full; accounting stored while \
         full: {stored_while_full}; {recorded} records for {enriched} enriched requests"
    );
    assert!(
        recorded >= enriched,
        "{enriched} enriched but {recorded} records"
    );
    drop(disk);
    drop(dir);
}
