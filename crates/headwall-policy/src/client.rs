//! `[[api.client]]`: the apps that may ask the CAMARA APIs about a subscriber (docs/design.md,
//! "HTTPS: network-based authentication and the CAMARA APIs").
//!
//! A client is part of the [`Policy`](crate::Policy) like a partner: what it may learn is
//! disclosure policy, so it is in the policy hash, in `plan` and in `audit exposure --against`.
//! Its JWKS file is where its keys live, not what it may learn, so it is not in the hash.

use std::fmt;
use std::path::PathBuf;

/// An API scope a client may be registered for (CAMARA's OpenAPI `security` sections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiScope {
    /// `number-verification:verify`: "is this device's number N?" (true or false).
    NumberVerify,
    /// `number-verification:device-phone-number:read`: the device's number itself.
    NumberShare,
    /// `kyc-age-verification:verify`: "is this subscriber at least N years old?".
    AgeVerify,
}

impl ApiScope {
    /// Every scope, in documentation order.
    pub const ALL: [ApiScope; 3] = [
        ApiScope::NumberVerify,
        ApiScope::NumberShare,
        ApiScope::AgeVerify,
    ];

    /// The scope as CAMARA spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::NumberVerify => "number-verification:verify",
            ApiScope::NumberShare => "number-verification:device-phone-number:read",
            ApiScope::AgeVerify => "kyc-age-verification:verify",
        }
    }

    /// Parses a scope as CAMARA spells it.
    pub fn from_scope_str(s: &str) -> Option<ApiScope> {
        ApiScope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// The endpoint whose answers this scope allows (its audit rows name it as their host).
    pub fn endpoint_path(self) -> &'static str {
        match self {
            ApiScope::NumberVerify => "/number-verification/v2/verify",
            ApiScope::NumberShare => "/number-verification/v2/device-phone-number",
            ApiScope::AgeVerify => "/kyc-age-verification/v0.2/verify",
        }
    }

    /// Whether registering a client for this scope needs a `justification`: the share scope
    /// hands the number itself to the client, which no purpose implies (minimum necessary).
    pub fn needs_justification(self) -> bool {
        matches!(self, ApiScope::NumberShare)
    }

    /// How identifying what this scope reveals is, for `plan`: a boolean answer about a
    /// number the client already holds, an age check, or the number itself.
    pub fn rank(self) -> u8 {
        match self {
            ApiScope::AgeVerify => 1,
            ApiScope::NumberVerify => 2,
            ApiScope::NumberShare => 3,
        }
    }
}

impl fmt::Display for ApiScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a value sits in the configuration file, for errors found after loading (a JWKS file
/// that cannot be read is reported by `check` at its `jwks_file` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPosition {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// One validated `[[api.client]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    /// `id`: the OAuth `client_id`; also its name in the audit log (the `partner` column), so it
    /// is never a partner's name.
    pub id: String,
    /// `jwks_file`: the client's public keys for `private_key_jwt`, resolved.
    pub jwks_file: PathBuf,
    /// Where `jwks_file` is written, for `check`'s errors about the file itself.
    pub jwks_file_at: TextPosition,
    /// `redirect_uris`: exact matches only, in configuration order.
    pub redirect_uris: Vec<String>,
    /// `scopes`: the API scopes, sorted, without `openid` (always implied).
    pub scopes: Vec<ApiScope>,
    /// `purpose`: exactly one W3C DPV purpose, `dpv:` and a term (`dpv:FraudPreventionAndDetection`).
    pub purpose: String,
    /// `justification`: why a scope beyond minimum necessary is given.
    pub justification: Option<String>,
}

impl ApiClient {
    /// Whether the client is registered for `scope`.
    pub fn allows(&self, scope: ApiScope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether this client may get an answer at the API endpoint `path`: its pairwise `sub` at
    /// `/token` with any scope, a scope's answers at that scope's endpoint. For
    /// `audit exposure --against`.
    pub fn may_learn_at(&self, path: &str) -> bool {
        if path == TOKEN_PATH {
            return !self.scopes.is_empty();
        }
        ApiScope::ALL
            .into_iter()
            .any(|scope| scope.endpoint_path() == path && self.allows(scope))
    }
}

/// The token endpoint's path, where a client learns its pairwise `sub`.
pub const TOKEN_PATH: &str = "/token";

/// Whether an audit record's `host` is an API endpoint path rather than a request host: the
/// API records the endpoint it answered at as the host (docs/design.md, "HTTPS: network-based
/// authentication and the CAMARA APIs"), and no host name starts with `/`.
pub fn is_api_endpoint(host: &str) -> bool {
    host.starts_with('/')
}
