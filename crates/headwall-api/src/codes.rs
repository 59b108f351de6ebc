//! Authorization codes: single-use, short-lived, bound to everything `/token` must check, and
//! kept server-side with the subscriber they stand for (the code itself is 256 random bits
//! and names nobody).
//!
//! Codes are held by their SHA-256, never as issued, so the table cannot be replayed from a
//! memory dump. A redeemed code stays remembered until its lifetime ends, with the token ids
//! it was exchanged for: a second redemption is refused and revokes those (RFC 6749 §4.1.2).
//! This store is in memory, which is right for one node with the embedded sessions store; a
//! fleet needs it in Redis beside the bindings (not built yet).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_identity::Msisdn;
use headwall_policy::ApiScope;
use sha2::{Digest, Sha256};

/// Codes held at once; past this, new authorizations are refused (`temporarily_unavailable`)
/// until old ones expire, so a flood of `/authorize` cannot grow memory without bound.
const MAX_CODES: usize = 100_000;

/// What a code was issued for: `/token` redeems it only for the same client, redirect URI and
/// PKCE verifier.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    /// `code_challenge` (S256), base64url.
    pub(crate) code_challenge: String,
    /// The subscriber the device was when the code was issued.
    pub(crate) msisdn: Msisdn,
    /// API scopes granted (without `openid` and the purpose).
    pub(crate) scopes: Vec<ApiScope>,
    /// The client's `nonce`, for the ID token.
    pub(crate) nonce: Option<String>,
    /// Unix seconds of the network-based authentication.
    pub(crate) auth_time: u64,
    /// The device's address then.
    pub(crate) device: std::net::IpAddr,
}

enum Entry {
    Fresh {
        grant: Grant,
        until: Instant,
    },
    Redeemed {
        token_ids: Vec<String>,
        until: Instant,
    },
}

impl Entry {
    fn until(&self) -> Instant {
        match self {
            Entry::Fresh { until, .. } | Entry::Redeemed { until, .. } => *until,
        }
    }
}

/// What redeeming a code found.
#[derive(Debug)]
pub(crate) enum Redeemed {
    /// First redemption: the grant, now used up.
    Grant(Grant),
    /// Already redeemed: the token ids issued then, to revoke.
    Again(Vec<String>),
    /// Unknown or expired.
    Unknown,
}

/// The codes of one node.
pub(crate) struct Codes {
    lifetime: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Codes {
    pub(crate) fn new(lifetime: Duration) -> Codes {
        Codes {
            lifetime,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A new code for `grant`, or `None` when no random bytes could be had or the table is
    /// full.
    pub(crate) fn issue(&self, grant: Grant) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let code = URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_CODES {
            entries.retain(|_, entry| entry.until() > now);
            if entries.len() >= MAX_CODES {
                return None;
            }
        }
        entries.insert(
            digest(&code),
            Entry::Fresh {
                grant,
                until: now + self.lifetime,
            },
        );
        Some(code)
    }

    /// Redeems `code` once.
    pub(crate) fn redeem(&self, code: &str) -> Redeemed {
        let key = digest(code);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.remove(&key) {
            Some(Entry::Fresh { grant, until }) if until > now => {
                entries.insert(
                    key,
                    Entry::Redeemed {
                        token_ids: Vec::new(),
                        until,
                    },
                );
                Redeemed::Grant(grant)
            }
            Some(Entry::Redeemed { token_ids, until }) if until > now => {
                entries.insert(
                    key,
                    Entry::Redeemed {
                        token_ids: Vec::new(),
                        until,
                    },
                );
                Redeemed::Again(token_ids)
            }
            _ => Redeemed::Unknown,
        }
    }

    /// Records the token ids a redeemed code was exchanged for.
    pub(crate) fn record_tokens(&self, code: &str, ids: Vec<String>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Entry::Redeemed { token_ids, .. }) = entries.get_mut(&digest(code)) {
            token_ids.extend(ids);
        }
    }
}

fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            client_id: "shop".into(),
            redirect_uri: "https://shop.test/cb".into(),
            code_challenge: "x".into(),
            msisdn: Msisdn::parse("447700900123").unwrap(),
            scopes: vec![ApiScope::NumberVerify],
            nonce: None,
            auth_time: 0,
            device: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    #[test]
    fn a_code_is_redeemed_once_and_a_second_try_names_the_first_tokens() {
        let codes = Codes::new(Duration::from_secs(60));
        let code = codes.issue(grant()).unwrap();
        assert_eq!(code.len(), 43);
        assert!(matches!(codes.redeem(&code), Redeemed::Grant(g) if g.client_id == "shop"));
        codes.record_tokens(&code, vec!["t1".into()]);
        assert!(matches!(codes.redeem(&code), Redeemed::Again(ids) if ids == ["t1"]));
        assert!(matches!(codes.redeem(&code), Redeemed::Again(ids) if ids.is_empty()));
        assert!(matches!(codes.redeem("nonsense"), Redeemed::Unknown));
    }

    #[test]
    fn an_expired_code_is_unknown() {
        let codes = Codes::new(Duration::ZERO);
        let code = codes.issue(grant()).unwrap();
        assert!(matches!(codes.redeem(&code), Redeemed::Unknown));
    }
}
