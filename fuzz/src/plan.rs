//! `plan_diff`: `headwall_policy::plan(old, new)` between two valid policies.
//!
//! Input: bytes read with `arbitrary` as an OLD policy (partners drawn from small fixed
//! alphabets of names, purposes, host patterns, ports, destination CIDRs, headers and kinds)
//! and a NEW one, usually OLD with a few edits (so renames, respellings and near misses are
//! common), sometimes unrelated. Both are rendered as TOML and loaded with `load_policy`;
//! inputs where either does not load are skipped.
//!
//! The property (docs/design.md, Matching: "`plan` calls a change widening when NEW allows any (partner, host,
//! port, header, kind, destination address) that OLD did not"), computed here from the compiled
//! policies alone, by brute force over grants: for each NEW partner, every (host, port,
//! destination address, header, kind) it allows, over sample names that tell every pattern of
//! the alphabet apart and sample addresses that tell every CIDR union apart, is looked up in
//! OLD's partner of the same name. docs/operations.md ("What widens") makes the comparison
//! precise, and the oracle follows it:
//!
//! - a grant is covered only by the OLD partner of the same name with the same purpose;
//! - its header is covered by the OLD header of the same normalized name with a kind at least
//!   as identifying (`KIND_ORDER`); a header name OLD does not have is covered only as a rename
//!   (one name gone, another added, same kind), so only while NEW adds no more new names of
//!   that kind than OLD loses;
//! - a NEW partner whose name OLD lacks is covered only as a pure rename: an OLD partner whose
//!   name NEW lacks with identical terms (purpose, hosts, ports, destinations, headers as
//!   written, justification).
//!
//! Asserted: the partners that `plan` marks with a widening pair are exactly the NEW partners
//! with an uncovered grant, so `plan.widens()` is true exactly when some grant is new; plus
//! `plan(p, p)` is empty, changes count the same both ways, and the text and JSON forms agree.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use headwall_policy::{
    HostPattern, KIND_ORDER, Partner, Policy, Purpose, ValueKind, load_policy,
    normalize_header_name, plan,
};
use ipnet::IpNet;

const NAMES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const DOMAINS: [&str; 3] = ["a.test", "b.test", "pay.example"];
/// Host pattern templates; `{d}` is one of [`DOMAINS`]. Nothing here is a name under `fresh.`,
/// which the sample names use.
const HOST_TEMPLATES: [&str; 5] = ["login.{d}", "*.{d}", "*.login.{d}", "{d}", "x.login.{d}"];
/// Literal hosts besides the templated ones.
const HOST_LITERALS: [&str; 2] = ["192.0.2.5", "[2001:db8::5]"];
const PORTS: [u16; 3] = [80, 443, 8080];
/// Nested and disjoint networks, some written two ways (`10.1.2.3` is `10.1.2.3/32`).
const DESTINATIONS: [&str; 13] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.2/31",
    "10.1.2.3/32",
    "10.1.2.3",
    "192.0.2.0/24",
    "192.0.2.0/25",
    "192.0.2.128/25",
    "192.0.2.10",
    "198.51.100.7/32",
    "2001:db8::/48",
    "2001:db8::/64",
    "2001:db8::5",
];
const HEADERS: [&str; 4] = ["X-One", "X-Two", "X-Three", "X-Four"];
const JUSTIFICATIONS: [Option<&str>; 3] = [None, Some("contract"), Some("contract v2")];
const STRIP: [&str; 2] = ["X-Extra", "X-Other"];

/// One `[[partner]]` as indices into the alphabets.
#[derive(Debug, Clone, Arbitrary)]
pub struct PartnerSpec {
    name: u8,
    purpose: u8,
    /// (host index, spelling)
    hosts: Vec<(u8, u8)>,
    /// Empty: the key is left out (default `[80]`).
    ports: Vec<u8>,
    destinations: Vec<u8>,
    /// (header index, spelling, kind)
    headers: Vec<(u8, u8, u8)>,
    justification: u8,
}

