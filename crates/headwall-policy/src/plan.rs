//! The exposure difference between two policies (`headwall plan`) and whether it widens.
//!
//! A policy's exposure is the set of grants it allows: (partner, host pattern, port, destination
//! address, header, kind, purpose). Within one partner these are a product — every host pattern
//! gets every header on every port at every destination — so [`plan`] lists the difference as
//! (host pattern, header, kind) pairs per partner, each with its ports, destinations and purpose,
//! and marks a pair as *widening* when the new policy allows a grant through it that the old
//! policy did not. Every way that can happen is a [`Widening`]; kinds compare by [`KIND_ORDER`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

mod api;
pub use api::{ClientChange, ClientPlan};

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::header::normalize_header_name;
use crate::host::{HostPattern, is_strict_subdomain};
use crate::policy::{Partner, PartnerHeader, Policy, Purpose, ValueKind};

/// Compares the exposure of `old` with that of `new`.
///
/// Partners are matched by name; a partner whose name alone changed (everything else identical)
/// is a rename, not a removal and an addition. Within a partner, host patterns are matched when
/// equal, or paired when one covers the other (`*.example.com` replacing `login.example.com`);
/// headers are matched by normalized name, or paired as a rename when one name was removed and
/// one added with the same kind. Pairing is symmetric: `plan(b, a)` pairs what `plan(a, b)` does.
///
/// A pair *widens* exposure when some grant it carries in `new` is not allowed by the same
/// partner in `old` (see [`Widening`]): comparison is against the whole old partner, so adding
/// `a.example.com` where `*.example.com` already was is listed but does not widen. Output is
/// ordered by partner name, host pattern and normalized header name.
pub fn plan(old: &Policy, new: &Policy) -> Plan {
    let old_by_name: BTreeMap<&str, &Partner> = old
        .partners()
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let new_by_name: BTreeMap<&str, &Partner> = new
        .partners()
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();

    let mut partners = Vec::new();
    for (name, old_partner) in &old_by_name {
        if let Some(new_partner) = new_by_name.get(name) {
            partners.push(diff_partner(old_partner, new_partner));
        }
    }

    let old_only: Vec<&Partner> = old_by_name
        .iter()
        .filter(|(name, _)| !new_by_name.contains_key(*name))
        .map(|(_, p)| *p)
        .collect();
    let new_only: Vec<&Partner> = new_by_name
        .iter()
        .filter(|(name, _)| !old_by_name.contains_key(*name))
        .map(|(_, p)| *p)
        .collect();
    let old_terms: Vec<Terms<'_>> = old_only.iter().map(|p| Terms::of(p)).collect();
    let new_terms: Vec<Terms<'_>> = new_only.iter().map(|p| Terms::of(p)).collect();
    let renames = pair_up(
        &old_only.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        &new_only.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        |i, j| old_terms[i] == new_terms[j],
    );
    let mut old_renamed = vec![false; old_only.len()];
    let mut new_renamed = vec![false; new_only.len()];
    for &(i, j) in &renames {
        old_renamed[i] = true;
        new_renamed[j] = true;
        let mut renamed = diff_partner(old_only[i], new_only[j]);
        renamed.renamed_from = Some(old_only[i].name.clone());
        partners.push(renamed);
    }
    for (partner, _) in old_only.iter().zip(&old_renamed).filter(|(_, r)| !**r) {
        partners.push(whole_partner(partner, Change::Removed));
    }
    for (partner, _) in new_only.iter().zip(&new_renamed).filter(|(_, r)| !**r) {
        partners.push(whole_partner(partner, Change::Added));
    }
    partners.retain(|p| p.change_count() > 0);
    partners.sort_by(|a, b| a.partner.cmp(&b.partner));

    let strip = strip_plan(old, new);
    let api_clients = api::client_plans(old, new);
    let changes = partners
        .iter()
        .map(PartnerPlan::change_count)
        .sum::<usize>()
        + api_clients
            .iter()
            .map(ClientPlan::change_count)
            .sum::<usize>()
        + strip.added.len()
        + strip.removed.len();
    let widening_changes = partners
        .iter()
        .flat_map(|p| &p.hosts)
        .flat_map(|h| &h.pairs)
        .filter(|pair| pair.widens)
        .count()
        + api_clients
            .iter()
            .map(ClientPlan::widening_count)
            .sum::<usize>();
    Plan {
        from_hash: old.hash().to_owned(),
        to_hash: new.hash().to_owned(),
        widens: widening_changes > 0,
        changes,
        widening_changes,
        partners,
        api_clients,
        strip,
    }
}

