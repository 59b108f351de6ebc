//! The `[[partner]]` tables, `[strip]`, and the overlaps between partners: the [`Policy`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use ipnet::IpNet;
use toml::Spanned;

use super::Loader;
use super::raw::{RawPartner, RawStrip, Str};
use crate::header::{is_field_name, normalize_header_name};
use crate::host::{HostPattern, parent_suffixes};
use crate::policy::{Partner, PartnerHeader, Policy, Purpose, ValueKind};

/// Header names a partner may not receive: framing, hop-by-hop and credentials (RFC 9110 §7.6.1,
/// RFC 9112 §6, §9.6); inserting them would change how the request is delivered or whose it is.
const FORBIDDEN_PARTNER_HEADERS: [&str; 11] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "cookie",
];

/// A partner under construction, with the spans overlap errors point at.
struct Compiled {
    partner: Partner,
    host_spans: Vec<usize>,
}

impl Loader<'_> {
    pub(super) fn policy(
        &mut self,
        raw: Vec<Spanned<RawPartner>>,
        strip: Option<RawStrip>,
    ) -> Policy {
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut compiled = Vec::with_capacity(raw.len());
        for partner in raw {
            compiled.push(self.partner(partner, &mut names));
        }
        self.overlaps(&compiled);
        let mut extra = Vec::new();
        for name in strip.and_then(|s| s.headers).into_iter().flatten() {
            if is_field_name(name.get_ref()) {
                extra.push(name.into_inner());
            } else {
                self.error(
                    name.span().start,
                    format!(
                        "`{}` in [strip] headers is not a valid header name; use letters, digits \
                         and `-` (any HTTP token), e.g. \"X-Customer-Id\"",
                        name.get_ref()
                    ),
                );
            }
        }
        Policy::build(compiled.into_iter().map(|c| c.partner).collect(), &extra)
    }

    /// One `[[partner]]` table, its keys checked in this order: name, purpose, hosts, ports,
    /// destinations, justification, then headers, whose kinds the purpose and justification
    /// allow. `names` holds each partner name seen so far with its line.
    fn partner(
        &mut self,
        raw: Spanned<RawPartner>,
        names: &mut HashMap<String, usize>,
    ) -> Compiled {
        let span = raw.span();
        let p = raw.into_inner();
        let name = self.partner_name(p.name.as_ref(), &span, names);
        let label = partner_label(&name);
        let purpose = self.partner_purpose(p.purpose.as_ref(), &span, &label);
        let (hosts, host_spans) = self.partner_hosts(p.hosts.as_ref(), &span, &label);
        let ports = self.partner_ports(p.ports.as_ref(), &label);
        let destinations = self.partner_destinations(p.destinations.as_ref(), &span, &label);
        let justification = self.partner_justification(p.justification.as_ref(), &label);
        let headers = self.partner_headers(
            p.headers.as_ref(),
            &span,
            &label,
            purpose,
            justification.is_some(),
        );
        Compiled {
            partner: Partner {
                name,
                purpose: purpose.unwrap_or(Purpose::Identification),
                hosts,
                ports,
                destinations,
                headers,
                justification,
            },
            host_spans,
        }
    }

    /// `name`: lowercase letters, digits, `_` and `-`, and unique; recorded in `names` with its
    /// line. Empty when missing.
    fn partner_name(
        &mut self,
        value: Option<&Str>,
        span: &Range<usize>,
        names: &mut HashMap<String, usize>,
    ) -> String {
        match value {
            Some(v) => {
                let name = v.get_ref();
                let at = v.span().start;
                if name.is_empty()
                    || !name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
                {
                    self.error(
                        at,
                        format!(
                            "invalid partner name `{name}`: use lowercase letters, digits, `_` \
                             and `-` only, e.g. \"agecheck\""
                        ),
                    );
                } else if let Some(line) = names.get(name) {
                    self.error(
                        at,
                        format!(
                            "partner name `{name}` is already used on line {line}; partner \
                             names must be unique"
                        ),
                    );
                } else {
                    names.insert(name.clone(), self.line_of(at));
                }
                name.clone()
            }
            None => {
                self.missing(span.clone(), "name", "[[partner]]", "\"agecheck\"");
                String::new()
            }
        }
    }

    /// `purpose`: one of [`Purpose`]'s names.
    fn partner_purpose(
        &mut self,
        value: Option<&Str>,
        span: &Range<usize>,
        label: &str,
    ) -> Option<Purpose> {
        match value {
            Some(v) => match Purpose::from_config_str(v.get_ref()) {
                Some(purpose) => Some(purpose),
                None => {
                    self.error(
                        v.span().start,
                        format!(
                            "unknown purpose `{}` in {label}; expected one of: age_verification, \
                             billing, identification",
                            v.get_ref()
                        ),
                    );
                    None
                }
            },
            None => {
                self.missing(span.clone(), "purpose", label, "\"age_verification\"");
                None
            }
        }
    }

    /// `hosts`: a non-empty list of distinct host patterns, each with the span overlap errors
    /// point at.
    fn partner_hosts(
        &mut self,
        value: Option<&Spanned<Vec<Str>>>,
        span: &Range<usize>,
        label: &str,
    ) -> (Vec<HostPattern>, Vec<usize>) {
        let mut hosts = Vec::new();
        let mut host_spans = Vec::new();
        match value {
            Some(list) if list.get_ref().is_empty() => self.error(
                list.span().start,
                format!(
                    "`hosts` in {label} is empty; list exact names or `*.example.com` patterns"
                ),
            ),
            Some(list) => {
                for host in list.get_ref() {
                    match HostPattern::parse(host.get_ref()) {
                        Ok(pattern) if hosts.contains(&pattern) => self.error(
                            host.span().start,
                            format!("host `{pattern}` is listed twice in {label}; remove one"),
                        ),
                        Ok(pattern) => {
                            hosts.push(pattern);
                            host_spans.push(host.span().start);
                        }
                        Err(why) => self.error(host.span().start, format!("{why}")),
                    }
                }
            }
            None => self.missing(span.clone(), "hosts", label, "[\"www.example.com\"]"),
        }
        (hosts, host_spans)
    }

    /// `ports`: [80] when left out, otherwise a non-empty list; sorted, without duplicates.
    fn partner_ports(
        &mut self,
        value: Option<&Spanned<Vec<Spanned<i64>>>>,
        label: &str,
    ) -> Vec<u16> {
        let what_ports = format!("`ports` in {label}");
        let mut ports: Vec<u16> = match value {
            None => vec![80],
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span().start,
                    format!(
                        "`ports` in {label} is empty; list the ports, or leave it out for [80]"
                    ),
                );
                Vec::new()
            }
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|v| self.port(v, &what_ports))
                .collect(),
        };
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// `destinations`: a non-empty list of addresses and networks, none of them `/0`.
    fn partner_destinations(
        &mut self,
        value: Option<&Spanned<Vec<Str>>>,
        span: &Range<usize>,
        label: &str,
    ) -> Vec<IpNet> {
        let what_dest = format!("`destinations` in {label}");
        match value {
            None => {
                self.missing(span.clone(), "destinations", label, "[\"192.0.2.10/32\"]");
                Vec::new()
            }
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span().start,
                    format!(
                        "`destinations` in {label} is empty; list the addresses this partner may \
                         be reached at, e.g. [\"192.0.2.10/32\"]"
                    ),
                );
                Vec::new()
            }
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|v| {
                    let net = self.net(v, &what_dest)?;
                    if net.prefix_len() == 0 {
                        // A /0 destination would make pinning mean nothing.
                        self.error(
                            v.span().start,
                            format!(
                                "{what_dest} allows every address (`{net}`), which turns \
                                 destination pinning off; list the partner's own addresses"
                            ),
                        );
                        return None;
                    }
                    Some(net)
                })
                .collect(),
        }
    }

    /// `justification`: optional, but not empty.
    fn partner_justification(&mut self, value: Option<&Str>, label: &str) -> Option<String> {
        match value {
            Some(v) if v.get_ref().trim().is_empty() => {
                self.error(
                    v.span().start,
                    format!(
                        "`justification` in {label} is empty; explain why the partner needs \
                         the kind, or remove the key"
                    ),
                );
                None
            }
            Some(v) => Some(v.get_ref().clone()),
            None => None,
        }
    }

    /// `headers`: a non-empty map of header name to kind, checked in file order.
    fn partner_headers(
        &mut self,
        value: Option<&Spanned<BTreeMap<Str, Str>>>,
        span: &Range<usize>,
        label: &str,
        purpose: Option<Purpose>,
        justified: bool,
    ) -> Vec<PartnerHeader> {
        let mut headers = Vec::new();
        match value {
            None => self.missing(
                span.clone(),
                "headers",
                label,
                "{ \"X-Subscriber-Id\" = \"pseudonym\" }",
            ),
            Some(map) if map.get_ref().is_empty() => self.error(
                map.span().start,
                format!(
                    "`headers` in {label} is empty; map each header name to a kind, e.g. \
                     {{ \"X-Subscriber-Id\" = \"pseudonym\" }}"
                ),
            ),
            Some(map) => {
                let mut entries: Vec<(&Str, &Str)> = map.get_ref().iter().collect();
                entries.sort_by_key(|(k, _)| k.span().start);
                let mut seen: HashMap<String, String> = HashMap::new();
                for (key, kind) in entries {
                    self.partner_header_name(key, label, &mut seen);
                    let header = key.get_ref();
                    let Some(value_kind) =
                        self.partner_header_kind(header, kind, label, purpose, justified)
                    else {
                        continue;
                    };
                    headers.push(PartnerHeader {
                        name: header.clone(),
                        kind: value_kind,
                    });
                }
            }
        }
        headers
    }

    /// One header name: a valid field name, not one that frames or authenticates the request,
    /// and not the same header as an earlier one (`seen`, by normalized name).
    fn partner_header_name(&mut self, key: &Str, label: &str, seen: &mut HashMap<String, String>) {
        let header = key.get_ref();
        let at = key.span().start;
        let normalized = normalize_header_name(header);
        if !is_field_name(header) {
            self.error(
                at,
                format!(
                    "`{header}` in {label} headers is not a valid header name; use \
                     letters, digits and `-` (any HTTP token), e.g. \"X-Subscriber-Id\""
                ),
            );
        } else if FORBIDDEN_PARTNER_HEADERS.contains(&normalized.as_str()) {
            self.error(
                at,
                format!(
                    "header `{header}` in {label} controls how the request is \
                     delivered or authenticated and cannot carry identity; choose \
                     another name, e.g. \"X-Subscriber-Id\""
                ),
            );
        } else if let Some(first) = seen.get(&normalized) {
            self.error(
                at,
                format!(
                    "header `{header}` in {label} is the same header as `{first}` \
                     (names ignore case and treat `_` as `-`); keep one"
                ),
            );
        } else {
            seen.insert(normalized, header.clone());
        }
    }

    /// One header's kind: a known [`ValueKind`], allowed for the partner's purpose unless the
    /// partner is `justified`. `None` only when the kind is unknown; a kind the purpose does
    /// not allow is reported and kept.
    fn partner_header_kind(
        &mut self,
        header: &str,
        kind: &Str,
        label: &str,
        purpose: Option<Purpose>,
        justified: bool,
    ) -> Option<ValueKind> {
        let Some(value_kind) = ValueKind::from_config_str(kind.get_ref()) else {
            self.error(
                kind.span().start,
                format!(
                    "unknown kind `{}` for header `{header}` in {label}; expected one \
                     of: msisdn, pseudonym, age_verified, token",
                    kind.get_ref()
                ),
            );
            return None;
        };
        if let Some(purpose) = purpose
            && !value_kind.allowed_for(purpose)
            && !justified
        {
            let allowed: Vec<&str> = Purpose::ALL
                .into_iter()
                .filter(|&pp| value_kind.allowed_for(pp))
                .map(|pp| pp.as_str())
                .collect();
            self.error(
                kind.span().start,
                format!(
                    "kind `{value_kind}` is not allowed for purpose `{purpose}` (it \
                     is for: {}); give a less identifying kind such as `pseudonym` \
                     or `token`, or add a `justification` to {label}",
                    allowed.join(", ")
                ),
            );
        }
        Some(value_kind)
    }

    /// Two partners that could match the same (host, port): one error on the later partner's
    /// host, naming the earlier one. Found from the covered pattern's side with hash lookups:
    /// an exact name against the same name and every wildcard above it, a wildcard against the
    /// same wildcard and every wildcard above it.
    fn overlaps(&mut self, compiled: &[Compiled]) {
        let mut exact: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        let mut wildcard: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        for (pi, c) in compiled.iter().enumerate() {
            for (hi, host) in c.partner.hosts.iter().enumerate() {
                match host {
                    HostPattern::Exact(name) => exact.entry(name).or_default().push((pi, hi)),
                    HostPattern::Subdomains(parent) => {
                        wildcard.entry(parent).or_default().push((pi, hi));
                    }
                }
            }
        }
        // (later partner, earlier partner) -> (later host, earlier host, common port)
        let mut conflicts: BTreeMap<(usize, usize), (usize, usize, u16)> = BTreeMap::new();
        for (pi, c) in compiled.iter().enumerate() {
            for (hi, host) in c.partner.hosts.iter().enumerate() {
                let (same, name) = match host {
                    HostPattern::Exact(name) => (exact.get(name.as_str()), name.as_str()),
                    HostPattern::Subdomains(parent) => {
                        (wildcard.get(parent.as_str()), parent.as_str())
                    }
                };
                let above = parent_suffixes(name).filter_map(|s| wildcard.get(s));
                for &(pj, hj) in same.into_iter().chain(above).flatten() {
                    if pj == pi {
                        continue;
                    }
                    let Some(port) = c
                        .partner
                        .ports
                        .iter()
                        .find(|p| compiled[pj].partner.ports.contains(p))
                    else {
                        continue;
                    };
                    let key = if pi > pj { (pi, pj) } else { (pj, pi) };
                    let hosts = if pi > pj { (hi, hj) } else { (hj, hi) };
                    conflicts.entry(key).or_insert((hosts.0, hosts.1, *port));
                }
            }
        }
        let mut reported: HashSet<(usize, usize)> = HashSet::new();
        for ((later, earlier), (lh, eh, port)) in conflicts {
            if !reported.insert((later, earlier)) {
                continue;
            }
            let (l, e) = (&compiled[later], &compiled[earlier]);
            let (Some(l_host), Some(e_host), Some(&at), Some(&e_at)) = (
                l.partner.hosts.get(lh),
                e.partner.hosts.get(eh),
                l.host_spans.get(lh),
                e.host_spans.get(eh),
            ) else {
                continue;
            };
            self.error(
                at,
                format!(
                    "host `{l_host}` of partner `{}` overlaps `{e_host}` of partner `{}` (line \
                     {}) on port {port}: a request could match both; each (host, port) must \
                     belong to one partner, so remove or narrow one of them",
                    l.partner.name,
                    e.partner.name,
                    self.line_of(e_at)
                ),
            );
        }
    }
}

/// How errors name a partner: `[[partner]]` and its name in backquotes, or `[[partner]]` alone
/// when it has none.
fn partner_label(name: &str) -> String {
    if name.is_empty() {
        "[[partner]]".to_owned()
    } else {
        format!("[[partner]] `{name}`")
    }
}
