//! Access tokens issued, by `jti`: the subscriber behind each is kept here, never in the token
//! (its `sub` is the client's pairwise pseudonym). Revoking removes; expiry removes on the way.
//! In memory, like the codes (a fleet needs Redis; not built yet).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use headwall_identity::Msisdn;
use headwall_policy::ApiScope;

/// Tokens held at once; past this `/token` answers `temporarily_unavailable`.
const MAX_TOKENS: usize = 200_000;

/// What one access token stands for.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) client_id: String,
    pub(crate) msisdn: Msisdn,
    pub(crate) scopes: Vec<ApiScope>,
    /// The device's address at authentication (the audit's `client_ip`).
    pub(crate) device: IpAddr,
    pub(crate) until: Instant,
}

/// The access tokens of one node.
#[derive(Default)]
pub(crate) struct IssuedTokens {
    tokens: Mutex<HashMap<String, Issued>>,
}

impl IssuedTokens {
    /// Remembers `issued` under `jti`; false when the table is full.
    pub(crate) fn insert(&self, jti: String, issued: Issued) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= MAX_TOKENS {
            let now = Instant::now();
            tokens.retain(|_, token| token.until > now);
            if tokens.len() >= MAX_TOKENS {
                return false;
            }
        }
        tokens.insert(jti, issued);
        true
    }

    /// Forgets these tokens: a code redeemed twice revokes what it was exchanged for.
    pub(crate) fn revoke(&self, ids: &[String]) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            tokens.remove(id);
        }
    }

    /// The live token `jti` stands for.
    pub(crate) fn get(&self, jti: &str) -> Option<Issued> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(jti)
            .filter(|t| t.until > Instant::now())
            .cloned()
    }

    /// Uses up `jti`; false when it was already gone.
    pub(crate) fn take(&self, jti: &str) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.remove(jti).is_some()
    }
}