/// The exposure difference between two policies, as [`plan`] computes it.
///
/// Serializes (for `--json`) as `{"from_hash", "to_hash", "widens", "changes",
/// "widening_changes", "partners": [PartnerPlan], "api_clients": [ClientPlan], "strip":
/// StripPlan}`; `api_clients` only when a client changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    from_hash: String,
    to_hash: String,
    widens: bool,
    changes: usize,
    widening_changes: usize,
    partners: Vec<PartnerPlan>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    api_clients: Vec<ClientPlan>,
    strip: StripPlan,
}

// === impl Plan ===

impl Plan {
    /// Whether the new policy allows any grant the old one did not: `--fail-on-widen` exits 3.
    pub fn widens(&self) -> bool {
        self.widens
    }

    /// Whether nothing changed (the text form says `No change in exposure.`).
    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    /// Number of changes: each added, removed or changed pair, each partner rename and
    /// justification change, each API client scope, redirect URI, purpose and justification
    /// change, and each name added to or removed from the strip set.
    pub fn changes(&self) -> usize {
        self.changes
    }

    /// Number of changed pairs that widen exposure.
    pub fn widening_changes(&self) -> usize {
        self.widening_changes
    }

    /// [`Policy::hash`] of the old policy.
    pub fn from_hash(&self) -> &str {
        &self.from_hash
    }

    /// [`Policy::hash`] of the new policy.
    pub fn to_hash(&self) -> &str {
        &self.to_hash
    }

    /// The partners with at least one change, by name.
    pub fn partners(&self) -> &[PartnerPlan] {
        &self.partners
    }

    /// The API clients with at least one change, by id.
    pub fn api_clients(&self) -> &[ClientPlan] {
        &self.api_clients
    }

    /// Changes to the strip set beyond partner header names.
    pub fn strip(&self) -> &StripPlan {
        &self.strip
    }

    /// The last line of the text form: `No change in exposure.`, `2 changes, none widen
    /// exposure.` or `3 changes, 2 widen exposure.`
    pub fn summary(&self) -> String {
        let noun = if self.changes == 1 {
            "change"
        } else {
            "changes"
        };
        match (self.changes, self.widening_changes) {
            (0, _) => "No change in exposure.".to_owned(),
            (changes, 0) => format!("{changes} {noun}, none widen exposure."),
            (changes, 1) => format!("{changes} {noun}, 1 widens exposure."),
            (changes, widening) => format!("{changes} {noun}, {widening} widen exposure."),
        }
    }

    /// The human-readable form: both hashes, then per partner and host pattern one line per
    /// change, prefixed `+` added, `-` removed, `~` changed, with `WIDENS: reason` at the end of
    /// each widening line, then [`Plan::summary`].
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "from policy {}", self.from_hash);
        let _ = writeln!(out, "to   policy {}", self.to_hash);
        for partner in &self.partners {
            out.push('\n');
            partner.write_text(&mut out);
        }
        for client in &self.api_clients {
            out.push('\n');
            client.write_text(&mut out);
        }
        if !self.strip.added.is_empty() || !self.strip.removed.is_empty() {
            out.push_str("\nstrip (names removed from every client request)\n");
            for name in &self.strip.added {
                let _ = writeln!(out, "  + {name}");
            }
            for name in &self.strip.removed {
                let _ = writeln!(out, "  - {name}");
            }
        }
        out.push('\n');
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The JSON form: one pretty-printed document (see [`Plan`] for its shape).
    pub fn to_json(&self) -> String {
        // Every field is a string, number, bool, sequence or struct: serializing cannot fail.
        serde_json::to_string_pretty(self).expect("a plan always serializes")
    }
}

