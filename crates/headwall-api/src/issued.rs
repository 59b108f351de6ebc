//! Access tokens issued, by `jti`: the subscriber behind each is kept server-side, never in
//! the token (its `sub` is the client's pairwise pseudonym), in the sessions backend's
//! [`Records`] like the codes, so any node of a fleet answers for a token another issued.
//!
//! A record is `T` and the token's subject, or the tombstone `X` that a revocation leaves: a
//! token is only issued when its record could be created new, so a revocation that races ahead
//! of the issue wins and the token never leaves. Single-use tokens are taken (read and
//! removed in one step), so two requests racing with one token on two nodes get one answer.

use std::net::IpAddr;
use std::time::Duration;

use headwall_identity::Msisdn;
use headwall_policy::ApiScope;
use headwall_sessions::{Records, StoreError};
use serde_json::{Value, json};

/// What one access token stands for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issued {
    pub(crate) client_id: String,
    pub(crate) msisdn: Msisdn,
    pub(crate) scopes: Vec<ApiScope>,
    /// The device's address at authentication (the audit's `client_ip`).
    pub(crate) device: IpAddr,
}

const LIVE: char = 'T';
const REVOKED: &str = "X";

impl Issued {
    fn encode(&self) -> String {
        let subject = json!({
            "client_id": self.client_id,
            "msisdn": self.msisdn.expose_digits(),
            "scopes": scope_names(&self.scopes),
            "device": self.device.to_string(),
        });
        format!("{LIVE}{subject}")
    }

    /// A live token's subject from its record; `None` for a tombstone or anything unreadable.
    fn decode(record: &str) -> Option<Issued> {
        let value: Value = serde_json::from_str(record.strip_prefix(LIVE)?).ok()?;
        Some(Issued {
            client_id: value["client_id"].as_str()?.to_owned(),
            msisdn: Msisdn::parse(value["msisdn"].as_str()?).ok()?,
            scopes: scopes_from(&value["scopes"])?,
            device: value["device"].as_str()?.parse().ok()?,
        })
    }
}

/// Scopes as a record holds them: their names, in a JSON array.
pub(crate) fn scope_names(scopes: &[ApiScope]) -> Value {
    scopes.iter().map(|s| s.as_str()).collect()
}

/// Scopes back from [`scope_names`]; `None` if any is not a scope.
pub(crate) fn scopes_from(names: &Value) -> Option<Vec<ApiScope>> {
    names
        .as_array()?
        .iter()
        .map(|s| s.as_str().and_then(ApiScope::from_scope_str))
        .collect()
}

/// The access tokens, wherever the sessions backend keeps records.
pub(crate) struct IssuedTokens {
    records: Records,
    /// How long a token (and a tombstone) lives: `access_token_lifetime`.
    lifetime: Duration,
}

impl IssuedTokens {
    pub(crate) fn new(records: Records, lifetime: Duration) -> IssuedTokens {
        IssuedTokens { records, lifetime }
    }

    /// Remembers `issued` under `jti`; `false` when `jti` was revoked first (then the token
    /// must not be handed out).
    pub(crate) async fn insert(&self, jti: &str, issued: &Issued) -> Result<bool, StoreError> {
        self.records
            .insert_new(&key(jti), &issued.encode(), self.lifetime)
            .await
    }

    /// Revokes these tokens, issued or about to be: a code redeemed twice revokes what it was
    /// exchanged for.
    pub(crate) async fn revoke(&self, ids: &[String]) -> Result<(), StoreError> {
        for id in ids {
            self.records.put(&key(id), REVOKED, self.lifetime).await?;
        }
        Ok(())
    }

    /// The live token `jti` stands for.
    pub(crate) async fn get(&self, jti: &str) -> Result<Option<Issued>, StoreError> {
        Ok(self
            .records
            .get(&key(jti))
            .await?
            .and_then(|record| Issued::decode(&record)))
    }

    /// Uses up `jti`: its subject, or `None` when another request used it first.
    pub(crate) async fn take(&self, jti: &str) -> Result<Option<Issued>, StoreError> {
        Ok(self
            .records
            .take(&key(jti))
            .await?
            .and_then(|record| Issued::decode(&record)))
    }
}

fn key(jti: &str) -> String {
    format!("headwall:api:token:{jti}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> IssuedTokens {
        let records = Records::for_sessions(&headwall_sessions::Sessions::memory(60));
        IssuedTokens::new(records, Duration::from_secs(60))
    }

    fn issued() -> Issued {
        Issued {
            client_id: "shop".into(),
            msisdn: Msisdn::parse("447700900123").unwrap(),
            scopes: vec![ApiScope::NumberShare],
            device: "2001:db8::5".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn a_token_is_read_until_taken_once() {
        let tokens = tokens();
        assert!(tokens.insert("j", &issued()).await.unwrap());
        assert_eq!(tokens.get("j").await.unwrap(), Some(issued()));
        assert_eq!(tokens.take("j").await.unwrap(), Some(issued()));
        assert_eq!(tokens.take("j").await.unwrap(), None);
        assert_eq!(tokens.get("j").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_revocation_that_comes_first_keeps_the_token_from_being_issued() {
        let tokens = tokens();
        tokens.revoke(&["j".into()]).await.unwrap();
        assert!(!tokens.insert("j", &issued()).await.unwrap());
        assert_eq!(tokens.get("j").await.unwrap(), None);
        assert!(tokens.insert("k", &issued()).await.unwrap());
        tokens.revoke(&["k".into()]).await.unwrap();
        assert_eq!(tokens.get("k").await.unwrap(), None);
    }
}
