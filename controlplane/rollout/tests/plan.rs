//! The plan's rules, pass by pass, without a database: waves by name and by percent,
//! the whole wave staged ahead, the per-site limit, the halt rules, resuming from the
//! recorded progress, and hosts that are missing, invalid, already there or adopted.
//!
//! The hosts here are plain values the tests set (a status per host), not a simulation
//! of ccnqd: each test says exactly what each host reports before each pass.

use ccnq_api::{Slot, UpgradeState, UpgradeStatus};
use ccnq_model::ImageSpec;
use ccnq_rollout::model::{self, Outcome};
use ccnq_rollout::{plan, Event, Fleet, HostView, Plan, Rollout, RunState, StatusView};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

const V: &str = "2026.12.1";
const OLD: &str = "2026.11.2";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap()
}

fn rollout(extra: Value) -> Rollout {
    let mut doc = json!({
        "_id": "rollout:december", "_rev": "1-a", "type": "rollout", "version": V,
        "waves": [{"name": "all", "percent": 100}],
        "max_rebooting_per_site": 1,
        "halt": {"rolled_back": 2, "not_blessed_within_minutes": 30}
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    model::validate(&doc).unwrap()
}

/// A fleet on the old version, idle, with no image named: `(fqdn, site)`.
fn fleet(hosts: &[(&str, &str)]) -> Fleet {
    let mut f = Fleet::default();
    for (fqdn, site) in hosts {
        f.hosts.insert(
            fqdn.to_string(),
            HostView {
                fqdn: fqdn.to_string(),
                site: site.to_string(),
                image: None,
                invalid: None,
            },
        );
        report(&mut f, fqdn, OLD, UpgradeState::Idle, None);
    }
    f
}

fn report(f: &mut Fleet, fqdn: &str, booted: &str, state: UpgradeState, target: Option<&str>) {
    f.statuses.insert(
        fqdn.to_string(),
        StatusView::Upgrade(UpgradeStatus {
            booted_version: booted.into(),
            booted_slot: Slot::A,
            other_slot_version: None,
            state,
            target_version: target.map(str::to_owned),
            reason: (state == UpgradeState::RolledBack).then(|| "health check failed".into()),
            since: "2026-12-02T04:00:00Z".into(),
            progress: None,
        }),
    );
}

/// What the hosts' documents become once the driver wrote them, and the progress
/// recorded, as the driver does it.
fn apply(r: &mut Rollout, f: &mut Fleet, p: &Plan) {
    for w in &p.writes {
        f.hosts.get_mut(&w.fqdn).unwrap().image = Some(w.image.clone());
    }
    r.progress = Some(p.progress.clone());
}

fn held() -> Option<ImageSpec> {
    Some(ImageSpec {
        version: V.into(),
        hold: true,
        window: None,
    })
}

fn released() -> Option<ImageSpec> {
    Some(ImageSpec {
        version: V.into(),
        hold: false,
        window: None,
    })
}

fn released_hosts(p: &Plan) -> Vec<String> {
    p.events
        .iter()
        .filter_map(|e| match e {
            Event::Released { fqdn, .. } => Some(fqdn.clone()),
            _ => None,
        })
        .collect()
}

/// Each host with a held document reports `waiting-wave`, as a host that wrote its slot.
fn all_written(f: &mut Fleet) {
    let held: Vec<String> = f
        .hosts
        .values()
        .filter(|h| h.image == held())
        .map(|h| h.fqdn.clone())
        .collect();
    for h in held {
        report(f, &h, OLD, UpgradeState::WaitingWave, Some(V));
    }
}

#[test]
fn the_whole_wave_is_staged_with_hold_and_nobody_is_released_before_writing_its_slot() {
    let mut r = rollout(json!({}));
    let mut f = fleet(&[("a.example.net", "paris"), ("b.example.net", "lyon")]);
    let p = plan(&r, &f, t0());
    assert_eq!(p.state(), RunState::Running);
    assert_eq!(p.writes.len(), 2);
    assert!(p.writes.iter().all(|w| Some(&w.image) == held().as_ref()));
    assert!(matches!(p.events[0], Event::Started { .. }));
    assert!(released_hosts(&p).is_empty());
    apply(&mut r, &mut f, &p);
    // Still downloading: nothing to do, nothing to write.
    report(
        &mut f,
        "a.example.net",
        OLD,
        UpgradeState::Downloading,
        Some(V),
    );
    let p = plan(&r, &f, t0());
    assert!(p.writes.is_empty() && p.events.is_empty(), "{p:?}");
    assert_eq!(
        p.progress,
        *r.progress.as_ref().unwrap(),
        "nothing changed, nothing recorded"
    );
    assert_eq!(p.waiting["a.example.net"], format!("downloading {V}"));
    assert_eq!(p.waiting["b.example.net"], "idle");
    // Written: both released (one per site, two sites).
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    assert_eq!(released_hosts(&p), ["a.example.net", "b.example.net"]);
    assert!(p
        .writes
        .iter()
        .all(|w| Some(&w.image) == released().as_ref()));
}

#[test]
fn waves_by_name_come_first_then_percent_in_order() {
    let hosts: Vec<(String, &str)> = (0..20)
        .map(|i| (format!("h{i}.example.net"), "s"))
        .collect();
    let refs: Vec<(&str, &str)> = hosts.iter().map(|(h, s)| (h.as_str(), *s)).collect();
    let mut f = fleet(&refs);
    let mut r = rollout(json!({
        "waves": [{"name": "canary", "hosts": ["h13.example.net"]},
                  {"name": "rest", "percent": 100}],
        "max_rebooting_per_site": 5
    }));
    let p = plan(&r, &f, t0());
    let staged: Vec<&str> = p.writes.iter().map(|w| w.fqdn.as_str()).collect();
    assert_eq!(
        staged,
        ["h13.example.net"],
        "only the canary wave is staged"
    );
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    assert_eq!(released_hosts(&p), ["h13.example.net"]);
    apply(&mut r, &mut f, &p);
    // Nothing of the next wave moves until the canary is blessed.
    report(
        &mut f,
        "h13.example.net",
        OLD,
        UpgradeState::Rebooting,
        Some(V),
    );
    let p = plan(&r, &f, t0());
    assert!(p.writes.is_empty());
    report(&mut f, "h13.example.net", V, UpgradeState::Blessed, Some(V));
    let p = plan(&r, &f, t0());
    assert!(p.events.contains(&Event::WaveDone {
        index: 0,
        name: "canary".into()
    }));
    assert_eq!(p.progress.wave, 1);
    assert_eq!(
        p.writes.len(),
        19,
        "the next wave is staged in the same pass"
    );
    assert!(p.writes.iter().all(|w| w.fqdn != "h13.example.net"));
    assert_eq!(
        p.progress.hosts["h13.example.net"].outcome,
        Some(Outcome::Blessed)
    );
}

#[test]
fn percent_waves_take_cumulative_shares_by_seed() {
    let hosts: Vec<(String, &str)> = (0..60)
        .map(|i| (format!("h{i}.example.net"), "s"))
        .collect();
    let refs: Vec<(&str, &str)> = hosts.iter().map(|(h, s)| (h.as_str(), *s)).collect();
    let f = fleet(&refs);
    let r = rollout(json!({"waves": [{"name": "quarter", "percent": 25},
                                     {"name": "all", "percent": 100}]}));
    let p = plan(&r, &f, t0());
    for w in &p.writes {
        assert!(
            ccnq_rollout::waves::within(ccnq_rollout::waves::seed(&w.fqdn), 25),
            "{}",
            w.fqdn
        );
    }
    let expected = hosts
        .iter()
        .filter(|(h, _)| ccnq_rollout::waves::within(ccnq_rollout::waves::seed(h), 25))
        .count();
    assert_eq!(p.writes.len(), expected);
    assert!(expected > 0 && expected < 60);
}

#[test]
fn a_site_never_has_more_released_and_unfinished_hosts_than_the_limit() {
    let mut r = rollout(json!({"max_rebooting_per_site": 2}));
    let mut f = fleet(&[
        ("p1.example.net", "paris"),
        ("p2.example.net", "paris"),
        ("p3.example.net", "paris"),
        ("p4.example.net", "paris"),
        ("l1.example.net", "lyon"),
    ]);
    let p = plan(&r, &f, t0());
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    assert_eq!(
        released_hosts(&p),
        ["l1.example.net", "p1.example.net", "p2.example.net"]
    );
    assert_eq!(
        p.waiting["p3.example.net"],
        "ready; site paris has 2 rebooting (limit 2)"
    );
    apply(&mut r, &mut f, &p);
    // Rebooting still: the limit holds, however many passes.
    for h in ["p1.example.net", "p2.example.net"] {
        report(&mut f, h, OLD, UpgradeState::Rebooting, Some(V));
    }
    for _ in 0..3 {
        let p = plan(&r, &f, t0() + Duration::minutes(1));
        assert!(released_hosts(&p).is_empty());
    }
    // One blessed: exactly one more of paris goes.
    report(&mut f, "p1.example.net", V, UpgradeState::Blessed, Some(V));
    let p = plan(&r, &f, t0() + Duration::minutes(2));
    assert_eq!(released_hosts(&p), ["p3.example.net"]);
    assert!(p.events.contains(&Event::Released {
        fqdn: "p3.example.net".into(),
        site: "paris".into(),
        rebooting: 2,
        limit: 2
    }));
}

#[test]
fn two_rollbacks_halt_and_a_halt_writes_no_host_document() {
    let mut r = rollout(json!({"max_rebooting_per_site": 3}));
    let mut f = fleet(&[
        ("a.example.net", "s"),
        ("b.example.net", "s"),
        ("c.example.net", "s"),
        ("d.example.net", "s"),
    ]);
    let p = plan(&r, &f, t0());
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    assert_eq!(released_hosts(&p).len(), 3);
    apply(&mut r, &mut f, &p);
    report(
        &mut f,
        "a.example.net",
        OLD,
        UpgradeState::RolledBack,
        Some(V),
    );
    let p = plan(&r, &f, t0());
    assert_eq!(
        p.state(),
        RunState::Running,
        "one rollback is below the rule's 2"
    );
    // a's slot is free again: d goes.
    assert_eq!(released_hosts(&p), ["d.example.net"]);
    apply(&mut r, &mut f, &p);
    report(
        &mut f,
        "b.example.net",
        OLD,
        UpgradeState::RolledBack,
        Some(V),
    );
    let p = plan(&r, &f, t0());
    assert_eq!(p.state(), RunState::Halted);
    assert!(p.writes.is_empty());
    let reason = p.progress.halted_reason.clone().unwrap();
    assert!(
        reason.contains("2 host(s) of wave 0 all rolled back (a.example.net, b.example.net)"),
        "{reason}"
    );
    apply(&mut r, &mut f, &p);
    // Halted stays halted: whatever the hosts say next, nothing is written.
    report(&mut f, "c.example.net", V, UpgradeState::Blessed, Some(V));
    let again = plan(&r, &f, t0() + Duration::hours(5));
    assert!(again.writes.is_empty() && again.events.is_empty());
    assert_eq!(again.progress, p.progress);
}

#[test]
fn a_host_not_blessed_within_the_minutes_of_its_release_halts() {
    let mut r = rollout(json!({}));
    let mut f = fleet(&[("a.example.net", "s")]);
    let p = plan(&r, &f, t0());
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    apply(&mut r, &mut f, &p);
    report(
        &mut f,
        "a.example.net",
        OLD,
        UpgradeState::Rebooting,
        Some(V),
    );
    let p = plan(&r, &f, t0() + Duration::minutes(30));
    assert_eq!(
        p.state(),
        RunState::Running,
        "exactly 30 minutes is within 30 minutes"
    );
    let p = plan(&r, &f, t0() + Duration::minutes(31));
    assert_eq!(p.state(), RunState::Halted);
    assert_eq!(
        p.progress.hosts["a.example.net"].outcome,
        Some(Outcome::TimedOut)
    );
    assert_eq!(
        p.progress.halted_reason.as_deref(),
        Some("a.example.net was not blessed within 30 min of its release")
    );
}

#[test]
fn a_rollback_below_the_rule_lets_the_wave_finish_and_the_last_wave_finishes_the_rollout() {
    let mut r = rollout(
        json!({"waves": [{"name": "one", "hosts": ["a.example.net", "b.example.net"]},
                                         {"name": "two", "hosts": ["c.example.net"]}],
                               "max_rebooting_per_site": 2}),
    );
    let mut f = fleet(&[
        ("a.example.net", "s"),
        ("b.example.net", "s"),
        ("c.example.net", "s"),
    ]);
    let p = plan(&r, &f, t0());
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    apply(&mut r, &mut f, &p);
    report(
        &mut f,
        "a.example.net",
        OLD,
        UpgradeState::RolledBack,
        Some(V),
    );
    report(&mut f, "b.example.net", V, UpgradeState::Blessed, Some(V));
    let p = plan(&r, &f, t0());
    assert_eq!(p.progress.wave, 1);
    assert_eq!(
        p.writes.iter().map(|w| w.fqdn.as_str()).collect::<Vec<_>>(),
        ["c.example.net"]
    );
    apply(&mut r, &mut f, &p);
    report(&mut f, "c.example.net", V, UpgradeState::Idle, None);
    let p = plan(&r, &f, t0());
    assert_eq!(p.state(), RunState::Done);
    assert_eq!(p.events.last(), Some(&Event::Done));
    assert!(p.events.contains(&Event::AlreadyOn {
        fqdn: "c.example.net".into()
    }));
    // c was held, never released, and already runs the version: its hold goes.
    assert_eq!(p.writes.len(), 1);
    assert_eq!(Some(&p.writes[0].image), released().as_ref());
}

#[test]
fn a_host_already_on_the_version_is_done_without_a_release_and_its_document_names_it() {
    let mut f = fleet(&[("a.example.net", "s"), ("b.example.net", "s")]);
    report(&mut f, "a.example.net", V, UpgradeState::Blessed, Some(V));
    let r = rollout(json!({}));
    let p = plan(&r, &f, t0());
    assert_eq!(
        p.progress.hosts["a.example.net"].outcome,
        Some(Outcome::Blessed)
    );
    assert_eq!(p.progress.hosts["a.example.net"].released_at, None);
    let a = p.writes.iter().find(|w| w.fqdn == "a.example.net").unwrap();
    assert_eq!(Some(&a.image), released().as_ref(), "pinned, never held");
    assert!(p.events.contains(&Event::Pinned {
        fqdn: "a.example.net".into()
    }));
}

#[test]
fn a_host_missing_its_status_is_staged_but_never_released_and_holds_its_wave() {
    let mut r = rollout(json!({}));
    let mut f = fleet(&[("a.example.net", "s"), ("b.example.net", "t")]);
    f.statuses.remove("b.example.net");
    let p = plan(&r, &f, t0());
    assert_eq!(p.writes.len(), 2, "both are staged: b may report later");
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    f.statuses.remove("b.example.net");
    let p = plan(&r, &f, t0());
    assert_eq!(released_hosts(&p), ["a.example.net"]);
    apply(&mut r, &mut f, &p);
    report(&mut f, "a.example.net", V, UpgradeState::Blessed, Some(V));
    let p = plan(&r, &f, t0() + Duration::hours(3));
    assert_eq!(
        p.state(),
        RunState::Running,
        "never released, so never timed out"
    );
    assert_eq!(p.waiting["b.example.net"], "no status document");
    assert!(!p.progress.hosts.contains_key("b.example.net"));
}

#[test]
fn resuming_from_the_recorded_progress_decides_what_the_first_driver_would_have() {
    // Two drivers over the same story: one keeps its progress in memory, the other
    // writes it into the document and reads it back (a restart) before every pass.
    let names: Vec<(String, &str)> = (0..9)
        .map(|i| (format!("h{i}.example.net"), ["x", "y", "z"][i % 3]))
        .collect();
    let refs: Vec<(&str, &str)> = names.iter().map(|(h, s)| (h.as_str(), *s)).collect();
    let extra = json!({"waves": [{"name": "one", "hosts": ["h0.example.net", "h4.example.net"]},
                                 {"name": "two", "percent": 100}]});
    let (mut kept, mut restarted) = (rollout(extra.clone()), rollout(extra));
    let (mut fa, mut fb) = (fleet(&refs), fleet(&refs));
    let mut now = t0();
    for step in 0..40 {
        let a = plan(&kept, &fa, now);
        let reread = match &restarted.progress {
            None => restarted.clone(),
            Some(p) => model::validate(&model::with_progress(&restarted, p)).unwrap(),
        };
        let b = plan(&reread, &fb, now);
        assert_eq!(a, b, "step {step}");
        apply(&mut kept, &mut fa, &a);
        apply(&mut restarted, &mut fb, &b);
        if a.state() != RunState::Running {
            assert_eq!(a.state(), RunState::Done);
            return;
        }
        // The hosts move one step: written when held, blessed once released.
        for f in [&mut fa, &mut fb] {
            all_written(f);
            let released: Vec<String> = f
                .hosts
                .values()
                .filter(|h| h.image == released())
                .map(|h| h.fqdn.clone())
                .collect();
            for h in released {
                report(f, &h, V, UpgradeState::Blessed, Some(V));
            }
        }
        now += Duration::seconds(7);
    }
    panic!("the rollout did not finish in 40 passes");
}

#[test]
fn released_in_progress_but_still_held_is_released_again_and_a_foreign_release_is_counted() {
    let mut r = rollout(json!({}));
    let mut f = fleet(&[
        ("a.example.net", "s"),
        ("b.example.net", "s"),
        ("c.example.net", "s"),
    ]);
    let p = plan(&r, &f, t0());
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    assert_eq!(released_hosts(&p), ["a.example.net"]);
    // The driver was killed after recording progress, before writing a's document.
    r.progress = Some(p.progress.clone());
    let p = plan(&r, &f, t0());
    assert_eq!(
        p.events,
        [Event::ReleasedAgain {
            fqdn: "a.example.net".into()
        }]
    );
    assert_eq!(p.writes.len(), 1);
    assert!(released_hosts(&p).is_empty(), "a holds the site's one slot");

    // Another fleet: an operator released b by hand; the rollout counts it.
    let mut r = rollout(json!({"hosts": ["a.example.net", "b.example.net"]}));
    let mut f = fleet(&[
        ("a.example.net", "s"),
        ("b.example.net", "s"),
        ("c.example.net", "s"),
    ]);
    f.hosts.get_mut("b.example.net").unwrap().image = released();
    let p = plan(&r, &f, t0());
    assert!(p.events.contains(&Event::Adopted {
        fqdn: "b.example.net".into()
    }));
    assert!(
        p.writes.iter().all(|w| w.fqdn != "c.example.net"),
        "outside the filter"
    );
    apply(&mut r, &mut f, &p);
    all_written(&mut f);
    let p = plan(&r, &f, t0());
    assert!(released_hosts(&p).is_empty(), "b takes the slot");
}

#[test]
fn an_invalid_host_document_or_a_missing_host_halts_before_anything_is_written() {
    let mut f = fleet(&[("a.example.net", "s"), ("b.example.net", "s")]);
    f.hosts.get_mut("b.example.net").unwrap().invalid = Some("sip_domain_name: required".into());
    let p = plan(&rollout(json!({})), &f, t0());
    assert_eq!(p.state(), RunState::Halted);
    assert!(p.writes.is_empty());
    assert_eq!(
        p.progress.halted_reason.as_deref(),
        Some("host:b.example.net is invalid: sip_domain_name: required")
    );
    let f = fleet(&[("a.example.net", "s")]);
    let p = plan(
        &rollout(json!({"hosts": ["a.example.net", "z.example.net"]})),
        &f,
        t0(),
    );
    assert_eq!(
        p.progress.halted_reason.as_deref(),
        Some("hosts names z.example.net, which has no host document")
    );
    let p = plan(
        &rollout(json!({"waves": [{"name": "c", "hosts": ["z.example.net"]}]})),
        &f,
        t0(),
    );
    assert_eq!(
        p.progress.halted_reason.as_deref(),
        Some("wave 0 c names z.example.net, which has no host document")
    );
}