/// What changed for one partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerPlan {
    /// The partner's name in the new policy (in the old one when removed).
    pub partner: String,
    /// `added` (a new partner), `removed`, or `changed` (in both, or renamed).
    pub change: Change,
    /// The old name, when the partner was renamed and nothing else about it changed. Pseudonyms
    /// and token audiences derive from the name, so its values change; what it gets does not.
    pub renamed_from: Option<String>,
    /// Its purpose in the old policy (`None` when added).
    #[serde(serialize_with = "display_option")]
    pub from_purpose: Option<Purpose>,
    /// Its purpose in the new policy (`None` when removed).
    #[serde(serialize_with = "display_option")]
    pub to_purpose: Option<Purpose>,
    /// The `justification`, when it changed.
    pub justification: Option<JustificationChange>,
    /// The host patterns with changed pairs, ordered by pattern.
    pub hosts: Vec<HostPlan>,
}

// === impl PartnerPlan ===

impl PartnerPlan {
    fn change_count(&self) -> usize {
        self.hosts.iter().map(|h| h.pairs.len()).sum::<usize>()
            + usize::from(self.renamed_from.is_some())
            + usize::from(self.justification.is_some())
    }

    fn write_text(&self, out: &mut String) {
        let purpose = match (self.from_purpose, self.to_purpose) {
            (Some(from), Some(to)) if from != to => format!("{from} -> {to}"),
            (_, Some(purpose)) | (Some(purpose), None) => purpose.to_string(),
            (None, None) => String::new(),
        };
        let status = match self.change {
            Change::Added => ", new partner",
            Change::Removed => ", removed",
            Change::Changed => "",
        };
        let _ = writeln!(out, "partner {} ({purpose}{status})", self.partner);
        if let Some(old) = &self.renamed_from {
            let _ = writeln!(
                out,
                "  ~ renamed from {old} (its pseudonym and token values change)"
            );
        }
        if let Some(change) = &self.justification {
            let show =
                |j: &Option<String>| j.as_ref().map_or("none".to_owned(), |j| format!("{j:?}"));
            let _ = writeln!(
                out,
                "  ~ justification {} -> {}",
                show(&change.from),
                show(&change.to)
            );
        }
        for host in &self.hosts {
            let status = match (&host.was, host.change, self.change) {
                (Some(was), _, _) => format!(" (was {was})"),
                (None, _, Change::Added | Change::Removed) => String::new(),
                (None, Change::Added, Change::Changed) => " (new)".to_owned(),
                (None, Change::Removed, Change::Changed) => " (removed)".to_owned(),
                (None, Change::Changed, Change::Changed) => String::new(),
            };
            let _ = writeln!(out, "  host {}{status}", host.host);
            for pair in &host.pairs {
                let _ = writeln!(out, "    {pair}");
            }
        }
    }
}

/// A changed `justification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JustificationChange {
    /// The old text, if any.
    pub from: Option<String>,
    /// The new text, if any.
    pub to: Option<String>,
}

/// What changed for one host pattern of one partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// The pattern in the new policy (in the old one when removed).
    #[serde(serialize_with = "display")]
    pub host: HostPattern,
    /// The old pattern it replaced, when one covers the other (`*.example.com` for
    /// `login.example.com`, or the reverse).
    #[serde(serialize_with = "display_option")]
    pub was: Option<HostPattern>,
    /// `added`, `removed`, or `changed` (in both, or replacing `was`).
    pub change: Change,
    /// The changed (header, kind) pairs, ordered by normalized header name.
    pub pairs: Vec<PairChange>,
}

/// One (host pattern, header, kind) pair that was added, removed or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairChange {
    /// `added` (`from` is `None`), `removed` (`to` is `None`) or `changed` (both present).
    pub change: Change,
    /// The pair in the old policy.
    pub from: Option<Grant>,
    /// The pair in the new policy.
    pub to: Option<Grant>,
    /// Whether it widens exposure: `widening` is not empty.
    pub widens: bool,
    /// Why it widens exposure, in the order purpose, host, header and kind, ports,
    /// destinations; empty for removals, narrowing and neutral changes.
    pub widening: Vec<Widening>,
}

