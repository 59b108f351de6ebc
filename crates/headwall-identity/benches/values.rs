//! Hot paths of value production: one pseudonym and one signed token per enriched request.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use headwall_identity::{Msisdn, PseudonymKey, SigningKey, TokenIssuer, TokenRequest};

fn values(c: &mut Criterion) {
    let msisdn = Msisdn::parse("447700900123").expect("valid msisdn");
    let master = PseudonymKey::from_bytes(&[7; 32]).expect("32 bytes");
    let partner = master.for_partner("agecheck");
    let issuer = TokenIssuer::new(SigningKey::from_seed(&[9; 32]).expect("32 bytes"), "bench");
    let pseudonym = partner.pseudonym(&msisdn);

    c.bench_function("msisdn_parse", |b| {
        b.iter(|| Msisdn::parse(black_box("+447700900123")))
    });
    c.bench_function("partner_key_derive", |b| {
        b.iter(|| master.for_partner(black_box("agecheck")))
    });
    c.bench_function("pseudonym", |b| {
        b.iter(|| partner.pseudonym(black_box(&msisdn)))
    });
    c.bench_function("token_issue", |b| {
        let mut n: u64 = 0;
        b.iter(|| {
            n = n.wrapping_add(1);
            let mut nonce = [0u8; 16];
            nonce[..8].copy_from_slice(&n.to_le_bytes());
            issuer.issue(black_box(&TokenRequest {
                audience: "agecheck",
                subject: &pseudonym,
                purpose: "age_verification",
                issued_at: 1_700_000_000,
                nonce,
            }))
        })
    });
}

criterion_group!(benches, values);
criterion_main!(benches);