/// How NEW is made.
#[derive(Debug, Clone, Arbitrary)]
pub enum NewSpec {
    /// OLD with these edits.
    Edited(Vec<Edit>),
    /// Unrelated partners.
    Fresh(Vec<PartnerSpec>),
}

/// One change to a partner list; indices wrap.
#[derive(Debug, Clone, Arbitrary)]
pub enum Edit {
    Rename(u8, u8),
    Purpose(u8, u8),
    AddHost(u8, (u8, u8)),
    RemoveHost(u8, u8),
    ReplaceHost(u8, u8, (u8, u8)),
    AddPort(u8, u8),
    RemovePort(u8, u8),
    AddDestination(u8, u8),
    RemoveDestination(u8, u8),
    ReplaceDestination(u8, u8, u8),
    AddHeader(u8, (u8, u8, u8)),
    RemoveHeader(u8, u8),
    HeaderKind(u8, u8, u8),
    HeaderName(u8, u8, u8),
    HeaderSpelling(u8, u8, u8),
    Justification(u8, u8),
    RemovePartner(u8),
    AddPartner(PartnerSpec),
    Swap(u8, u8),
}

/// The whole fuzz input.
#[derive(Debug, Clone, Arbitrary)]
pub struct Input {
    old: Vec<PartnerSpec>,
    old_strip: u8,
    new: NewSpec,
    new_strip: u8,
}

fn pick<T: Copy>(items: &[T], index: u8) -> T {
    items[usize::from(index) % items.len()]
}

fn all_hosts() -> Vec<String> {
    let mut hosts: Vec<String> = DOMAINS
        .iter()
        .flat_map(|d| HOST_TEMPLATES.iter().map(move |t| t.replace("{d}", d)))
        .collect();
    hosts.extend(HOST_LITERALS.iter().map(|h| (*h).to_owned()));
    hosts
}

fn spell_host(host: &str, spelling: u8) -> String {
    match spelling % 4 {
        1 if !host.starts_with('[') => host.to_ascii_uppercase(),
        2 if !host.starts_with('[') => format!("{host}."),
        _ => host.to_owned(),
    }
}

fn spell_header(name: &str, spelling: u8) -> String {
    match spelling % 4 {
        1 => name.to_ascii_lowercase(),
        2 => name.replace('-', "_"),
        3 => name.to_ascii_uppercase(),
        _ => name.to_owned(),
    }
}

fn at(list_len: usize, index: u8) -> Option<usize> {
    (list_len > 0).then(|| usize::from(index) % list_len)
}

/// Applies one edit (indices wrap; an edit with nothing to act on does nothing).
fn apply(partners: &mut Vec<PartnerSpec>, edit: &Edit) {
    let n = partners.len();
    match edit {
        Edit::Rename(p, name) => at(n, *p).into_iter().for_each(|i| partners[i].name = *name),
        Edit::Purpose(p, v) => at(n, *p).into_iter().for_each(|i| partners[i].purpose = *v),
        Edit::AddHost(p, h) => at(n, *p)
            .into_iter()
            .for_each(|i| partners[i].hosts.push(*h)),
        Edit::RemoveHost(p, h) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].hosts.len(), *h)
            {
                partners[i].hosts.remove(j);
            }
        }
        Edit::ReplaceHost(p, h, new) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].hosts.len(), *h)
            {
                partners[i].hosts[j] = *new;
            }
        }
        Edit::AddPort(p, v) => at(n, *p)
            .into_iter()
            .for_each(|i| partners[i].ports.push(*v)),
        Edit::RemovePort(p, v) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].ports.len(), *v)
            {
                partners[i].ports.remove(j);
            }
        }
        Edit::AddDestination(p, v) => at(n, *p)
            .into_iter()
            .for_each(|i| partners[i].destinations.push(*v)),
        Edit::RemoveDestination(p, v) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].destinations.len(), *v)
            {
                partners[i].destinations.remove(j);
            }
        }
        Edit::ReplaceDestination(p, v, new) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].destinations.len(), *v)
            {
                partners[i].destinations[j] = *new;
            }
        }
        Edit::AddHeader(p, h) => at(n, *p)
            .into_iter()
            .for_each(|i| partners[i].headers.push(*h)),
        Edit::RemoveHeader(p, h) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].headers.len(), *h)
            {
                partners[i].headers.remove(j);
            }
        }
        Edit::HeaderKind(p, h, kind) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].headers.len(), *h)
            {
                partners[i].headers[j].2 = *kind;
            }
        }
        Edit::HeaderName(p, h, name) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].headers.len(), *h)
            {
                partners[i].headers[j].0 = *name;
            }
        }
        Edit::HeaderSpelling(p, h, spelling) => {
            if let Some(i) = at(n, *p)
                && let Some(j) = at(partners[i].headers.len(), *h)
            {
                partners[i].headers[j].1 = *spelling;
            }
        }
        Edit::Justification(p, v) => at(n, *p)
            .into_iter()
            .for_each(|i| partners[i].justification = *v),
        Edit::RemovePartner(p) => {
            if let Some(i) = at(n, *p) {
                partners.remove(i);
            }
        }
        Edit::AddPartner(spec) => partners.push(spec.clone()),
        Edit::Swap(a, b) => {
            if let (Some(i), Some(j)) = (at(n, *a), at(n, *b)) {
                partners.swap(i, j);
            }
        }
    }
}

