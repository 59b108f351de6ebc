//! Properties of [`plan`] over generated policy pairs, against a brute-force oracle over sample
//! hosts and addresses. Here rather than beside the integration property tests
//! (`tests/it/props.rs`) because they use the module's private `rank`, `Terms` and `pair_up`.

use std::net::IpAddr;

use proptest::prelude::*;

use super::tests::net;
use super::*;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
const HOSTS: [&str; 8] = [
    "a.example.com",
    "b.example.com",
    "x.a.example.com",
    "xa.example.com",
    "*.example.com",
    "*.a.example.com",
    "other.test",
    "*.other.test",
];
const NETS: [&str; 6] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.2/31",
    "10.1.2.3/32",
    "192.0.2.0/24",
    "2001:db8::/64",
];
const HEADERS: [&str; 4] = ["X-One", "X-Two", "X-Three", "X-Four"];
const PORTS: [u16; 3] = [80, 443, 8080];

fn arb_header(name: &'static str) -> impl Strategy<Value = PartnerHeader> {
    (prop::sample::select(ValueKind::ALL.to_vec()), any::<bool>()).prop_map(move |(kind, lower)| {
        PartnerHeader {
            name: if lower {
                name.to_ascii_lowercase()
            } else {
                name.to_owned()
            },
            kind,
        }
    })
}

fn arb_partner(name: &'static str) -> impl Strategy<Value = Partner> {
    let headers = prop::sample::subsequence(HEADERS.to_vec(), 1..=3)
        .prop_flat_map(|names| names.into_iter().map(arb_header).collect::<Vec<_>>());
    (
        prop::sample::select(Purpose::ALL.to_vec()),
        prop::sample::subsequence(HOSTS.to_vec(), 1..=3),
        prop::sample::subsequence(PORTS.to_vec(), 1..=2),
        prop::sample::subsequence(NETS.to_vec(), 1..=2),
        headers,
        prop::option::of(Just("contract".to_owned())),
    )
        .prop_map(
            move |(purpose, hosts, ports, nets, headers, justification)| Partner {
                name: name.to_owned(),
                purpose,
                hosts: hosts
                    .into_iter()
                    .map(|h| HostPattern::parse(h).unwrap())
                    .collect(),
                ports,
                destinations: nets.into_iter().map(net).collect(),
                headers,
                justification,
            },
        )
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::subsequence(NAMES.to_vec(), 0..=3)
            .prop_flat_map(|names| names.into_iter().map(arb_partner).collect::<Vec<_>>()),
        prop::sample::subsequence(vec!["X-Extra", "X-Other"], 0..=2),
    )
        .prop_map(|(partners, strip)| {
            let strip: Vec<String> = strip.into_iter().map(str::to_owned).collect();
            Policy::build(partners, &strip)
        })
}

/// `old` with the fields marked in `redraw` taken from `fresh` (and maybe a new name).
fn mix(old: &Partner, fresh: &Partner, redraw: &[bool]) -> Partner {
    let pick = |i: usize| redraw.get(i).copied().unwrap_or(false);
    let mut partner = old.clone();
    if pick(0) {
        partner.name = format!("{}-renamed", old.name);
    }
    if pick(1) {
        partner.purpose = fresh.purpose;
    }
    if pick(2) {
        partner.hosts = fresh.hosts.clone();
    }
    if pick(3) {
        partner.ports = fresh.ports.clone();
    }
    if pick(4) {
        partner.destinations = fresh.destinations.clone();
    }
    if pick(5) {
        partner.headers = fresh.headers.clone();
    }
    if pick(6) {
        partner.justification = fresh.justification.clone();
    }
    if pick(7) {
        partner.headers[0].kind = fresh.headers[0].kind;
    }
    partner
}

