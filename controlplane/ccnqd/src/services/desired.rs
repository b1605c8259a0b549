//! What the host document wants of the bundled units, and the least actions that get
//! there: pure, so that every case is a unit test without a systemd.

use ccnq_api::ServiceAction;
use ccnq_systemd::ActiveState;
use std::collections::HashMap;

/// Whether a unit counts as running for the desired state: a unit on its way up counts,
/// so that a start is never sent twice.
pub(super) fn runs(state: &ActiveState) -> bool {
    matches!(
        state,
        ActiveState::Active
            | ActiveState::Activating
            | ActiveState::Reloading
            | ActiveState::Refreshing
    )
}

/// What the host document wants of one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub unit: String,
    pub running: bool,
    /// Why the document's word was not followed as written, if it was not.
    pub note: Option<String>,
}

/// The desired state of FreeSWITCH and CouchDB from a valid host document.
///
/// `services.couchdb.enabled: false` is not followed: this daemon reads its document
/// through the local CouchDB, so stopping it would cut the host off from the very
/// document that could turn it back on. CouchDB stays running and the note says so
/// (docs/decisions.md).
pub fn desired(host: &ccnq_model::Host, freeswitch_unit: &str, couchdb_unit: &str) -> Vec<Desired> {
    vec![
        Desired {
            unit: freeswitch_unit.to_owned(),
            running: host.freeswitch_runs(),
            note: None,
        },
        Desired {
            unit: couchdb_unit.to_owned(),
            running: true,
            note: (!host.services.couchdb.enabled).then(|| {
                "services.couchdb.enabled is false, but ccnqd follows its host document \
                 through this CouchDB: it stays running"
                    .to_owned()
            }),
        },
    ]
}

/// The least actions that make the units' states (`actual`, by unit) what `wanted`
/// says: start what should run and does not, stop what runs and should not. A unit
/// systemd does not have (`None`) gets no action: there is nothing to start.
pub fn least_actions(
    wanted: &[Desired],
    actual: &HashMap<String, Option<ActiveState>>,
) -> Vec<(String, ServiceAction)> {
    wanted
        .iter()
        .filter_map(|d| {
            let state = actual.get(&d.unit)?.as_ref()?;
            match (d.running, runs(state)) {
                (true, false) => Some((d.unit.clone(), ServiceAction::Start)),
                (false, true) => Some((d.unit.clone(), ServiceAction::Stop)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(doc: serde_json::Value) -> ccnq_model::Host {
        ccnq_model::validate(&doc, "sbc1.example.net")
            .expect("valid")
            .host
    }

    fn base(extra: serde_json::Value) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "_id": "host:sbc1.example.net", "type": "host", "host": "sbc1.example.net",
            "sip_domain_name": "a.example.net",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc
    }

    fn actual(pairs: &[(&str, Option<ActiveState>)]) -> HashMap<String, Option<ActiveState>> {
        pairs
            .iter()
            .map(|(u, s)| (u.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn server_only_wants_freeswitch_stopped_and_couchdb_running() {
        let d = desired(
            &host(base(serde_json::json!({"server_only": true}))),
            "freeswitch.service",
            "couchdb.service",
        );
        assert_eq!(
            d.iter()
                .map(|d| (d.unit.as_str(), d.running))
                .collect::<Vec<_>>(),
            [("freeswitch.service", false), ("couchdb.service", true)]
        );
        let d = desired(
            &host(base(
                serde_json::json!({"services": {"freeswitch": {"enabled": false}}}),
            )),
            "freeswitch.service",
            "couchdb.service",
        );
        assert!(!d[0].running);
        let d = desired(
            &host(base(serde_json::json!({}))),
            "fs.service",
            "db.service",
        );
        assert!(d[0].running && d[1].running && d[1].note.is_none());
    }

    #[test]
    fn couchdb_switched_off_stays_running_with_a_note() {
        let d = desired(
            &host(base(
                serde_json::json!({"services": {"couchdb": {"enabled": false}}}),
            )),
            "freeswitch.service",
            "couchdb.service",
        );
        assert!(d[1].running);
        assert!(d[1].note.as_deref().unwrap().contains("stays running"));
    }

    #[test]
    fn least_actions_start_what_should_run_and_stop_what_should_not() {
        let wanted = vec![
            Desired {
                unit: "fs.service".into(),
                running: false,
                note: None,
            },
            Desired {
                unit: "db.service".into(),
                running: true,
                note: None,
            },
        ];
        let a = least_actions(
            &wanted,
            &actual(&[
                ("fs.service", Some(ActiveState::Active)),
                ("db.service", Some(ActiveState::Failed)),
            ]),
        );
        assert_eq!(
            a,
            [
                ("fs.service".to_string(), ServiceAction::Stop),
                ("db.service".to_string(), ServiceAction::Start)
            ]
        );
        // Already right, on its way, or not installed: nothing.
        for states in [
            [Some(ActiveState::Inactive), Some(ActiveState::Active)],
            [Some(ActiveState::Failed), Some(ActiveState::Activating)],
            [None, None],
        ] {
            let a = least_actions(
                &wanted,
                &actual(&[
                    ("fs.service", states[0].clone()),
                    ("db.service", states[1].clone()),
                ]),
            );
            assert!(a.is_empty(), "{states:?}: {a:?}");
        }
    }
}
