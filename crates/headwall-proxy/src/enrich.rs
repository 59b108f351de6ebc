//! Builds the identity values a partner receives and inserts them, all or nothing.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use headwall_identity::TokenRequest;
use headwall_policy::{Partner, ValueKind, WithholdReason};
use headwall_sessions::Lookup;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::gateway::{ActivePolicy, Gateway};

/// Inserts `partner`'s headers for the subscriber behind `client_ip`. Returns the number of
/// headers inserted, or why nothing was (then `headers` is untouched).
pub(crate) fn enrich(
    gateway: &Gateway,
    active: &ActivePolicy,
    partner: &Partner,
    client_ip: IpAddr,
    headers: &mut HeaderMap,
) -> Result<usize, WithholdReason> {
    if !gateway.enrichment_enabled() {
        return Err(WithholdReason::EnrichmentDisabled);
    }
    let Some(runtime) = active.partner(&partner.name) else {
        return Err(WithholdReason::PolicyUnavailable);
    };
    let now = unix_now();
    let binding = match gateway.sessions.lookup(client_ip, now) {
        Lookup::Bound(binding) => binding,
        Lookup::Unbound => return Err(WithholdReason::NoBinding),
        Lookup::Stale => return Err(WithholdReason::StaleBinding),
    };
    let msisdn = &binding.msisdn;
    let profiles = gateway.profiles.load();

    // Compute every value before inserting any: a failure leaves the request without identity.
    let mut values: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(runtime.headers.len());
    for (name, kind) in &runtime.headers {
        let value = match kind {
            ValueKind::Msisdn => HeaderValue::from_str(msisdn.expose_digits()),
            ValueKind::Pseudonym => {
                HeaderValue::from_str(runtime.pseudonym_key.pseudonym(msisdn).as_str())
            }
            ValueKind::AgeVerified => match profiles.age_verified(msisdn) {
                Some(true) => Ok(HeaderValue::from_static("true")),
                Some(false) => Ok(HeaderValue::from_static("false")),
                // Unknown: the header is omitted, never guessed.
                None => continue,
            },
            ValueKind::Token => {
                let subject = runtime.pseudonym_key.pseudonym(msisdn);
                let mut nonce = [0u8; 16];
                if getrandom::fill(&mut nonce).is_err() {
                    return Err(WithholdReason::PolicyUnavailable);
                }
                let token = gateway.keys.issuer.issue(&TokenRequest {
                    audience: &partner.name,
                    subject: &subject,
                    purpose: partner.purpose.as_str(),
                    issued_at: now,
                    nonce,
                });
                HeaderValue::from_str(token.expose())
            }
        };
        let Ok(mut value) = value else {
            return Err(WithholdReason::PolicyUnavailable);
        };
        value.set_sensitive(true);
        values.push((name.clone(), value));
    }
    let inserted = values.len();
    for (name, value) in values {
        // `insert`, not `append`: the strip set already removed every client copy of partner
        // header names, and exactly one copy leaves.
        headers.insert(name, value);
    }
    Ok(inserted)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
