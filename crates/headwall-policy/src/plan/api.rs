//! `[[api.client]]` in `plan`: what each API client may learn, and where its codes may go.
//!
//! A client's exposure is its scopes (what it may ask), its redirect URIs (where an
//! authorization code for a subscriber may be sent) and its purpose. Adding any of them, or a
//! new client, widens; removing narrows; a changed `justification` is listed and does not widen.
//! Clients are matched by id only: a renamed client is a new client (its pairwise `sub` values
//! change, and it may ask again from nothing).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use super::Change;
use crate::client::ApiClient;
use crate::policy::Policy;

/// What changed for one API client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientPlan {
    /// The client id.
    pub client: String,
    /// `added` (a new client), `removed`, or `changed`.
    pub change: Change,
    /// Its purpose in the new policy (the old one when removed).
    pub purpose: String,
    /// One entry per scope, redirect URI, purpose or justification that changed.
    pub items: Vec<ClientChange>,
}

/// One changed part of a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientChange {
    /// `added`, `removed` or `changed`.
    pub change: Change,
    /// `scope`, `redirect_uri`, `purpose` or `justification`.
    pub field: &'static str,
    /// The old value (`None` when added).
    pub from: Option<String>,
    /// The new value (`None` when removed).
    pub to: Option<String>,
    /// Whether the client may now learn something, or receive a code somewhere, it could not.
    pub widens: bool,
}

impl ClientPlan {
    /// Changes counted by the plan's summary.
    pub(super) fn change_count(&self) -> usize {
        self.items.len()
    }

    /// Changes that widen.
    pub(super) fn widening_count(&self) -> usize {
        self.items.iter().filter(|item| item.widens).count()
    }

    pub(super) fn write_text(&self, out: &mut String) {
        let status = match self.change {
            Change::Added => ", new client",
            Change::Removed => ", removed",
            Change::Changed => "",
        };
        let _ = writeln!(out, "api client {} ({}{status})", self.client, self.purpose);
        for item in &self.items {
            let _ = writeln!(out, "  {item}");
        }
    }
}

/// `+ scope number-verification:verify  WIDENS: new scope`, `~ purpose A -> B`.
impl fmt::Display for ClientChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |value: &Option<String>| match (self.field, value) {
            (_, None) => "none".to_owned(),
            ("justification", Some(text)) => format!("{text:?}"),
            (_, Some(text)) => text.clone(),
        };
        match self.change {
            Change::Added => write!(f, "+ {} {}", self.field, show(&self.to))?,
            Change::Removed => write!(f, "- {} {}", self.field, show(&self.from))?,
            Change::Changed => write!(
                f,
                "~ {} {} -> {}",
                self.field,
                show(&self.from),
                show(&self.to)
            )?,
        }
        if self.widens {
            let why = match self.field {
                "scope" => "the client may ask this",
                "redirect_uri" => "codes may be sent here",
                _ => "the client's answers serve another purpose",
            };
            write!(f, "  WIDENS: {why}")?;
        }
        Ok(())
    }
}

/// The clients with at least one change, by id.
pub(super) fn client_plans(old: &Policy, new: &Policy) -> Vec<ClientPlan> {
    let by_id = |policy: &Policy| -> BTreeMap<String, ApiClient> {
        policy
            .api_clients()
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect()
    };
    let (old, new) = (by_id(old), by_id(new));
    let mut ids: Vec<&String> = old.keys().chain(new.keys()).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| {
            let plan = diff_client(id, old.get(id), new.get(id));
            (!plan.items.is_empty()).then_some(plan)
        })
        .collect()
}

fn diff_client(id: &str, old: Option<&ApiClient>, new: Option<&ApiClient>) -> ClientPlan {
    let mut items = Vec::new();
    let scopes = |c: Option<&ApiClient>| -> Vec<String> {
        c.map(|c| c.scopes.iter().map(|s| s.as_str().to_owned()).collect())
            .unwrap_or_default()
    };
    let uris = |c: Option<&ApiClient>| -> Vec<String> {
        c.map(|c| c.redirect_uris.clone()).unwrap_or_default()
    };
    set_changes(&mut items, "scope", &scopes(old), &scopes(new));
    set_changes(&mut items, "redirect_uri", &uris(old), &uris(new));
    let purpose = |c: Option<&ApiClient>| c.map(|c| c.purpose.clone());
    let justification = |c: Option<&ApiClient>| c.and_then(|c| c.justification.clone());
    for (field, from, to, widens) in [
        ("purpose", purpose(old), purpose(new), true),
        (
            "justification",
            justification(old),
            justification(new),
            false,
        ),
    ] {
        if from != to {
            let change = match (&from, &to) {
                (None, _) => Change::Added,
                (_, None) => Change::Removed,
                _ => Change::Changed,
            };
            let widens = widens && to.is_some();
            items.push(ClientChange {
                change,
                field,
                from,
                to,
                widens,
            });
        }
    }
    let change = match (old, new) {
        (None, _) => Change::Added,
        (_, None) => Change::Removed,
        _ => Change::Changed,
    };
    ClientPlan {
        client: id.to_owned(),
        change,
        purpose: new.or(old).map(|c| c.purpose.clone()).unwrap_or_default(),
        items,
    }
}

