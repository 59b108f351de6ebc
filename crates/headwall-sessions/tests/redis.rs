//! The Redis backend against a real `redis-server`: the accounting rules, expiry, IPv6 prefixes,
//! and an outage that fails closed and recovers.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::IpAddr;
use std::time::{Duration, Instant};

use headwall_identity::Msisdn;
use headwall_sessions::{Binding, Change, Lookup, Records, RedisSessions, RedisTls, Sessions};
use headwall_testkit::tls::TestCa;
use headwall_testkit::{RedisCluster, RedisServer};
use ipnet::IpNet;

fn binding(msisdn: &str, session: &str, nas: &str, at: u64) -> Binding {
    Binding {
        msisdn: Msisdn::parse(msisdn).unwrap(),
        imsi: None,
        session_id: session.into(),
        nas: nas.into(),
        updated_at: at,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

async fn who(sessions: &Sessions, address: &str) -> Option<String> {
    match sessions.lookup(ip(address), now()).await.unwrap() {
        Lookup::Bound(binding) => Some(binding.msisdn.expose_digits().to_owned()),
        Lookup::Unbound | Lookup::Stale => None,
    }
}

fn sessions(server: &RedisServer, stale_after: Duration) -> Sessions {
    Sessions::Redis(
        RedisSessions::connect(&[server.url()], stale_after, &RedisTls::default()).unwrap(),
    )
}

#[tokio::test]
async fn accounting_rules_hold_in_redis() {
    let server = RedisServer::start();
    let s = sessions(&server, Duration::from_secs(3600));
    let t = now();
    s.apply(Change::Bind(
        net("10.0.0.1/32"),
        binding("447700900001", "a", "pgw-1", t),
    ))
    .await
    .unwrap();
    assert_eq!(who(&s, "10.0.0.1").await.as_deref(), Some("447700900001"));

    // The newest session wins the address; a late Stop of the old one leaves it.
    s.apply(Change::Bind(
        net("10.0.0.1/32"),
        binding("447700900002", "b", "pgw-1", t),
    ))
    .await
    .unwrap();
    assert!(
        !s.apply(Change::Unbind(net("10.0.0.1/32"), "a".into()))
            .await
            .unwrap()
    );
    assert_eq!(who(&s, "10.0.0.1").await.as_deref(), Some("447700900002"));
    // An Interim of an old session never takes the address back.
    assert!(
        !s.apply(Change::Refresh(
            net("10.0.0.1/32"),
            binding("447700900001", "a", "pgw-1", t)
        ))
        .await
        .unwrap()
    );
    assert_eq!(who(&s, "10.0.0.1").await.as_deref(), Some("447700900002"));
    // The right Stop ends it.
    assert!(
        s.apply(Change::Unbind(net("10.0.0.1/32"), "b".into()))
            .await
            .unwrap()
    );
    assert_eq!(who(&s, "10.0.0.1").await, None);

    // Accounting-On/Off removes that NAS's bindings only.
    s.apply(Change::Bind(
        net("10.0.1.1/32"),
        binding("447700900011", "x", "pgw-1", t),
    ))
    .await
    .unwrap();
    s.apply(Change::Bind(
        net("10.0.1.2/32"),
        binding("447700900012", "y", "pgw-2", t),
    ))
    .await
    .unwrap();
    assert!(s.apply(Change::UnbindNas("pgw-1".into())).await.unwrap());
    assert_eq!(who(&s, "10.0.1.1").await, None);
    assert_eq!(who(&s, "10.0.1.2").await.as_deref(), Some("447700900012"));

    // IPv6: bound by prefix, looked up by the longest one.
    s.apply(Change::Bind(
        net("2001:db8:1::/48"),
        binding("447700900021", "p48", "pgw-1", t),
    ))
    .await
    .unwrap();
    s.apply(Change::Bind(
        net("2001:db8:1:2::/64"),
        binding("447700900022", "p64", "pgw-1", t),
    ))
    .await
    .unwrap();
    assert_eq!(
        who(&s, "2001:db8:1:2::99").await.as_deref(),
        Some("447700900022")
    );
    assert_eq!(
        who(&s, "2001:db8:1:3::1").await.as_deref(),
        Some("447700900021")
    );
    assert_eq!(who(&s, "2001:db8:2::1").await, None);
}

#[tokio::test]
async fn bindings_expire_at_stale_after() {
    let server = RedisServer::start();
    let s = sessions(&server, Duration::from_secs(1));
    s.apply(Change::Bind(
        net("10.0.0.9/32"),
        binding("447700900009", "s", "pgw-1", now()),
    ))
    .await
    .unwrap();
    assert!(who(&s, "10.0.0.9").await.is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        who(&s, "10.0.0.9").await,
        None,
        "expired with no accounting"
    );
}

#[tokio::test]
async fn an_outage_fails_closed_quickly_and_recovers() {
    let mut server = RedisServer::start();
    let s = sessions(&server, Duration::from_secs(3600));
    s.apply(Change::Bind(
        net("10.0.0.7/32"),
        binding("447700900007", "s", "pgw-1", now()),
    ))
    .await
    .unwrap();
    assert!(!s.degraded());

    server.stop();
    let started = Instant::now();
    let lookup = s.lookup(ip("10.0.0.7"), now()).await;
    assert!(
        lookup.is_err(),
        "a lookup during an outage must fail, not guess"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let write = s
        .apply(Change::Bind(
            net("10.0.0.8/32"),
            binding("447700900008", "t", "pgw-1", now()),
        ))
        .await;
    assert!(
        write.is_err(),
        "a write during an outage is not acknowledged"
    );
    assert!(s.degraded());
    assert!(s.errors() >= 2);
    // The error says what failed, never which subscriber.
    let message = lookup.err().unwrap().to_string();
    assert!(
        !message.contains("7700900007") && !message.contains("10.0.0.7"),
        "{message}"
    );

    // Back: the connection manager reconnects (the data was not persisted: empty now).
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if s.lookup(ip("10.0.0.7"), now()).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!s.degraded());
}

/// The API's short-lived records in Redis, seen from two handles (two nodes of a fleet): what
/// one creates the other reads, and the once-only operations hand a value out once in all.
#[tokio::test]
async fn records_are_shared_and_once_only_across_nodes() {
    let server = RedisServer::start();
    let a = Records::for_sessions(&sessions(&server, Duration::from_secs(3600)));
    let b = Records::for_sessions(&sessions(&server, Duration::from_secs(3600)));
    assert!(matches!(a, Records::Redis(_)));
    let ttl = Duration::from_secs(60);

    assert!(a.insert_new("headwall:test:k", "one", ttl).await.unwrap());
    assert!(!b.insert_new("headwall:test:k", "two", ttl).await.unwrap());
    assert_eq!(
        b.get("headwall:test:k").await.unwrap().as_deref(),
        Some("one")
    );
    // Swap: the first value goes to exactly one node; the expiry is kept.
    assert_eq!(
        b.swap("headwall:test:k", "b").await.unwrap().as_deref(),
        Some("one")
    );
    assert_eq!(
        a.swap("headwall:test:k", "a").await.unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(a.swap("headwall:test:absent", "x").await.unwrap(), None);
    assert_eq!(a.get("headwall:test:absent").await.unwrap(), None);
    // Take: once.
    assert_eq!(
        b.take("headwall:test:k").await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(a.take("headwall:test:k").await.unwrap(), None);
    // Put overwrites; a record expires by itself.
    a.put("headwall:test:p", "x", Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(
        b.get("headwall:test:p").await.unwrap().as_deref(),
        Some("x")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.get("headwall:test:p").await.unwrap(), None);
}

/// `rediss://` (docs/config.md, "TLS to PostgreSQL and Redis"): a redis-server that speaks only
/// TLS and asks for a client certificate. With the right CA and a client certificate bindings
/// work; someone else's CA, no client certificate or plaintext fail every call, which the
/// gateway turns into "no identity".
#[tokio::test]
async fn rediss_checks_the_server_and_offers_the_client_certificate() {
    let dir = headwall_testkit::temp_dir();
    let ca = TestCa::new("session store CA");
    let clients = TestCa::new("gateway client CA");
    let server_pair = ca.write_pair(dir.path(), "redis", "redis", &["127.0.0.1"]);
    let clients_file = clients.write(dir.path(), "clients");
    let server = RedisServer::start_tls(&server_pair, Some(&clients_file));
    let (client_cert, client_key) = clients.issue("gw-1", &[]);
    let tls = |ca: &TestCa, with_client: bool| RedisTls {
        ca_pem: Some(ca.pem().into_bytes()),
        client: with_client.then(|| {
            (
                client_cert.clone().into_bytes(),
                client_key.clone().into_bytes(),
            )
        }),
    };
    let connect = |url: String, tls: RedisTls| {
        Sessions::Redis(RedisSessions::connect(&[url], Duration::from_secs(3600), &tls).unwrap())
    };

    let good = connect(server.tls_url(), tls(&ca, true));
    good.apply(Change::Bind(
        net("10.9.0.1/32"),
        binding("447700900091", "s", "pgw-1", now()),
    ))
    .await
    .unwrap();
    assert_eq!(
        who(&good, "10.9.0.1").await.as_deref(),
        Some("447700900091")
    );

    let stranger = TestCa::new("someone else's CA");
    for (what, sessions) in [
        (
            "someone else's CA",
            connect(server.tls_url(), tls(&stranger, true)),
        ),
        (
            "no client certificate",
            connect(server.tls_url(), tls(&ca, false)),
        ),
        ("plaintext", connect(server.url(), RedisTls::default())),
    ] {
        assert!(
            sessions.lookup(ip("10.9.0.1"), now()).await.is_err(),
            "{what}: the lookup must fail"
        );
    }
}

/// A real Redis Cluster (three masters, `redis-cli --cluster create`): bindings spread over
/// every master's slots. One master down: its subscribers' lookups and binds fail (fail closed:
/// no identity, no acknowledgement), the other masters' keep working; back, it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_master_down_fails_closed_for_its_slots_only() {
    let mut cluster = RedisCluster::start();
    let s = Sessions::Redis(
        RedisSessions::connect(
            &cluster.urls(),
            Duration::from_secs(3600),
            &RedisTls::default(),
        )
        .unwrap(),
    );
    // One address per master, none on the master that holds pgw-1's NAS index (a bind adds
    // its key there, so that master's outage would refuse every bind).
    let nas_owner = cluster.owner("headwall:nas:pgw-1");
    let mut on: [Option<String>; 3] = [None, None, None];
    for last in 1..=200 {
        let address = format!("10.7.0.{last}");
        let owner = cluster.owner(&format!("headwall:bind:{address}/32"));
        if on[owner].is_none() {
            on[owner] = Some(address);
        }
    }
    let on: Vec<String> = on.into_iter().map(Option::unwrap).collect();
    let down = (nas_owner + 1) % 3;
    let t = now();
    for (index, address) in on.iter().enumerate() {
        s.apply(Change::Bind(
            net(&format!("{address}/32")),
            binding(&format!("44770090010{index}"), "s", "pgw-1", t),
        ))
        .await
        .unwrap();
        assert!(
            who(&s, address).await.is_some(),
            "{address} on master {index}"
        );
    }

    cluster.nodes[down].stop();
    let live: Vec<&String> = (0..3).filter(|i| *i != down).map(|i| &on[i]).collect();
    // The client notices the dead master on its first calls; from then on the live masters
    // answer and the dead one's slots fail.
    let mut settled = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let mut all = true;
        for address in &live {
            all &= matches!(s.lookup(ip(address), now()).await, Ok(Lookup::Bound(_)));
        }
        if all {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "the live masters' bindings never answered again");
    for _ in 0..5 {
        assert!(
            s.lookup(ip(&on[down]), now()).await.is_err(),
            "a lookup on the dead master's slots must fail, not answer unbound"
        );
        for address in &live {
            assert!(matches!(
                s.lookup(ip(address), now()).await,
                Ok(Lookup::Bound(_))
            ));
        }
    }
    assert!(
        s.apply(Change::Bind(
            net(&format!("{}/32", on[down])),
            binding("447700900199", "t", "pgw-1", now()),
        ))
        .await
        .is_err(),
        "a bind on the dead master's slots must not be acknowledged"
    );
    s.apply(Change::Bind(
        net(&format!("{}/32", live[0])),
        binding("447700900198", "t", "pgw-1", now()),
    ))
    .await
    .unwrap();

    // Back (empty: the test servers keep no data): binds and lookups on its slots work again.
    cluster.nodes[down].restart();
    cluster.wait_until_ok();
    let mut recovered = false;
    for _ in 0..100 {
        let bound = s
            .apply(Change::Bind(
                net(&format!("{}/32", on[down])),
                binding("447700900197", "u", "pgw-1", now()),
            ))
            .await
            .is_ok();
        if bound && who(&s, &on[down]).await.as_deref() == Some("447700900197") {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the restarted master's slots never served again");
}