// === impl PairChange ===

impl PairChange {
    fn new(from: Option<Grant>, to: Option<Grant>, widening: Vec<Widening>) -> PairChange {
        let change = match (&from, &to) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            (Some(_), Some(_)) => Change::Changed,
        };
        PairChange {
            change,
            from,
            to,
            widens: !widening.is_empty(),
            widening,
        }
    }
}

/// One line of the text form: `+ X-Name = kind  ports …  destinations …`, old values of a
/// changed pair in `(was …)`, and `  WIDENS: reason; reason` when it widens.
impl fmt::Display for PairChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.from, &self.to) {
            (Some(from), Some(to)) => {
                write!(f, "~ {}", to.header)?;
                if from.header != to.header {
                    write!(f, " (was {})", from.header)?;
                }
                write!(f, " = {}", to.kind)?;
                if from.kind != to.kind {
                    write!(f, " (was {})", from.kind)?;
                }
                write!(f, "  ports {}", list(&to.ports))?;
                if from.ports != to.ports {
                    write!(f, " (was {})", list(&from.ports))?;
                }
                write!(f, "  destinations {}", list(&to.destinations))?;
                if from.destinations != to.destinations {
                    write!(f, " (was {})", list(&from.destinations))?;
                }
                if from.purpose != to.purpose {
                    write!(f, "  purpose {} (was {})", to.purpose, from.purpose)?;
                }
            }
            (None, Some(grant)) => write!(f, "+ {grant}")?,
            (Some(grant), None) => write!(f, "- {grant}")?,
            (None, None) => {}
        }
        if !self.widening.is_empty() {
            let reasons: Vec<String> = self.widening.iter().map(ToString::to_string).collect();
            write!(f, "  WIDENS: {}", reasons.join("; "))?;
        }
        Ok(())
    }
}

/// Added, removed or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in the new policy (`+`).
    Added,
    /// Only in the old policy (`-`).
    Removed,
    /// In both, different (`~`).
    Changed,
}

/// What one header of one partner carries to one host pattern: the grants
/// (host, port, destination, header, kind, purpose) for every listed port and destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Grant {
    /// The partner's name.
    pub partner: String,
    /// The host pattern.
    #[serde(serialize_with = "display")]
    pub host: HostPattern,
    /// The header name as written in configuration.
    pub header: String,
    /// What value it carries.
    #[serde(serialize_with = "display")]
    pub kind: ValueKind,
    /// The ports, sorted.
    pub ports: Vec<u16>,
    /// The destination networks, sorted.
    pub destinations: Vec<IpNet>,
    /// The partner's purpose.
    #[serde(serialize_with = "display")]
    pub purpose: Purpose,
}

// === impl Grant ===

impl Grant {
    /// Same terms, whichever partner name: what a rename leaves alone.
    fn same_terms(&self, other: &Grant) -> bool {
        self.host == other.host
            && self.header == other.header
            && self.kind == other.kind
            && self.ports == other.ports
            && self.destinations == other.destinations
            && self.purpose == other.purpose
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}  ports {}  destinations {}",
            self.header,
            self.kind,
            list(&self.ports),
            list(&self.destinations)
        )
    }
}