fn dedup_by_key<T, K: PartialEq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen: Vec<K> = Vec::new();
    let mut out = Vec::new();
    for item in items {
        let k = key(item);
        if !seen.contains(&k) {
            seen.push(k);
            out.push(item);
        }
    }
    out
}

/// The policy file for a partner list: names, hosts and headers deduplicated (those are
/// errors the generator avoids, not what this target is about), lists capped and never
/// empty, and a justification added when a kind needs one.
pub fn render(partners: &[PartnerSpec], strip: u8) -> String {
    let hosts = all_hosts();
    let mut text = String::from("# plan_diff fuzz input\n");
    let strip: Vec<&str> = STRIP
        .iter()
        .enumerate()
        .filter(|(i, _)| strip & (1 << i) != 0)
        .map(|(_, s)| *s)
        .collect();
    if !strip.is_empty() {
        let list: Vec<String> = strip.iter().map(|s| format!("{s:?}")).collect();
        text.push_str(&format!("[strip]\nheaders = [{}]\n", list.join(", ")));
    }
    let unique = dedup_by_key(&partners[..partners.len().min(4)], |p| {
        usize::from(p.name) % NAMES.len()
    });
    for (slot, p) in unique.into_iter().enumerate() {
        let name = pick(&NAMES, p.name);
        let purpose = pick(&Purpose::ALL, p.purpose);
        let mut host_list: Vec<String> = dedup_by_key(&p.hosts, |h| usize::from(h.0) % hosts.len())
            .into_iter()
            .take(3)
            .map(|&(h, spelling)| spell_host(&hosts[usize::from(h) % hosts.len()], spelling))
            .collect();
        if host_list.is_empty() {
            // A partner's own default, so empty lists do not make every input overlap.
            host_list.push(format!("login.{}", DOMAINS[slot % DOMAINS.len()]));
        }
        let ports: Vec<u16> = p.ports.iter().take(3).map(|&i| pick(&PORTS, i)).collect();
        let mut destinations: Vec<&str> = p
            .destinations
            .iter()
            .take(3)
            .map(|&i| pick(&DESTINATIONS, i))
            .collect();
        if destinations.is_empty() {
            destinations.push("192.0.2.10");
        }
        let mut headers: Vec<(String, ValueKind)> =
            dedup_by_key(&p.headers, |h| usize::from(h.0) % HEADERS.len())
                .into_iter()
                .take(4)
                .map(|&(h, spelling, kind)| {
                    (
                        spell_header(pick(&HEADERS, h), spelling),
                        pick(&ValueKind::ALL, kind),
                    )
                })
                .collect();
        if headers.is_empty() {
            headers.push(("X-One".to_owned(), ValueKind::Pseudonym));
        }
        let mut justification = pick(&JUSTIFICATIONS, p.justification);
        if justification.is_none() && headers.iter().any(|(_, k)| !k.allowed_for(purpose)) {
            justification = Some("contract");
        }
        text.push_str(&format!(
            "\n[[partner]]\nname = {name:?}\npurpose = \"{purpose}\"\n"
        ));
        let quoted: Vec<String> = host_list.iter().map(|h| format!("{h:?}")).collect();
        text.push_str(&format!("hosts = [{}]\n", quoted.join(", ")));
        if !ports.is_empty() {
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            text.push_str(&format!("ports = [{}]\n", list.join(", ")));
        }
        let quoted: Vec<String> = destinations.iter().map(|d| format!("{d:?}")).collect();
        text.push_str(&format!("destinations = [{}]\n", quoted.join(", ")));
        let pairs: Vec<String> = headers
            .iter()
            .map(|(h, k)| format!("{h:?} = \"{k}\""))
            .collect();
        text.push_str(&format!("headers = {{ {} }}\n", pairs.join(", ")));
        if let Some(j) = justification {
            text.push_str(&format!("justification = {j:?}\n"));
        }
    }
    text
}

