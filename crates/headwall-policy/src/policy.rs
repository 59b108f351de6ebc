//! The compiled policy: partners, their index, the strip set, and decisions.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::client::ApiClient;
use crate::fasthash::FxBuild;
use crate::header::{StripSet, normalize_header_name};
use crate::host::{HostPattern, parent_suffixes};

/// Why a partner receives identity: `purpose = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// `age_verification`
    AgeVerification,
    /// `billing`
    Billing,
    /// `identification`
    Identification,
}

impl Purpose {
    /// Every purpose, in documentation order.
    pub const ALL: [Purpose; 3] = [
        Purpose::AgeVerification,
        Purpose::Billing,
        Purpose::Identification,
    ];

    /// The configuration string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::AgeVerification => "age_verification",
            Purpose::Billing => "billing",
            Purpose::Identification => "identification",
        }
    }

    /// Parses the configuration string.
    pub fn from_config_str(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a partner header carries: `headers = { "X-Name" = "kind" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueKind {
    /// `msisdn`: international digits.
    Msisdn,
    /// `pseudonym`: a per-partner HMAC of the MSISDN.
    Pseudonym,
    /// `age_verified`: `true` or `false`.
    AgeVerified,
    /// `token`: a short-lived signed JWS.
    Token,
}

impl ValueKind {
    /// Every kind, in documentation order.
    pub const ALL: [ValueKind; 4] = [
        ValueKind::Msisdn,
        ValueKind::Pseudonym,
        ValueKind::AgeVerified,
        ValueKind::Token,
    ];

    /// The configuration string.
    pub fn as_str(&self) -> &'static str {
        match self {
            ValueKind::Msisdn => "msisdn",
            ValueKind::Pseudonym => "pseudonym",
            ValueKind::AgeVerified => "age_verified",
            ValueKind::Token => "token",
        }
    }

    /// Parses the configuration string.
    pub fn from_config_str(s: &str) -> Option<ValueKind> {
        ValueKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this kind may be given for `purpose` without a `justification` (docs/design.md,
    /// "Value kinds"): msisdn for billing and identification; pseudonym and token for all;
    /// age_verified for age verification and identification.
    pub fn allowed_for(self, purpose: Purpose) -> bool {
        match self {
            ValueKind::Msisdn => matches!(purpose, Purpose::Billing | Purpose::Identification),
            ValueKind::Pseudonym | ValueKind::Token => true,
            ValueKind::AgeVerified => {
                matches!(purpose, Purpose::AgeVerification | Purpose::Identification)
            }
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header a partner receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerHeader {
    /// The name as written in configuration, used for display and insertion.
    pub name: String,
    /// What value it carries.
    pub kind: ValueKind,
}

/// One `[[partner]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// `name`: unique, `[a-z0-9_-]`.
    pub name: String,
    /// `purpose`.
    pub purpose: Purpose,
    /// `hosts`: exact names or `*.parent`, normalized, non-empty.
    pub hosts: Vec<HostPattern>,
    /// `ports`: default `[80]`; sorted, deduplicated.
    pub ports: Vec<u16>,
    /// `destinations`: the only addresses this partner may be reached at; non-empty.
    pub destinations: Vec<IpNet>,
    /// `headers`: in the order written; non-empty.
    pub headers: Vec<PartnerHeader>,
    /// `justification`: why a kind outside the purpose's column is given.
    pub justification: Option<String>,
}

impl Partner {
    /// Whether `ip` is inside one of `destinations` (IPv4-mapped IPv6 counts as IPv4).
    pub fn allows_destination(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.destinations.iter().any(|net| net.contains(&ip))
    }

    /// The distinct kinds this partner receives, in header order.
    pub fn kinds(&self) -> Vec<ValueKind> {
        let mut kinds: Vec<ValueKind> = Vec::new();
        for header in &self.headers {
            if !kinds.contains(&header.kind) {
                kinds.push(header.kind);
            }
        }
        kinds
    }
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Insert this partner's headers.
    Disclose(&'a Partner),
    /// Forward without identity, for this reason.
    Withhold(WithholdReason),
}

/// Why a request leaves without identity. `as_str` is the metric label, log field and
/// security-event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WithholdReason {
    /// No partner matches the host and port.
    NoPartner,
    /// A partner matches host and port, but the connected address is outside its
    /// `destinations`.
    PinningMismatch,
    /// The client address has no subscriber binding.
    NoBinding,
    /// The binding has seen no accounting for longer than `stale_after`.
    StaleBinding,
    /// Enrichment is switched off (kill switch or operator).
    EnrichmentDisabled,
    /// The operator suspended this partner (`POST /v1/partners/{name}/enrichment`).
    PartnerSuspended,
    /// The audit log cannot take the disclosure record.
    AuditUnavailable,
    /// The shared session store did not answer in time.
    SessionStoreUnavailable,
    /// No valid policy is loaded.
    PolicyUnavailable,
    /// A value could not be made: no random bytes for a token's nonce, or a value that is not
    /// a valid header value. Not the policy's fault, so not `PolicyUnavailable`.
    ValueUnavailable,
}

impl WithholdReason {
    /// Every reason.
    pub const ALL: [WithholdReason; 10] = [
        WithholdReason::NoPartner,
        WithholdReason::PinningMismatch,
        WithholdReason::NoBinding,
        WithholdReason::StaleBinding,
        WithholdReason::EnrichmentDisabled,
        WithholdReason::PartnerSuspended,
        WithholdReason::AuditUnavailable,
        WithholdReason::SessionStoreUnavailable,
        WithholdReason::PolicyUnavailable,
        WithholdReason::ValueUnavailable,
    ];

    /// snake_case label.
    pub fn as_str(&self) -> &'static str {
        match self {
            WithholdReason::NoPartner => "no_partner",
            WithholdReason::PinningMismatch => "pinning_mismatch",
            WithholdReason::NoBinding => "no_binding",
            WithholdReason::StaleBinding => "stale_binding",
            WithholdReason::EnrichmentDisabled => "enrichment_disabled",
            WithholdReason::PartnerSuspended => "partner_suspended",
            WithholdReason::AuditUnavailable => "audit_unavailable",
            WithholdReason::SessionStoreUnavailable => "session_store_unavailable",
            WithholdReason::PolicyUnavailable => "policy_unavailable",
            WithholdReason::ValueUnavailable => "value_unavailable",
        }
    }
}