/// Why a pair widens exposure: the new policy allows, through it, a grant the old policy's
/// partner of the same name did not. Serialized as `{"reason": "new_port", "port": 8080}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Widening {
    /// The partner is new (and not a rename of a removed partner with identical terms).
    NewPartner,
    /// The host pattern is new and no old pattern of the partner covers it.
    NewHost,
    /// The host pattern replaces `was` and matches names no old pattern of the partner did.
    WiderHost {
        /// The pattern it replaced.
        #[serde(serialize_with = "display")]
        was: HostPattern,
    },
    /// The header is new for the partner (no old header of that name, nor a rename of one).
    NewHeader,
    /// The header now carries a kind higher in [`KIND_ORDER`].
    KindIdentifiesMore {
        /// The old kind.
        #[serde(serialize_with = "display")]
        from: ValueKind,
        /// The new kind.
        #[serde(serialize_with = "display")]
        to: ValueKind,
    },
    /// A port the partner did not have.
    NewPort {
        /// The port.
        port: u16,
    },
    /// A destination network sharing no address with the old ones.
    NewDestination {
        /// The network.
        destination: IpNet,
    },
    /// A destination network containing old ones and more addresses besides.
    WiderDestination {
        /// The network.
        destination: IpNet,
    },
    /// The purpose the partner receives identity for changed: a new use of the same data.
    PurposeChanged {
        /// The old purpose.
        #[serde(serialize_with = "display")]
        from: Purpose,
        /// The new purpose.
        #[serde(serialize_with = "display")]
        to: Purpose,
    },
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Widening::NewPartner => f.write_str("new partner"),
            Widening::NewHost => f.write_str("new host"),
            Widening::WiderHost { was } => write!(f, "host matches more names than {was}"),
            Widening::NewHeader => f.write_str("new header"),
            Widening::KindIdentifiesMore { from, to } => {
                write!(f, "{to} identifies more than {from}")
            }
            Widening::NewPort { port } => write!(f, "new port {port}"),
            Widening::NewDestination { destination } => {
                write!(f, "new destination {destination}")
            }
            Widening::WiderDestination { destination } => {
                write!(f, "wider destination {destination}")
            }
            Widening::PurposeChanged { from, to } => {
                write!(f, "purpose changed from {from} to {to}")
            }
        }
    }
}

/// Names added to or removed from the strip set, other than partner header names (those follow
/// their partner and show as its pairs): in practice `[strip].headers`. Listed, never widening:
/// stripping decides what clients may send, not what the gateway discloses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StripPlan {
    /// Normalized names now removed from every request.
    pub added: Vec<String>,
    /// Normalized names no longer removed.
    pub removed: Vec<String>,
}

/// Position in [`KIND_ORDER`]. A `match`, so a new kind cannot compile without a place.
fn rank(kind: ValueKind) -> u8 {
    match kind {
        ValueKind::AgeVerified => 0,
        ValueKind::Pseudonym => 1,
        ValueKind::Token => 2,
        ValueKind::Msisdn => 3,
    }
}

/// A partner's terms without its name: two partners with equal terms are a rename.
#[derive(PartialEq, Eq)]
struct Terms<'a> {
    purpose: Purpose,
    hosts: BTreeSet<&'a HostPattern>,
    ports: &'a [u16],
    destinations: Vec<IpNet>,
    headers: BTreeSet<(&'a str, ValueKind)>,
    justification: Option<&'a str>,
}

impl<'a> Terms<'a> {
    fn of(partner: &'a Partner) -> Terms<'a> {
        Terms {
            purpose: partner.purpose,
            hosts: partner.hosts.iter().collect(),
            ports: &partner.ports,
            destinations: sorted_nets(&partner.destinations),
            headers: partner
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.kind))
                .collect(),
            justification: partner.justification.as_deref(),
        }
    }
}

/// Every pair of a partner that exists in only one policy: all added, or all removed.
fn whole_partner(partner: &Partner, change: Change) -> PartnerPlan {
    let destinations = sorted_nets(&partner.destinations);
    let mut hosts: Vec<&HostPattern> = partner.hosts.iter().collect();
    hosts.sort_by_key(|h| h.to_string());
    let mut headers: Vec<&PartnerHeader> = partner.headers.iter().collect();
    headers.sort_by_key(|h| normalize_header_name(&h.name));
    let hosts = hosts
        .into_iter()
        .map(|host| {
            let pairs = headers
                .iter()
                .map(|header| {
                    let grant = grant(partner, host, header, &destinations);
                    match change {
                        Change::Added => {
                            PairChange::new(None, Some(grant), vec![Widening::NewPartner])
                        }
                        Change::Removed | Change::Changed => {
                            PairChange::new(Some(grant), None, Vec::new())
                        }
                    }
                })
                .collect();
            HostPlan {
                host: host.clone(),
                was: None,
                change,
                pairs,
            }
        })
        .collect();
    let (from_purpose, to_purpose) = match change {
        Change::Added => (None, Some(partner.purpose)),
        Change::Removed | Change::Changed => (Some(partner.purpose), None),
    };
    PartnerPlan {
        partner: partner.name.clone(),
        change,
        renamed_from: None,
        from_purpose,
        to_purpose,
        justification: None,
        hosts,
    }
}

