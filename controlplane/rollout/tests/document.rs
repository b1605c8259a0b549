//! The rollout document's rules, each with the exact path and reason an operator sees,
//! and the driver's `progress` read back as written.

use ccnq_rollout::model::{self, HostProgress, Members, Outcome, Progress, RunState};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn base() -> Value {
    json!({
        "_id": "rollout:december",
        "type": "rollout",
        "version": "2026.12.1",
        "waves": [
            {"name": "canary", "hosts": ["SBC1.example.net"]},
            {"name": "tenth", "percent": 10},
            {"name": "all", "percent": 100}
        ],
        "halt": {"rolled_back": 2, "not_blessed_within_minutes": 30}
    })
}

fn errors_after(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut doc = base();
    edit(&mut doc);
    match model::validate(&doc) {
        Ok(r) => panic!("accepted: {r:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_valid_document_reads_with_its_defaults() {
    let r = model::validate(&base()).unwrap();
    assert_eq!(r.name, "december");
    assert_eq!(r.id(), "rollout:december");
    assert_eq!(r.version, "2026.12.1");
    assert_eq!(
        r.max_rebooting_per_site, 1,
        "one reboot per site unless told"
    );
    assert_eq!(r.hosts, None);
    assert_eq!(
        r.waves[0].members,
        Members::Hosts(vec!["sbc1.example.net".into()])
    );
    assert_eq!(r.waves[2].members, Members::Percent(100));
    assert_eq!(r.halt.rolled_back, 2);
    assert!(r.progress.is_none());
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let shown = errors_after(|d| {
        d["_id"] = json!("rollouts:x");
        d["version"] = json!("../x");
        d["max_rebooting_per_site"] = json!(0);
        d["halt"] = json!({"rolled_back": 1});
        d["hosts"] = json!(["ok.example.net", "bad_name"]);
        d["max_reboots"] = json!(3);
    });
    assert_eq!(
        shown,
        [
            "max_reboots: unknown field",
            "_id: expected \"rollout:<name>\", got \"rollouts:x\"",
            "version: \"../x\" contains '/': versions allow only A-Z, a-z, 0-9, '.', '_', '+', '~' and '-'",
            "hosts[1]: \"bad_name\" is not a valid host name (label \"bad_name\")",
            "max_rebooting_per_site: expected a positive integer, got 0",
            "halt.not_blessed_within_minutes: required field is missing",
        ]
    );
}

#[test]
fn waves_are_one_kind_each_named_once_with_growing_percents() {
    assert_eq!(
        errors_after(|d| d["waves"] = json!([])),
        ["waves: no wave: name at least one"]
    );
    assert_eq!(
        errors_after(
            |d| d["waves"][1] = json!({"name": "x", "percent": 10, "hosts": ["a.example.net"]})
        ),
        ["waves[1]: both hosts and percent given: a wave is one or the other"]
    );
    assert_eq!(
        errors_after(|d| d["waves"][2]["percent"] = json!(10)),
        ["waves[2].percent: 10 is not above waves[1]'s 10: percents are cumulative shares of the fleet, so each wave's must be larger"]
    );
    assert_eq!(
        errors_after(|d| d["waves"][2]["percent"] = json!(101)),
        ["waves[2].percent: expected an integer in 1..=100, got 101"]
    );
    assert_eq!(
        errors_after(|d| d["waves"][1]["name"] = json!("canary")),
        ["waves[1].name: \"canary\" names another wave too"]
    );
    assert_eq!(
        errors_after(|d| d["waves"][1] = json!({"name": "again", "hosts": ["sbc1.EXAMPLE.net"]})),
        ["waves[1].hosts: \"sbc1.example.net\" is named by waves[0] already"]
    );
    assert_eq!(
        errors_after(|d| d["waves"][0]["hosts"] = json!(["a.example.net", "A.example.net"])),
        ["waves[0].hosts[1]: \"A.example.net\" appears twice"]
    );
    assert_eq!(
        errors_after(|d| d["waves"][0]["size"] = json!(1)),
        ["waves[0].size: unknown field"]
    );
}

#[test]
fn the_type_and_halt_are_required() {
    assert_eq!(
        errors_after(|d| {
            d.as_object_mut().unwrap().remove("halt");
            d["type"] = json!("host");
        }),
        [
            "type: expected \"rollout\", got \"host\"",
            "halt: required: {\"rolled_back\": N, \"not_blessed_within_minutes\": M}"
        ]
    );
}

#[test]
fn progress_round_trips_and_a_bad_one_names_its_field() {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(1_796_000_000_123_456_789).unwrap();
    let mut hosts = BTreeMap::new();
    hosts.insert(
        "a.example.net".to_string(),
        HostProgress {
            released_at: Some(at),
            outcome: Some(Outcome::RolledBack),
        },
    );
    hosts.insert(
        "b.example.net".to_string(),
        HostProgress {
            released_at: None,
            outcome: Some(Outcome::Blessed),
        },
    );
    let progress = Progress {
        state: RunState::Running,
        wave: 1,
        hosts,
        halted_reason: None,
        updated_at: at,
    };
    let r = model::validate(&base()).unwrap();
    let doc = model::with_progress(&r, &progress);
    assert_eq!(
        doc["progress"]["hosts"]["a.example.net"]["outcome"],
        "rolled-back"
    );
    assert_eq!(
        doc["progress"]["updated_at"],
        "2026-11-30T00:53:20.123456789Z"
    );
    assert_eq!(model::validate(&doc).unwrap().progress, Some(progress));

    let errors = errors_after(|d| {
        d["progress"] = json!({"state": "running", "wave": 0, "updated_at": "2026-12-02T04:00:00Z",
            "hosts": {"a.example.net": {"outcome": "exploded"}}});
    });
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("progress.hosts.a.example.net.outcome: unknown variant `exploded`"),
        "{errors:?}"
    );
    assert_eq!(
        errors_after(|d| d["progress"] =
            json!({"state": "running", "wave": 3, "updated_at": "2026-12-02T04:00:00Z"})),
        ["progress.wave: 3 is past the last wave (3 waves)"]
    );
}