/// OLD and NEW policy files for an input.
pub fn texts(input: &Input) -> (String, String) {
    let old = render(&input.old, input.old_strip);
    let new_partners = match &input.new {
        NewSpec::Edited(edits) => {
            let mut partners = input.old.clone();
            for edit in edits.iter().take(8) {
                apply(&mut partners, edit);
            }
            partners
        }
        NewSpec::Fresh(partners) => partners.clone(),
    };
    (old, render(&new_partners, input.new_strip))
}

/// Both policies, when the input makes two that load.
pub fn policies(data: &[u8]) -> Option<(Policy, Policy, String, String)> {
    let input = Input::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let (old_text, new_text) = texts(&input);
    let old = load_policy("old.toml", &old_text).ok()?;
    let new = load_policy("new.toml", &new_text).ok()?;
    Some((old, new, old_text, new_text))
}

pub fn check(data: &[u8]) {
    let Some((old, new, old_text, new_text)) = policies(data) else {
        return;
    };
    let diff = plan(&old, &new);
    let expected = uncovered_partners(&old, &new);
    let marked: BTreeSet<String> = diff
        .partners()
        .iter()
        .filter(|p| {
            p.hosts
                .iter()
                .flat_map(|h| &h.pairs)
                .any(|pair| pair.widens)
        })
        .map(|p| p.partner.clone())
        .collect();
    assert_eq!(
        marked,
        expected,
        "partners plan marks widening vs partners with a grant OLD lacks\n--- old\n{old_text}\n\
         --- new\n{new_text}\n--- plan\n{}",
        diff.to_text()
    );
    assert_eq!(diff.widens(), !expected.is_empty());
    assert_eq!(diff.widens(), diff.widening_changes() > 0);
    if diff.widens() {
        assert!(!diff.is_empty());
    }

    let same = plan(&new, &new);
    assert!(
        same.is_empty() && !same.widens(),
        "plan(new, new):\n{}",
        same.to_text()
    );
    let back = plan(&new, &old);
    assert_eq!(
        back.changes(),
        diff.changes(),
        "plan(old, new) and plan(new, old) count different changes\n{}\n{}",
        diff.to_text(),
        back.to_text()
    );
    let text = diff.to_text();
    assert!(text.trim_end().ends_with(&diff.summary()));
    let json: serde_json::Value = serde_json::from_str(&diff.to_json()).expect("plan JSON parses");
    assert_eq!(json["widens"], serde_json::Value::Bool(diff.widens()));
}

fn rank(kind: ValueKind) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .expect("KIND_ORDER holds every kind")
}