/// The pairs of a partner present in both policies (by name, or as a rename).
fn diff_partner(old: &Partner, new: &Partner) -> PartnerPlan {
    let old_destinations = sorted_nets(&old.destinations);
    let new_destinations = sorted_nets(&new.destinations);
    let headers = match_headers(old, new);
    let mut hosts = Vec::new();
    for (old_host, new_host) in match_hosts(old, new) {
        let mut pairs = Vec::new();
        for &(old_header, new_header) in &headers {
            let from = old_host
                .zip(old_header)
                .map(|(host, header)| grant(old, host, header, &old_destinations));
            let to = new_host
                .zip(new_header)
                .map(|(host, header)| grant(new, host, header, &new_destinations));
            let widening = match (&from, &to) {
                (None, None) => continue,
                (Some(from), Some(to)) if from.same_terms(to) => continue,
                (_, None) => Vec::new(),
                (_, Some(to)) => widening(old, to, old_host, old_header),
            };
            pairs.push(PairChange::new(from, to, widening));
        }
        let Some(host) = new_host.or(old_host) else {
            continue;
        };
        if pairs.is_empty() {
            continue;
        }
        let change = match (old_host, new_host) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            (Some(_), Some(_)) => Change::Changed,
        };
        hosts.push(HostPlan {
            host: host.clone(),
            was: old_host
                .filter(|old_host| Some(*old_host) != new_host)
                .cloned(),
            change,
            pairs,
        });
    }
    let justification = (old.justification != new.justification).then(|| JustificationChange {
        from: old.justification.clone(),
        to: new.justification.clone(),
    });
    PartnerPlan {
        partner: new.name.clone(),
        change: Change::Changed,
        renamed_from: None,
        from_purpose: Some(old.purpose),
        to_purpose: Some(new.purpose),
        justification,
        hosts,
    }
}

/// Why `to`, a pair of the new partner, allows grants that the whole `old` partner did not.
/// `old_host` is the pattern it replaced (if any), `old_header` the old header it continues.
fn widening(
    old: &Partner,
    to: &Grant,
    old_host: Option<&HostPattern>,
    old_header: Option<&PartnerHeader>,
) -> Vec<Widening> {
    let mut reasons = Vec::new();
    if to.purpose != old.purpose {
        reasons.push(Widening::PurposeChanged {
            from: old.purpose,
            to: to.purpose,
        });
    }
    if !old.hosts.iter().any(|h| covers(h, &to.host)) {
        reasons.push(match old_host {
            Some(was) if *was != to.host => Widening::WiderHost { was: was.clone() },
            _ => Widening::NewHost,
        });
    }
    match old_header {
        None => reasons.push(Widening::NewHeader),
        Some(header) if rank(header.kind) < rank(to.kind) => {
            reasons.push(Widening::KindIdentifiesMore {
                from: header.kind,
                to: to.kind,
            });
        }
        Some(_) => {}
    }
    for &port in &to.ports {
        if !old.ports.contains(&port) {
            reasons.push(Widening::NewPort { port });
        }
    }
    for &destination in &to.destinations {
        if covered(&destination, &old.destinations) {
            continue;
        }
        // CIDRs nest or are disjoint: one not covered either holds old ones or none at all.
        reasons.push(
            if old.destinations.iter().any(|o| destination.contains(o)) {
                Widening::WiderDestination { destination }
            } else {
                Widening::NewDestination { destination }
            },
        );
    }
    reasons
}

