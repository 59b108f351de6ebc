//! Builds the identity values a partner receives; they are inserted, all or nothing, only after
//! their disclosure record is durable.

use std::net::IpAddr;

use headwall_identity::{Msisdn, TokenRequest};
use headwall_policy::{Partner, ValueKind, WithholdReason};
use headwall_sessions::Lookup;
use http::{HeaderMap, HeaderName, HeaderValue};

use std::sync::atomic::Ordering;

use crate::gateway::{ActivePolicy, Gateway, PartnerRuntime};

/// Every value `partner` is to receive for one request, computed but not yet inserted.
pub(crate) struct Prepared<'a> {
    runtime: &'a PartnerRuntime,
    pub(crate) msisdn: Msisdn,
    /// Name, value, kind, and the index of the header in the partner's runtime.
    pub(crate) values: Vec<(HeaderName, HeaderValue, ValueKind, usize)>,
}

impl Prepared<'_> {
    /// Inserts every value and counts it. `insert`, not `append`: the strip set already removed
    /// every client copy of partner header names, so exactly one copy leaves.
    pub(crate) fn insert(self, headers: &mut HeaderMap) -> usize {
        let inserted = self.values.len();
        for (name, value, _, index) in self.values {
            headers.insert(name, value);
            if let Some((_, _, counter)) = self.runtime.headers.get(index) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        inserted
    }
}

/// Computes `partner`'s values for the subscriber behind `client_ip`, or says why there are
/// none. Any failure yields no values at all.
pub(crate) async fn prepare<'a>(
    gateway: &Gateway,
    active: &'a ActivePolicy,
    partner: &Partner,
    client_ip: IpAddr,
) -> Result<Prepared<'a>, WithholdReason> {
    if !gateway.enrichment_enabled() {
        return Err(WithholdReason::EnrichmentDisabled);
    }
    if gateway.is_suspended(&partner.name) {
        return Err(WithholdReason::PartnerSuspended);
    }
    let Some(runtime) = active.partner(&partner.name) else {
        return Err(WithholdReason::PolicyUnavailable);
    };
    let now = headwall_sessions::unix_now();
    let subscriber = match gateway.sessions.lookup_subscriber(client_ip, now).await {
        Ok(Lookup::Bound(msisdn)) => msisdn,
        Ok(Lookup::Unbound) => return Err(WithholdReason::NoBinding),
        Ok(Lookup::Stale) => return Err(WithholdReason::StaleBinding),
        // The shared store did not answer in time: no identity (fail closed), counted by it.
        Err(_) => return Err(WithholdReason::SessionStoreUnavailable),
    };
    let msisdn = &subscriber;
    let profiles = gateway.profiles.load();

    // Compute every value before inserting any: a failure leaves the request without identity.
    let mut values = Vec::with_capacity(runtime.headers.len());
    for (index, (name, kind, _)) in runtime.headers.iter().enumerate() {
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
                    return Err(WithholdReason::ValueUnavailable);
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
            return Err(WithholdReason::ValueUnavailable);
        };
        value.set_sensitive(true);
        values.push((name.clone(), value, *kind, index));
    }
    Ok(Prepared {
        runtime,
        msisdn: msisdn.clone(),
        values,
    })
}
