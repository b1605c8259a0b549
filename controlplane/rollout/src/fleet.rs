//! The fleet as the central database shows it: each host's document read through the
//! host model, each host's `status:` document read through the upgrade contract.
//!
//! Pure: the driver and `ccnqctl fleet status` hand it the raw documents they fetched.
//! A document that does not validate is kept, with its first errors, rather than left
//! out: a host silently missing from a rollout would look like a finished one.

use ccnq_api::UpgradeStatus;
use ccnq_model::{ImageSpec, DEFAULT_SITE};
use serde_json::Value;
use std::collections::BTreeMap;

/// One `host:<fqdn>` document, as far as a rollout cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// Lower-cased.
    pub fqdn: String,
    pub site: String,
    pub image: Option<ImageSpec>,
    /// Why the document is refused (its first errors), if it is.
    pub invalid: Option<String>,
}

/// What a host's `status:<fqdn>` says of its upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusView {
    Upgrade(UpgradeStatus),
    /// A status document with no `upgrade` part: a host whose daemon does not report
    /// upgrades (older than the contract).
    NoUpgrade,
    /// An `upgrade` part that breaks the contract, with the field and the reason.
    Unreadable(String),
}

/// Every host and status document, by lower-cased FQDN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    pub hosts: BTreeMap<String, HostView>,
    pub statuses: BTreeMap<String, StatusView>,
}

impl Fleet {
    /// From the `host:*` and `status:*` documents as CouchDB returns them.
    pub fn from_documents(hosts: &[Value], statuses: &[Value]) -> Fleet {
        let mut fleet = Fleet::default();
        for doc in hosts {
            if let Some(view) = host_view(doc) {
                fleet.hosts.insert(view.fqdn.clone(), view);
            }
        }
        for doc in statuses {
            let Some(fqdn) = doc
                .get("_id")
                .and_then(Value::as_str)
                .and_then(|id| id.strip_prefix("status:"))
            else {
                continue;
            };
            fleet
                .statuses
                .insert(fqdn.to_ascii_lowercase(), status_view(doc));
        }
        fleet
    }
}

/// Reads one host document; `None` if its id is not `host:<something>`.
pub fn host_view(doc: &Value) -> Option<HostView> {
    let fqdn = doc.get("_id")?.as_str()?.strip_prefix("host:")?;
    Some(match ccnq_model::validate(doc, fqdn) {
        Ok(v) => HostView {
            fqdn: fqdn.to_ascii_lowercase(),
            site: v.host.site,
            image: v.host.image,
            invalid: None,
        },
        Err(errors) => {
            let shown: Vec<String> = errors.iter().take(3).map(ToString::to_string).collect();
            let more = errors.len().saturating_sub(3);
            HostView {
                fqdn: fqdn.to_ascii_lowercase(),
                // The site still counts towards the limit when readable.
                site: doc
                    .get("site")
                    .and_then(Value::as_str)
                    .unwrap_or(DEFAULT_SITE)
                    .to_owned(),
                image: None,
                invalid: Some(if more > 0 {
                    format!("{} (and {more} more)", shown.join("; "))
                } else {
                    shown.join("; ")
                }),
            }
        }
    })
}

/// Reads the `upgrade` part of a status document, naming the field that breaks the
/// contract (`upgrade.state: unknown variant …`).
pub fn status_view(doc: &Value) -> StatusView {
    match doc.get("upgrade") {
        None | Some(Value::Null) => StatusView::NoUpgrade,
        Some(u) => match serde_path_to_error::deserialize::<_, UpgradeStatus>(u) {
            Ok(s) => StatusView::Upgrade(s),
            Err(e) => {
                let at = e.path().to_string();
                let path = if at == "." {
                    "upgrade".to_owned()
                } else {
                    format!("upgrade.{at}")
                };
                StatusView::Unreadable(format!("{path}: {}", e.into_inner()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(fqdn: &str) -> Value {
        json!({"_id": format!("host:{fqdn}"), "type": "host", "host": fqdn, "server_only": true})
    }

    #[test]
    fn hosts_are_read_through_the_model_and_invalid_ones_kept_with_their_errors() {
        let mut bad = host("b.example.net");
        bad["site"] = json!("lyon");
        bad["image"] = json!({"version": "1", "hold": "no"});
        let mut good = host("A.example.net");
        good["_id"] = json!("host:A.example.net");
        good["image"] = json!({"version": "2", "hold": true});
        let fleet = Fleet::from_documents(&[good, bad, json!({"_id": "hostless"})], &[]);
        let a = &fleet.hosts["a.example.net"];
        assert_eq!(a.site, "default");
        assert_eq!(
            a.image.as_ref().map(|i| (i.version.as_str(), i.hold)),
            Some(("2", true))
        );
        let b = &fleet.hosts["b.example.net"];
        assert_eq!(b.site, "lyon");
        assert_eq!(
            b.invalid.as_deref(),
            Some("image.hold: expected true or false, got a string")
        );
        assert_eq!(fleet.hosts.len(), 2);
    }

    #[test]
    fn a_status_is_read_through_the_contract_naming_the_bad_field() {
        let ok = status_view(&json!({"upgrade": {
            "booted_version": "1", "booted_slot": "b", "state": "waiting-wave",
            "target_version": "2", "since": "2026-12-02T04:00:00Z"}}));
        assert!(matches!(ok, StatusView::Upgrade(ref u) if u.is_about("2")));
        assert_eq!(status_view(&json!({"state": "ok"})), StatusView::NoUpgrade);
        let StatusView::Unreadable(why) = status_view(&json!({"upgrade": {
            "booted_version": "1", "booted_slot": "c", "state": "idle", "since": "x"}}))
        else {
            panic!("accepted a slot c")
        };
        assert!(
            why.starts_with("upgrade.booted_slot: unknown variant `c`"),
            "{why}"
        );
    }
}