impl fmt::Display for WithholdReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated, indexed policy: partners, the strip set and a hash identifying them.
///
/// Built only by [`crate::load`], [`crate::load_policy`] or [`Policy::empty`], so every value of
/// this type has passed validation (no two partners match the same host and port).
#[derive(Debug, Clone)]
pub struct Policy {
    partners: Vec<Partner>,
    /// Exact host → partner indices (several partners may share a host on different ports).
    exact: HashMap<String, Vec<usize>, FxBuild>,
    /// Wildcard parent (`example.com` for `*.example.com`) → partner indices.
    wildcard: HashMap<String, Vec<usize>, FxBuild>,
    strip: StripSet,
    /// `[[api.client]]`, in configuration order.
    clients: Vec<ApiClient>,
    hash: String,
}

impl Policy {
    /// Indexes already-validated partners. `strip_extra` are the `[strip].headers` names.
    pub(crate) fn build(partners: Vec<Partner>, strip_extra: &[String]) -> Policy {
        let mut exact: HashMap<String, Vec<usize>, FxBuild> = HashMap::default();
        let mut wildcard: HashMap<String, Vec<usize>, FxBuild> = HashMap::default();
        for (index, partner) in partners.iter().enumerate() {
            for host in &partner.hosts {
                let (map, key) = match host {
                    HostPattern::Exact(name) => (&mut exact, name),
                    HostPattern::Subdomains(parent) => (&mut wildcard, parent),
                };
                let entry = map.entry(key.clone()).or_default();
                if !entry.contains(&index) {
                    entry.push(index);
                }
            }
        }
        let received = partners
            .iter()
            .flat_map(|p| p.headers.iter().map(|h| h.name.as_str()));
        let strip = StripSet::with_builtin(received.chain(strip_extra.iter().map(String::as_str)));
        let hash = canonical_hash(&partners, &strip, &[]);
        Policy {
            partners,
            exact,
            wildcard,
            strip,
            clients: Vec::new(),
            hash,
        }
    }

