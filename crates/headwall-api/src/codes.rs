//! Authorization codes: single-use, short-lived, bound to everything `/token` must check, and
//! kept server-side with the subscriber they stand for (the code itself is 256 random bits
//! and names nobody).
//!
//! Codes live in the sessions backend's [`Records`] — this node's memory beside the embedded
//! store, Redis beside Redis bindings, so a code issued by one node of a fleet is redeemed by
//! any — under the SHA-256 of the code, never the code, so the table cannot be replayed from a
//! dump. Redeeming is one atomic swap: the record becomes "redeemed, for these token ids" and
//! the caller sees what was there before, so of two redemptions racing on two nodes exactly one
//! gets the grant; the other learns the first's token ids and revokes them (RFC 6749 §4.1.2).
//! The redeemed record stays until the code's lifetime ends.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_identity::Msisdn;
use headwall_policy::ApiScope;
use headwall_sessions::{Records, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What a code was issued for: `/token` redeems it only for the same client, redirect URI and
/// PKCE verifier.
#[derive(Debug, Clone, PartialEq)]
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
    pub(crate) device: IpAddr,
}

impl Grant {
    fn encode(&self) -> String {
        json!({
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": self.code_challenge,
            "msisdn": self.msisdn.expose_digits(),
            "scopes": crate::issued::scope_names(&self.scopes),
            "nonce": self.nonce,
            "auth_time": self.auth_time,
            "device": self.device.to_string(),
        })
        .to_string()
    }

    /// A grant from its record; `None` for anything unreadable (refused, never guessed).
    fn decode(text: &str) -> Option<Grant> {
        let value: Value = serde_json::from_str(text).ok()?;
        let text = |name: &str| value[name].as_str().map(str::to_owned);
        Some(Grant {
            client_id: text("client_id")?,
            redirect_uri: text("redirect_uri")?,
            code_challenge: text("code_challenge")?,
            msisdn: Msisdn::parse(value["msisdn"].as_str()?).ok()?,
            scopes: crate::issued::scopes_from(&value["scopes"])?,
            nonce: text("nonce"),
            auth_time: value["auth_time"].as_u64()?,
            device: value["device"].as_str()?.parse().ok()?,
        })
    }
}

/// A code not yet redeemed: `F` and its grant.
const FRESH: char = 'F';
/// A redeemed code: `R` and the ids of the tokens it was (or is being) exchanged for.
const REDEEMED: char = 'R';

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

/// The codes, wherever the sessions backend keeps records.
pub(crate) struct Codes {
    lifetime: Duration,
    records: Records,
}

impl Codes {
    pub(crate) fn new(lifetime: Duration, records: Records) -> Codes {
        Codes { lifetime, records }
    }

    /// A new code for `grant`; `Ok(None)` when no random bytes could be had.
    pub(crate) async fn issue(&self, grant: &Grant) -> Result<Option<String>, StoreError> {
        let mut bytes = [0u8; 32];
        if getrandom::fill(&mut bytes).is_err() {
            return Ok(None);
        }
        let code = URL_SAFE_NO_PAD.encode(bytes);
        let record = format!("{FRESH}{}", grant.encode());
        // 256 random bits never collide; a false here would mean a broken generator.
        let created = self
            .records
            .insert_new(&key(&code), &record, self.lifetime)
            .await?;
        Ok(created.then_some(code))
    }

    /// Redeems `code` once, for the token with id `token_id` the caller is about to issue: a
    /// later redemption is told that id, to revoke it.
    pub(crate) async fn redeem(&self, code: &str, token_id: &str) -> Result<Redeemed, StoreError> {
        let record = format!("{REDEEMED}{token_id}");
        let before = self.records.swap(&key(code), &record).await?;
        Ok(match before {
            None => Redeemed::Unknown,
            Some(text) => match text.strip_prefix(FRESH) {
                Some(grant) => Grant::decode(grant).map_or(Redeemed::Unknown, Redeemed::Grant),
                None => Redeemed::Again(
                    text.strip_prefix(REDEEMED)
                        .unwrap_or_default()
                        .split(',')
                        .filter(|id| !id.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
            },
        })
    }
}

/// The record key of `code`: its SHA-256, hex.
fn key(code: &str) -> String {
    format!(
        "headwall:api:code:{}",
        crate::hex(&Sha256::digest(code.as_bytes()))
    )
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
            scopes: vec![ApiScope::NumberVerify, ApiScope::AgeVerify],
            nonce: Some("n".into()),
            auth_time: 7,
            device: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    fn memory() -> Records {
        Records::for_sessions(&headwall_sessions::Sessions::memory(60))
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_and_a_second_try_names_the_first_token() {
        let codes = Codes::new(Duration::from_secs(60), memory());
        let code = codes.issue(&grant()).await.unwrap().unwrap();
        assert_eq!(code.len(), 43);
        assert!(
            matches!(codes.redeem(&code, "t1").await.unwrap(), Redeemed::Grant(g) if g == grant())
        );
        assert!(
            matches!(codes.redeem(&code, "t2").await.unwrap(), Redeemed::Again(ids) if ids == ["t1"])
        );
        assert!(matches!(
            codes.redeem("nonsense", "t3").await.unwrap(),
            Redeemed::Unknown
        ));
    }

    #[tokio::test]
    async fn an_expired_code_is_unknown() {
        let codes = Codes::new(Duration::ZERO, memory());
        let code = codes.issue(&grant()).await.unwrap().unwrap();
        assert!(matches!(
            codes.redeem(&code, "t").await.unwrap(),
            Redeemed::Unknown
        ));
    }
}