/// Added values widen; removed ones do not.
fn set_changes(items: &mut Vec<ClientChange>, field: &'static str, old: &[String], new: &[String]) {
    for value in old.iter().filter(|v| !new.contains(v)) {
        items.push(ClientChange {
            change: Change::Removed,
            field,
            from: Some(value.clone()),
            to: None,
            widens: false,
        });
    }
    for value in new.iter().filter(|v| !old.contains(v)) {
        items.push(ClientChange {
            change: Change::Added,
            field,
            from: None,
            to: Some(value.clone()),
            widens: true,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::{Change, Policy, load_policy, plan};

    fn client(id: &str, scopes: &str, uris: &str, purpose: &str, extra: &str) -> String {
        format!(
            "[[api.client]]\nid = \"{id}\"\njwks_file = \"{id}.json\"\nredirect_uris = [{uris}]\n\
             scopes = [{scopes}]\npurpose = \"{purpose}\"\n{extra}"
        )
    }

    fn policy(clients: &[String]) -> Policy {
        load_policy("t.toml", &clients.concat()).unwrap()
    }

    const NV: &str = "\"number-verification:verify\"";
    const KYC: &str = "\"kyc-age-verification:verify\"";
    const SHARE: &str = "\"number-verification:device-phone-number:read\"";
    const CB: &str = "\"https://shop.test/cb\"";
    const FRAUD: &str = "dpv:FraudPreventionAndDetection";

    #[test]
    fn a_new_client_widens_by_everything_it_gets() {
        let old = Policy::empty();
        let new = policy(&[client("shop", NV, CB, FRAUD, "")]);
        let plan = plan(&old, &new);
        assert!(plan.widens());
        assert_eq!((plan.changes(), plan.widening_changes()), (3, 3));
        let text = plan.to_text();
        assert!(
            text.contains(
                "api client shop (dpv:FraudPreventionAndDetection, new client)\n  \
                 + scope number-verification:verify  WIDENS: the client may ask this\n  \
                 + redirect_uri https://shop.test/cb  WIDENS: codes may be sent here\n  \
                 + purpose dpv:FraudPreventionAndDetection  WIDENS: the client's answers serve \
                 another purpose\n"
            ),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
        assert_eq!(json["api_clients"][0]["client"], "shop");
        assert_eq!(json["api_clients"][0]["items"][0]["field"], "scope");
        // Backwards: removing it narrows.
        let back = crate::plan(&new, &old);
        assert!(!back.widens());
        assert_eq!(back.changes(), 3);
        assert_eq!(back.api_clients()[0].change, Change::Removed);
    }

    #[test]
    fn scopes_uris_and_purpose_widen_when_added_and_justification_is_neutral() {
        let base = policy(&[client("shop", NV, CB, FRAUD, "")]);
        let cases: [(String, usize, usize); 6] = [
            (client("shop", &format!("{NV}, {KYC}"), CB, FRAUD, ""), 1, 1),
            (client("shop", KYC, CB, FRAUD, ""), 2, 1),
            (
                client(
                    "shop",
                    NV,
                    &format!("{CB}, \"https://shop.test/2\""),
                    FRAUD,
                    "",
                ),
                1,
                1,
            ),
            (client("shop", NV, CB, "dpv:IdentityVerification", ""), 1, 1),
            (
                client("shop", NV, CB, FRAUD, "justification = \"why\"\n"),
                1,
                0,
            ),
            (
                client(
                    "shop",
                    &format!("{NV}, {SHARE}"),
                    CB,
                    FRAUD,
                    "justification = \"prefill\"\n",
                ),
                2,
                1,
            ),
        ];
        for (text, changes, widening) in cases {
            let plan = plan(&base, &policy(std::slice::from_ref(&text)));
            assert_eq!(
                (plan.changes(), plan.widening_changes()),
                (changes, widening),
                "{text}\n{}",
                plan.to_text()
            );
        }
        assert!(plan(&base, &base).is_empty());
        // Narrowing never widens.
        let narrower = policy(&[client("shop", NV, CB, FRAUD, "")]);
        let wider = policy(&[client("shop", &format!("{NV}, {KYC}"), CB, FRAUD, "")]);
        assert!(!plan(&wider, &narrower).widens());
    }

    #[test]
    fn a_renamed_client_is_a_new_client() {
        let old = policy(&[client("shop", NV, CB, FRAUD, "")]);
        let new = policy(&[client("shop-2", NV, CB, FRAUD, "")]);
        let plan = plan(&old, &new);
        assert!(plan.widens());
        let changes: Vec<(&str, Change)> = plan
            .api_clients()
            .iter()
            .map(|c| (c.client.as_str(), c.change))
            .collect();
        assert_eq!(
            changes,
            [("shop", Change::Removed), ("shop-2", Change::Added)]
        );
    }
}