/// Names that tell every pattern of the alphabet apart: each exact name, and fresh names one
/// and two labels under each wildcard's parent.
fn sample_hosts() -> Vec<String> {
    let mut out = Vec::new();
    for host in all_hosts() {
        match HostPattern::parse(&host).expect("alphabet host parses") {
            HostPattern::Exact(name) => out.push(name),
            HostPattern::Subdomains(parent) => {
                out.push(format!("fresh.{parent}"));
                out.push(format!("d.fresh.{parent}"));
                out.push(parent);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Addresses that tell every union of alphabet networks apart: the first and last address of
/// each network and the addresses just outside it (the lowest address of a network that a
/// union misses is one of these).
fn sample_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    for text in DESTINATIONS {
        let net: IpNet = if text.contains('/') {
            text.parse().expect("alphabet network parses")
        } else {
            IpNet::from(text.parse::<IpAddr>().expect("alphabet address parses"))
        };
        match net {
            IpNet::V4(n) => {
                let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                for v in [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
                    .into_iter()
                    .flatten()
                {
                    out.push(IpAddr::from(std::net::Ipv4Addr::from(v)));
                }
            }
            IpNet::V6(n) => {
                let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
                for v in [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
                    .into_iter()
                    .flatten()
                {
                    out.push(IpAddr::from(std::net::Ipv6Addr::from(v)));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Same terms, whatever the name: what a pure rename keeps.
fn same_terms(a: &Partner, b: &Partner) -> bool {
    let hosts = |p: &Partner| p.hosts.iter().cloned().collect::<BTreeSet<HostPattern>>();
    let nets = |p: &Partner| p.destinations.iter().copied().collect::<BTreeSet<IpNet>>();
    let headers = |p: &Partner| {
        p.headers
            .iter()
            .map(|h| (h.name.clone(), h.kind))
            .collect::<BTreeSet<_>>()
    };
    let ports = |p: &Partner| p.ports.iter().copied().collect::<BTreeSet<u16>>();
    a.purpose == b.purpose
        && hosts(a) == hosts(b)
        && ports(a) == ports(b)
        && nets(a) == nets(b)
        && headers(a) == headers(b)
        && a.justification == b.justification
}

/// The NEW partners that allow a grant OLD does not (see the module docs).
pub fn uncovered_partners(old: &Policy, new: &Policy) -> BTreeSet<String> {
    static HOSTS: LazyLock<Vec<String>> = LazyLock::new(sample_hosts);
    static ADDRESSES: LazyLock<Vec<IpAddr>> = LazyLock::new(sample_addresses);
    let (hosts, addresses) = (&*HOSTS, &*ADDRESSES);
    let mut out = BTreeSet::new();
    for n in new.partners() {
        let widens = match old.partner(&n.name) {
            Some(o) => has_uncovered_grant(o, n, hosts, addresses),
            None => !old
                .partners()
                .iter()
                .any(|o| new.partner(&o.name).is_none() && same_terms(o, n)),
        };
        if widens {
            out.insert(n.name.clone());
        }
    }
    out
}

fn has_uncovered_grant(o: &Partner, n: &Partner, hosts: &[String], addresses: &[IpAddr]) -> bool {
    let key = |name: &str| normalize_header_name(name);
    let old_names: BTreeSet<String> = o.headers.iter().map(|h| key(&h.name)).collect();
    let new_names: BTreeSet<String> = n.headers.iter().map(|h| key(&h.name)).collect();
    let only = |p: &Partner, other: &BTreeSet<String>, kind: ValueKind| {
        p.headers
            .iter()
            .filter(|h| h.kind == kind && !other.contains(&key(&h.name)))
            .count()
    };
    let header_covered = |name: &str, kind: ValueKind| -> bool {
        match o.headers.iter().find(|h| key(&h.name) == key(name)) {
            Some(old) => rank(old.kind) >= rank(kind),
            None => only(n, &old_names, kind) <= only(o, &new_names, kind),
        }
    };
    for host in hosts
        .iter()
        .filter(|h| n.hosts.iter().any(|p| p.matches(h)))
    {
        for &port in &n.ports {
            for &address in addresses.iter().filter(|a| n.allows_destination(**a)) {
                for header in &n.headers {
                    let covered = o.purpose == n.purpose
                        && o.hosts.iter().any(|p| p.matches(host))
                        && o.ports.contains(&port)
                        && o.allows_destination(address)
                        && header_covered(&header.name, header.kind);
                    if !covered {
                        return true;
                    }
                }
            }
        }
    }
    false
}