fn grant(
    partner: &Partner,
    host: &HostPattern,
    header: &PartnerHeader,
    destinations: &[IpNet],
) -> Grant {
    Grant {
        partner: partner.name.clone(),
        host: host.clone(),
        header: header.name.clone(),
        kind: header.kind,
        ports: partner.ports.clone(),
        destinations: destinations.to_vec(),
        purpose: partner.purpose,
    }
}

/// Old and new host patterns side by side: equal ones, pairs where one covers the other, then
/// the rest alone; ordered by the new pattern (the old one when removed).
fn match_hosts<'a>(
    old: &'a Partner,
    new: &'a Partner,
) -> Vec<(Option<&'a HostPattern>, Option<&'a HostPattern>)> {
    let mut matched: Vec<(Option<&HostPattern>, Option<&HostPattern>)> = Vec::new();
    let old_only: Vec<&HostPattern> = old
        .hosts
        .iter()
        .filter(|h| !new.hosts.contains(h))
        .collect();
    let new_only: Vec<&HostPattern> = new
        .hosts
        .iter()
        .filter(|h| !old.hosts.contains(h))
        .collect();
    for host in new.hosts.iter().filter(|h| old.hosts.contains(h)) {
        matched.push((Some(host), Some(host)));
    }
    let pairs = pair_up(
        &old_only.iter().map(ToString::to_string).collect::<Vec<_>>(),
        &new_only.iter().map(ToString::to_string).collect::<Vec<_>>(),
        |i, j| covers(old_only[i], new_only[j]) || covers(new_only[j], old_only[i]),
    );
    push_pairs(&mut matched, &old_only, &new_only, &pairs);
    matched.sort_by_key(|(old_host, new_host)| new_host.or(*old_host).map(ToString::to_string));
    matched
}

/// Old and new headers side by side: same normalized name, renames (one name gone, another
/// added, same kind), then the rest alone; ordered by normalized name.
fn match_headers<'a>(
    old: &'a Partner,
    new: &'a Partner,
) -> Vec<(Option<&'a PartnerHeader>, Option<&'a PartnerHeader>)> {
    let key = |h: &PartnerHeader| normalize_header_name(&h.name);
    let old_names: BTreeMap<String, &PartnerHeader> =
        old.headers.iter().map(|h| (key(h), h)).collect();
    let new_names: BTreeMap<String, &PartnerHeader> =
        new.headers.iter().map(|h| (key(h), h)).collect();
    let mut matched: Vec<(Option<&PartnerHeader>, Option<&PartnerHeader>)> = Vec::new();
    for (name, header) in &new_names {
        if let Some(old_header) = old_names.get(name) {
            matched.push((Some(old_header), Some(header)));
        }
    }
    let old_only: Vec<&PartnerHeader> = old_names
        .iter()
        .filter(|(name, _)| !new_names.contains_key(*name))
        .map(|(_, h)| *h)
        .collect();
    let new_only: Vec<&PartnerHeader> = new_names
        .iter()
        .filter(|(name, _)| !old_names.contains_key(*name))
        .map(|(_, h)| *h)
        .collect();
    let pairs = pair_up(
        &old_only.iter().map(|h| key(h)).collect::<Vec<_>>(),
        &new_only.iter().map(|h| key(h)).collect::<Vec<_>>(),
        |i, j| old_only[i].kind == new_only[j].kind,
    );
    push_pairs(&mut matched, &old_only, &new_only, &pairs);
    matched.sort_by_key(|(old_header, new_header)| new_header.or(*old_header).map(key));
    matched
}