/// Two policies, the second mostly the first with a few fields of a few partners redrawn,
/// some partners removed or added; or two unrelated policies.
fn arb_pair() -> impl Strategy<Value = (Policy, Policy)> {
    let slot = |name: &'static str| {
        (
            prop::option::weighted(0.8, arb_partner(name)),
            arb_partner(name),
            prop::collection::vec(prop::bool::weighted(0.15), 8),
            prop::bool::weighted(0.85),
        )
    };
    let edited = (
        NAMES.iter().map(|name| slot(name)).collect::<Vec<_>>(),
        prop::sample::subsequence(vec!["X-Extra", "X-Other"], 0..=2),
        prop::sample::subsequence(vec!["X-Extra", "X-Other"], 0..=2),
    )
        .prop_map(|(slots, old_strip, new_strip)| {
            let mut old = Vec::new();
            let mut new = Vec::new();
            for (before, fresh, redraw, keep) in slots {
                match before {
                    Some(before) => {
                        if keep {
                            new.push(mix(&before, &fresh, &redraw));
                        }
                        old.push(before);
                    }
                    None if !keep => new.push(fresh),
                    None => {}
                }
            }
            let strip = |names: Vec<&str>| -> Vec<String> {
                names.into_iter().map(str::to_owned).collect()
            };
            (
                Policy::build(old, &strip(old_strip)),
                Policy::build(new, &strip(new_strip)),
            )
        });
    prop_oneof![3 => edited, 1 => (arb_policy(), arb_policy())]
}

type Side = (String, Option<Grant>, Option<Grant>);

/// Every pair as (partner, from, to), sorted.
fn sides(plan: &Plan) -> Vec<Side> {
    let mut all: Vec<Side> = plan
        .partners()
        .iter()
        .flat_map(|p| {
            p.hosts
                .iter()
                .flat_map(|h| &h.pairs)
                .map(|pair| (p.partner.clone(), pair.from.clone(), pair.to.clone()))
        })
        .collect();
    all.sort_by_key(|side| format!("{side:?}"));
    all
}

/// Host names that tell patterns apart: each exact name, and fresh names at two depths
/// under each wildcard.
fn sample_hosts() -> Vec<String> {
    HOSTS
        .iter()
        .flat_map(|pattern| match pattern.strip_prefix("*.") {
            Some(parent) => vec![format!("fresh.{parent}"), format!("d.fresh.{parent}")],
            None => vec![(*pattern).to_owned()],
        })
        .collect()
}

/// The first and last address of each network.
fn sample_addresses() -> Vec<IpAddr> {
    NETS.iter()
        .flat_map(|n| {
            let n = net(n);
            [n.network(), n.broadcast()]
        })
        .collect()
}

/// A concrete grant: (partner, host, port, address, normalized header, kind).
type Concrete = (String, String, u16, IpAddr, String, ValueKind);

/// Brute force over sample names and addresses: every concrete grant of `new` that the old
/// partner of the same name (or the one it was renamed from) does not allow with the same
/// purpose and some header at least as identifying. Header names are left out of the
/// comparison, so this finds less than [`plan`] may, never more.
fn uncovered(old: &Policy, new: &Policy, renamed: &BTreeMap<String, String>) -> Vec<Concrete> {
    let hosts = sample_hosts();
    let addresses = sample_addresses();
    let mut found = Vec::new();
    for n in new.partners() {
        let old_name = renamed.get(&n.name).unwrap_or(&n.name);
        let o = old.partner(old_name).filter(|o| o.purpose == n.purpose);
        for host in hosts
            .iter()
            .filter(|host| n.hosts.iter().any(|h| h.matches(host)))
        {
            for &port in &n.ports {
                for &ip in addresses.iter().filter(|ip| n.allows_destination(**ip)) {
                    for header in &n.headers {
                        let covered = o.is_some_and(|o| {
                            o.hosts.iter().any(|h| h.matches(host))
                                && o.ports.contains(&port)
                                && o.allows_destination(ip)
                                && o.headers.iter().any(|h| rank(h.kind) >= rank(header.kind))
                        });
                        if !covered {
                            found.push((
                                n.name.clone(),
                                host.clone(),
                                port,
                                ip,
                                normalize_header_name(&header.name),
                                header.kind,
                            ));
                        }
                    }
                }
            }
        }
    }
    found
}

