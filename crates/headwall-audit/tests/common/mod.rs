//! What the audit crate's test files share, whichever backend they run against: the signing
//! key, the options, a disclosure and a burst of them.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use headwall_audit::{AuditLog, AuditOptions, Disclosure};
use headwall_identity::{Msisdn, SigningKey};

pub(crate) const SEED: [u8; 32] = [0x42; 32];

pub(crate) fn options() -> AuditOptions {
    AuditOptions {
        signing_key: SigningKey::from_seed(&SEED).unwrap(),
        checkpoint_every: Duration::from_secs(60),
        commit_window: headwall_audit::DEFAULT_COMMIT_WINDOW,
    }
}

pub(crate) fn public_key() -> [u8; 32] {
    SigningKey::from_seed(&SEED).unwrap().public_key_bytes()
}

pub(crate) fn disclosure(msisdn: &str, partner: &str, host: &str) -> Disclosure {
    Disclosure {
        request_id: "r".into(),
        partner: partner.into(),
        purpose: "age_verification".into(),
        msisdn: Msisdn::parse(msisdn).unwrap(),
        kinds: vec!["pseudonym".into(), "age_verified".into()],
        headers: vec!["X-Subscriber-Id".into(), "X-Age-Verified".into()],
        host: host.into(),
        port: 80,
        upstream_ip: IpAddr::from([127, 0, 0, 2]),
        client_ip: IpAddr::from([127, 0, 0, 5]),
        policy_hash: "policy-1".into(),
    }
}

/// `count` disclosures at once (50 subscribers), each awaited: every one durable on return.
pub(crate) async fn write_many(log: &AuditLog, count: usize) {
    let mut tasks = Vec::new();
    for index in 0..count {
        let log = log.clone();
        let msisdn = format!("4477009{:05}", index % 50);
        tasks.push(tokio::spawn(async move {
            log.disclose(disclosure(&msisdn, "agecheck", "verify.agecheck.test"))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}