    /// The same policy with these already-validated API clients (and its hash over them).
    pub(crate) fn with_clients(mut self, clients: Vec<ApiClient>) -> Policy {
        self.hash = canonical_hash(&self.partners, &self.strip, &clients);
        self.clients = clients;
        self
    }

    /// No partners; the built-in strip list only. Nothing is ever enriched.
    pub fn empty() -> Policy {
        Policy::build(Vec::new(), &[])
    }

    /// The partners, in configuration order.
    pub fn partners(&self) -> &[Partner] {
        &self.partners
    }

    /// The partner with this name.
    pub fn partner(&self, name: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.name == name)
    }

    /// The names removed from every request.
    pub fn strip(&self) -> &StripSet {
        &self.strip
    }

    /// The API clients (`[[api.client]]`), in configuration order.
    pub fn api_clients(&self) -> &[ApiClient] {
        &self.clients
    }

    /// The API client with this `client_id`.
    pub fn api_client(&self, id: &str) -> Option<&ApiClient> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Lowercase hex SHA-256 over a canonical rendering of partners, API clients and strip set:
    /// independent of partner, host, port, destination, header, client, scope and redirect URI
    /// order, comments and whitespace. A policy without API clients hashes as it did before
    /// clients existed, so the hashes in existing audit rows keep naming their policy.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The one partner whose host pattern and port match (before connecting). `host` must be
    /// normalized with [`crate::normalize_host`]. Hash lookups only: exact name, then each
    /// label suffix of the host against wildcard parents.
    pub fn route(&self, host: &str, port: u16) -> Option<&Partner> {
        let with_port = |indices: &Vec<usize>| {
            indices
                .iter()
                .filter_map(|&i| self.partners.get(i))
                .find(|p| p.ports.contains(&port))
        };
        if let Some(partner) = self.exact.get(host).and_then(with_port) {
            return Some(partner);
        }
        parent_suffixes(host).find_map(|parent| self.wildcard.get(parent).and_then(with_port))
    }

    /// The partner reached at `addr` — an address in its `destinations`, on one of its `ports` —
    /// whatever name a client gives it. No tunnel the gateway cannot read may open to one (a
    /// CONNECT, or an upgrade to anything but WebSocket): the client would write its own
    /// requests, identity headers included, straight to the partner, from the gateway's address
    /// that the partner trusts.
    pub fn partner_at(&self, addr: SocketAddr) -> Option<&Partner> {
        self.partners
            .iter()
            .find(|p| p.ports.contains(&addr.port()) && p.allows_destination(addr.ip()))
    }

    /// Disclose only when host, port and the address actually connected to all match one
    /// partner. Host and port match but the address is outside `destinations`:
    /// `Withhold(PinningMismatch)`; no host and port match: `Withhold(NoPartner)`.
    pub fn decide(&self, host: &str, port: u16, upstream_ip: IpAddr) -> Decision<'_> {
        match self.route(host, port) {
            None => Decision::Withhold(WithholdReason::NoPartner),
            Some(partner) if partner.allows_destination(upstream_ip) => Decision::Disclose(partner),
            Some(_) => Decision::Withhold(WithholdReason::PinningMismatch),
        }
    }
}