/// Adds the paired items, then the unpaired ones alone.
fn push_pairs<'a, T>(
    matched: &mut Vec<(Option<&'a T>, Option<&'a T>)>,
    old_only: &[&'a T],
    new_only: &[&'a T],
    pairs: &[(usize, usize)],
) {
    let mut old_paired = vec![false; old_only.len()];
    let mut new_paired = vec![false; new_only.len()];
    for &(i, j) in pairs {
        old_paired[i] = true;
        new_paired[j] = true;
        matched.push((Some(old_only[i]), Some(new_only[j])));
    }
    for (item, _) in old_only.iter().zip(&old_paired).filter(|(_, p)| !**p) {
        matched.push((Some(*item), None));
    }
    for (item, _) in new_only.iter().zip(&new_paired).filter(|(_, p)| !**p) {
        matched.push((None, Some(*item)));
    }
}

/// Pairs old-only items with new-only ones where `related(old, new)` holds, each used once.
///
/// Candidates are taken in order of their keys as an unordered pair (smaller key first), so
/// swapping old and new (with a symmetric `related`) gives the same pairs: `plan(b, a)` mirrors
/// `plan(a, b)`. Keys are unique within each side and never shared between the sides.
fn pair_up(
    old_keys: &[String],
    new_keys: &[String],
    related: impl Fn(usize, usize) -> bool,
) -> Vec<(usize, usize)> {
    let mut candidates: Vec<(&str, &str, usize, usize)> = Vec::new();
    for (i, old_key) in old_keys.iter().enumerate() {
        for (j, new_key) in new_keys.iter().enumerate() {
            if related(i, j) {
                let (low, high) = if old_key <= new_key {
                    (old_key, new_key)
                } else {
                    (new_key, old_key)
                };
                candidates.push((low, high, i, j));
            }
        }
    }
    candidates.sort_unstable();
    let mut old_used = vec![false; old_keys.len()];
    let mut new_used = vec![false; new_keys.len()];
    let mut pairs = Vec::new();
    for (_, _, i, j) in candidates {
        if !old_used[i] && !new_used[j] {
            old_used[i] = true;
            new_used[j] = true;
            pairs.push((i, j));
        }
    }
    pairs
}

/// Whether every name `narrower` matches is matched by `wider` too.
fn covers(wider: &HostPattern, narrower: &HostPattern) -> bool {
    match (wider, narrower) {
        (wider, narrower) if wider == narrower => true,
        (
            HostPattern::Subdomains(parent),
            HostPattern::Exact(name) | HostPattern::Subdomains(name),
        ) => is_strict_subdomain(name, parent),
        (HostPattern::Exact(_), _) => false,
    }
}

/// Whether the networks in `by` together hold every address of `net`.
fn covered(net: &IpNet, by: &[IpNet]) -> bool {
    if by.iter().any(|b| b.contains(net)) {
        return true;
    }
    let inside: Vec<IpNet> = by.iter().filter(|b| net.contains(*b)).copied().collect();
    IpNet::aggregate(&inside) == [*net]
}

fn sorted_nets(nets: &[IpNet]) -> Vec<IpNet> {
    let mut nets = nets.to_vec();
    nets.sort_unstable();
    nets.dedup();
    nets
}

fn strip_plan(old: &Policy, new: &Policy) -> StripPlan {
    let partner_headers: BTreeSet<String> = old
        .partners()
        .iter()
        .chain(new.partners())
        .flat_map(|p| p.headers.iter().map(|h| normalize_header_name(&h.name)))
        .collect();
    let names = |policy: &Policy| -> BTreeSet<String> {
        policy
            .strip()
            .names()
            .into_iter()
            .filter(|name| !partner_headers.contains(*name))
            .map(str::to_owned)
            .collect()
    };
    let (old_names, new_names) = (names(old), names(new));
    StripPlan {
        added: new_names.difference(&old_names).cloned().collect(),
        removed: old_names.difference(&new_names).cloned().collect(),
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    items.join(", ")
}

fn display<T: fmt::Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn display_option<T: fmt::Display, S: Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

/// How identifying each kind is, least first: `age_verified` (one fact about the subscriber),
/// `pseudonym` (a stable per-partner identifier), `token` (the pseudonym plus signed claims),
/// `msisdn` (the phone number itself). A header moving up this order widens exposure; moving
/// down is narrowing.
pub const KIND_ORDER: [ValueKind; 4] = [
    ValueKind::AgeVerified,
    ValueKind::Pseudonym,
    ValueKind::Token,
    ValueKind::Msisdn,
];

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