/// Whether a pair's new side carries a concrete grant.
fn carries(grant: &Grant, concrete: &Concrete) -> bool {
    let (_, host, port, ip, header, kind) = concrete;
    grant.host.matches(host)
        && grant.ports.contains(port)
        && grant.destinations.iter().any(|d| d.contains(ip))
        && normalize_header_name(&grant.header) == *header
        && grant.kind == *kind
}

proptest! {
    #[test]
    fn a_policy_against_itself_is_empty(p in arb_policy()) {
        let plan = plan(&p, &p);
        prop_assert!(plan.is_empty(), "{}", plan.to_text());
        prop_assert!(!plan.widens());
    }

    #[test]
    fn plans_mirror_each_other((a, b) in arb_pair()) {
        let forward = plan(&a, &b);
        let backward = plan(&b, &a);
        let mirrored: Vec<Side> = sides(&backward)
            .into_iter()
            .map(|(partner, from, to)| (partner, to, from))
            .collect();
        // Partner names on the pairs differ only for renames; compare the grants.
        let strip_names = |sides: Vec<Side>| -> Vec<(Option<Grant>, Option<Grant>)> {
            let mut pairs: Vec<_> = sides.into_iter().map(|(_, from, to)| (from, to)).collect();
            pairs.sort_by_key(|pair| format!("{pair:?}"));
            pairs
        };
        prop_assert_eq!(strip_names(sides(&forward)), strip_names(mirrored));
        let added: Vec<_> = sides(&forward).into_iter().filter(|s| s.1.is_none()).map(|s| s.2).collect();
        let mut removed: Vec<_> = sides(&backward).into_iter().filter(|s| s.2.is_none()).map(|s| s.1).collect();
        removed.sort_by_key(|g| format!("{g:?}"));
        prop_assert_eq!(added, removed);
        prop_assert_eq!(&forward.strip().added, &backward.strip().removed);
        prop_assert_eq!(forward.changes(), backward.changes());
    }

    #[test]
    fn every_new_concrete_grant_is_on_a_widening_pair((a, b) in arb_pair()) {
        let plan = plan(&a, &b);
        let mut renamed = BTreeMap::new();
        for p in plan.partners() {
            if let Some(from) = &p.renamed_from {
                let (old, new) = (a.partner(from).unwrap(), b.partner(&p.partner).unwrap());
                prop_assert!(Terms::of(old) == Terms::of(new), "{}", plan.to_text());
                renamed.insert(p.partner.clone(), from.clone());
            }
        }
        for concrete in uncovered(&a, &b, &renamed) {
            let carrying: Vec<&PairChange> = plan
                .partners()
                .iter()
                .filter(|p| p.partner == concrete.0)
                .flat_map(|p| p.hosts.iter().flat_map(|h| &h.pairs))
                .filter(|pair| pair.to.as_ref().is_some_and(|to| carries(to, &concrete)))
                .collect();
            prop_assert!(!carrying.is_empty(), "{concrete:?} not listed:\n{}", plan.to_text());
            prop_assert!(
                carrying.iter().all(|pair| pair.widens),
                "{concrete:?} not marked:\n{}",
                plan.to_text()
            );
        }
    }

    #[test]
    fn pairing_is_the_same_both_ways(
        relation in prop::collection::vec(any::<bool>(), 16),
        old_count in 0..=4usize,
        new_count in 0..=4usize,
    ) {
        let old_keys: Vec<String> = (0..old_count).map(|i| format!("old{i}")).collect();
        let new_keys: Vec<String> = (0..new_count).map(|j| format!("new{j}")).collect();
        let related = |i: usize, j: usize| relation[i * 4 + j];
        let mut forward = pair_up(&old_keys, &new_keys, related);
        let mut backward: Vec<(usize, usize)> = pair_up(&new_keys, &old_keys, |j, i| related(i, j))
            .into_iter()
            .map(|(j, i)| (i, j))
            .collect();
        forward.sort_unstable();
        backward.sort_unstable();
        prop_assert_eq!(forward, backward);
    }
}