/// One line per fact, each sorted, values escaped with `{:?}`; a version line first so the
/// format can change visibly.
fn canonical_hash(partners: &[Partner], strip: &StripSet, clients: &[ApiClient]) -> String {
    let mut text = String::from("headwall-policy/1\n");
    let mut sorted: Vec<&Partner> = partners.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for partner in sorted {
        let _ = writeln!(
            text,
            "partner {:?} purpose {}",
            partner.name, partner.purpose
        );
        let mut hosts: Vec<String> = partner
            .hosts
            .iter()
            .map(HostPattern::as_config_str)
            .collect();
        hosts.sort();
        hosts.dedup();
        for host in hosts {
            let _ = writeln!(text, " host {host:?}");
        }
        let mut ports = partner.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            let _ = writeln!(text, " port {port}");
        }
        let mut nets: Vec<String> = partner
            .destinations
            .iter()
            .map(ToString::to_string)
            .collect();
        nets.sort();
        nets.dedup();
        for net in nets {
            let _ = writeln!(text, " destination {net}");
        }
        let mut headers: Vec<(String, &str, &str)> = partner
            .headers
            .iter()
            .map(|h| {
                (
                    normalize_header_name(&h.name),
                    h.name.as_str(),
                    h.kind.as_str(),
                )
            })
            .collect();
        headers.sort();
        for (_, name, kind) in headers {
            let _ = writeln!(text, " header {name:?} {kind}");
        }
        if let Some(justification) = &partner.justification {
            let _ = writeln!(text, " justification {justification:?}");
        }
    }
    let mut sorted: Vec<&ApiClient> = clients.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for client in sorted {
        let _ = writeln!(
            text,
            "api-client {:?} purpose {:?}",
            client.id, client.purpose
        );
        let mut scopes = client.scopes.clone();
        scopes.sort();
        for scope in scopes {
            let _ = writeln!(text, " scope {scope}");
        }
        let mut uris: Vec<&String> = client.redirect_uris.iter().collect();
        uris.sort();
        for uri in uris {
            let _ = writeln!(text, " redirect-uri {uri:?}");
        }
        if let Some(justification) = &client.justification {
            let _ = writeln!(text, " justification {justification:?}");
        }
    }
    for name in strip.names() {
        let _ = writeln!(text, "strip {name:?}");
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_table() {
        use Purpose::*;
        use ValueKind::*;
        let table = [
            (Msisdn, [false, true, true]),
            (Pseudonym, [true, true, true]),
            (AgeVerified, [true, false, true]),
            (Token, [true, true, true]),
        ];
        for (kind, allowed) in table {
            for (purpose, want) in [AgeVerification, Billing, Identification]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(kind.allowed_for(purpose), want, "{kind} for {purpose}");
            }
        }
    }

    #[test]
    fn strings_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::from_config_str(p.as_str()), Some(p));
        }
        for k in ValueKind::ALL {
            assert_eq!(ValueKind::from_config_str(k.as_str()), Some(k));
        }
        let labels: Vec<&str> = WithholdReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            [
                "no_partner",
                "pinning_mismatch",
                "no_binding",
                "stale_binding",
                "enrichment_disabled",
                "partner_suspended",
                "audit_unavailable",
                "session_store_unavailable",
                "policy_unavailable",
                "value_unavailable"
            ]
        );
    }

    #[test]
    fn empty_policy() {
        let policy = Policy::empty();
        assert!(policy.partners().is_empty());
        assert!(policy.strip().contains("X-MSISDN"));
        assert_eq!(
            policy.strip().len(),
            crate::builtin_identity_headers().count()
        );
        assert_eq!(policy.hash().len(), 64);
        assert_eq!(policy.hash(), Policy::empty().hash());
        assert_eq!(
            policy.decide("example.com", 80, "127.0.0.1".parse().unwrap()),
            Decision::Withhold(WithholdReason::NoPartner)
        );
    }
}
