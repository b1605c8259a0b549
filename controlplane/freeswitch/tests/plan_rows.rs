//! One test per row of the spec's table "What a change must cost", and combinations:
//! each checks the exact plan, and that the plan carried out on the FreeSWITCH model
//! (`fs_model`, derived from the recorded transcripts) reaches the state a fresh start
//! on the new files would have.

mod common;

use ccnq_freeswitch::fs_model::ModelFreeswitch;
use ccnq_freeswitch::render::{ACL_PATH, EVENT_SOCKET_PATH, VARS_PATH, VOLUME_DIR};
use ccnq_freeswitch::{plan, plan_from, render, Action, Cost, InForce, Plan, Snapshot, Target};
use common::{doc, host, rendering, secrets, spec_example};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;

/// The plan from `old` to `new`, checked against the FreeSWITCH model.
fn plan_between(old: &Value, new: &Value) -> Plan {
    let (old_h, new_h) = (host(old), host(new));
    let (old_r, new_r) = (rendering(&old_h), rendering(&new_h));
    let p = plan(
        Some(Snapshot {
            host: &old_h,
            rendering: &old_r,
        }),
        Snapshot {
            host: &new_h,
            rendering: &new_r,
        },
        Path::new(VOLUME_DIR),
    );
    let mut fs = ModelFreeswitch::expected(&old_r);
    fs.apply_plan(&p, &new_r.tree)
        .unwrap_or_else(|e| panic!("plan refused by the model: {e}\n{p}"));
    assert_eq!(fs, ModelFreeswitch::expected(&new_r), "plan:\n{p}");
    p
}

fn actions(p: &Plan) -> Vec<Action> {
    p.actions().cloned().collect()
}

/// Apply `f` to a copy of the spec's example.
fn spec_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut d = spec_example();
    f(&mut d);
    d
}

fn write(paths: &[&str]) -> Action {
    Action::WriteFiles {
        write: paths.iter().map(|p| p.to_string()).collect(),
        remove: vec![],
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn stop(p: &str) -> Action {
    Action::StopProfile { profile: p.into() }
}
fn rescan(p: &str) -> Action {
    Action::RescanProfile { profile: p.into() }
}
fn restart(p: &str, a: &str) -> Action {
    Action::RestartProfile {
        profile: p.into(),
        bind: addr(a),
    }
}
fn start(p: &str, a: &str) -> Action {
    Action::StartProfile {
        profile: p.into(),
        bind: addr(a),
    }
}
fn confirm(p: &str, a: &str) -> Action {
    Action::ConfirmProfile {
        profile: p.into(),
        bind: addr(a),
    }
}

/// Two entries `a` and `b`, on 192.0.2.10.
fn two_entries() -> Value {
    doc(json!({ "sip_profiles": {
        "a": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5060, "ingress_acl": ["10.0.0.1"] },
        "b": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5070, "ingress_acl": ["10.0.0.2"] }
    }}))
}

fn set(d: &mut Value, path: &[&str], v: Value) {
    let mut cur = d;
    for k in &path[..path.len() - 1] {
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(k.to_string())
            .or_insert(json!({}));
    }
    cur.as_object_mut()
        .expect("object")
        .insert(path[path.len() - 1].to_string(), v);
}

#[test]
fn row_nothing_renders_differently_is_an_empty_plan() {
    let base = spec_example();
    let p = plan_between(&base, &base);
    assert!(p.is_empty());
    assert_eq!(p.cost, Cost::NoEffect);
    assert_eq!(p.to_string(), "nothing to do — no effect on calls\n");
    // Changes that render the same: traces, an explicit default, a disabled entry.
    for change in [
        spec_with(|d| set(d, &["traces", "ringsize"], json!(10))),
        spec_with(|d| {
            set(
                d,
                &["sip_profiles", "test", "egress_sip_port"],
                json!(15200),
            )
        }),
        spec_with(|d| set(d, &["sip_profiles", "test", "timer_t1"], json!(250))),
        spec_with(|d| {
            set(
                d,
                &["sip_profiles", "off"],
                json!({ "ingress_sip_ip": "192.0.2.1", "ingress_sip_port": 7000, "disabled": true }),
            )
        }),
    ] {
        assert!(plan_between(&base, &change).is_empty(), "{change}");
    }
}

#[test]
fn row_acl_only_writes_reloadxml_then_reloadacl() {
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "test", "ingress_acl"],
            json!(["198.51.100.53/32", "198.51.100.54/32"]),
        )
    });
    let p = plan_between(&spec_example(), &new);
    assert_eq!(
        actions(&p),
        [write(&[ACL_PATH]), Action::ReloadXml, Action::ReloadAcl]
    );
    assert_eq!(p.cost, Cost::Reload);
    assert!(
        p.to_string()
            .contains("reloadacl — reload, no call dropped\n"),
        "{p}"
    );
}

#[test]
fn row_profile_setting_rescans_exactly_the_changed_profiles() {
    let old = two_entries();
    let mut new = old.clone();
    set(
        &mut new,
        &["sip_profiles", "b", "inbound_codec"],
        json!("PCMU"),
    );
    let p = plan_between(&old, &new);
    assert_eq!(
        actions(&p),
        [
            write(&["sip_profiles/b-egress.xml", "sip_profiles/b-ingress.xml"]),
            Action::ReloadXml,
            rescan("b-egress"),
            rescan("b-ingress"),
        ]
    );
    assert_eq!(p.cost, Cost::Reload);
}

#[test]
fn row_bind_change_restarts_that_profile_and_confirms() {
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "test", "egress_sip_port"],
            json!(15201),
        )
    });
    let p = plan_between(&spec_example(), &new);
    assert_eq!(
        actions(&p),
        [
            write(&["sip_profiles/test-egress.xml"]),
            Action::ReloadXml,
            restart("test-egress", "198.51.100.52:15201"),
            confirm("test-egress", "198.51.100.52:15201"),
        ]
    );
    assert_eq!(
        p.cost,
        Cost::DropsCalls {
            profiles: vec!["test-egress".into()]
        }
    );
    // The ingress port moves the defaulted egress port with it: both restart.
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "test", "ingress_sip_port"],
            json!(5300),
        )
    });
    let p = plan_between(&spec_example(), &new);
    let restarts: Vec<_> = p
        .actions()
        .filter(|a| matches!(a, Action::RestartProfile { .. }))
        .cloned()
        .collect();
    assert_eq!(
        restarts,
        [
            restart("test-egress", "198.51.100.52:15300"),
            restart("test-ingress", "198.51.100.52:5300")
        ]
    );
    // An IP change is a bind change too.
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "test", "egress_sip_ip"],
            json!("198.51.100.60"),
        )
    });
    let p = plan_between(&spec_example(), &new);
    assert!(actions(&p).contains(&restart("test-egress", "198.51.100.60:15200")));
    assert!(!p
        .actions()
        .any(|a| matches!(a, Action::RescanProfile { .. })));
}

#[test]
fn row_new_profile_starts_and_confirms() {
    let old = spec_example();
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "new"],
            json!({ "ingress_sip_ip": "198.51.100.52", "ingress_sip_port": 5300 }),
        )
    });
    let p = plan_between(&old, &new);
    assert_eq!(
        actions(&p),
        [
            write(&[
                ACL_PATH,
                "dialplan/new-egress.xml",
                "dialplan/new-ingress.xml",
                "sip_profiles/new-egress.xml",
                "sip_profiles/new-ingress.xml"
            ]),
            Action::ReloadXml,
            // The new lists are ACLs too: reloadxml alone would not load them.
            Action::ReloadAcl,
            start("new-egress", "198.51.100.52:15300"),
            start("new-ingress", "198.51.100.52:5300"),
            confirm("new-egress", "198.51.100.52:15300"),
            confirm("new-ingress", "198.51.100.52:5300"),
        ]
    );
    assert_eq!(p.cost, Cost::Reload);
}

#[test]
fn row_removed_or_disabled_profile_stops_first() {
    let old = two_entries();
    let mut removed = old.clone();
    removed["sip_profiles"]
        .as_object_mut()
        .expect("object")
        .remove("b");
    let mut disabled = old.clone();
    set(
        &mut disabled,
        &["sip_profiles", "b", "disabled"],
        json!(true),
    );
    for new in [removed, disabled] {
        let p = plan_between(&old, &new);
        assert_eq!(
            actions(&p),
            [
                stop("b-egress"),
                stop("b-ingress"),
                Action::WriteFiles {
                    write: vec![ACL_PATH.into()],
                    remove: vec![
                        "dialplan/b-egress.xml".into(),
                        "dialplan/b-ingress.xml".into(),
                        "sip_profiles/b-egress.xml".into(),
                        "sip_profiles/b-ingress.xml".into()
                    ],
                },
                Action::ReloadXml,
                Action::ReloadAcl,
            ]
        );
        assert_eq!(
            p.cost,
            Cost::DropsCalls {
                profiles: vec!["b-egress".into(), "b-ingress".into()]
            }
        );
    }
}

#[test]
fn row_global_settings_restart_freeswitch_after_draining() {
    let all_confirms = [
        confirm("test-egress", "198.51.100.52:15200"),
        confirm("test-ingress", "198.51.100.52:5200"),
    ];
    for (new, file) in [
        (
            spec_with(|d| set(d, &["sip_variables", "x"], json!("1"))),
            VARS_PATH,
        ),
        (
            spec_with(|d| set(d, &["sip_domain_name"], json!("b.example.net"))),
            VARS_PATH,
        ),
        (
            spec_with(|d| set(d, &["rtp_ip"], json!("198.51.100.52"))),
            VARS_PATH,
        ),
    ] {
        let p = plan_between(&spec_example(), &new);
        let a = actions(&p);
        assert_eq!(a[0], Action::Drain);
        assert!(
            matches!(&a[1], Action::WriteFiles { write, .. } if write.contains(&file.to_string()))
        );
        assert_eq!(a[2], Action::RestartFreeswitch);
        assert_eq!(a[3..], all_confirms);
        assert_eq!(p.cost, Cost::RestartsFreeswitch);
    }
    // A changed event-socket secret is a global setting too.
    let h = host(&spec_example());
    let old_r = rendering(&h);
    let mut s = secrets();
    s.event_socket_password.push('2');
    let new_r = render(&h, &s).expect("renders");
    let snap = |r| Snapshot {
        host: &h,
        rendering: r,
    };
    let p = plan(Some(snap(&old_r)), snap(&new_r), Path::new(VOLUME_DIR));
    assert!(actions(&p).contains(&Action::RestartFreeswitch));
    assert!(
        matches!(&actions(&p)[1], Action::WriteFiles { write, .. } if write == &[EVENT_SOCKET_PATH.to_string()])
    );
}

#[test]
fn restart_subsumes_profile_actions() {
    let new = spec_with(|d| {
        set(d, &["sip_variables", "x"], json!("1"));
        set(
            d,
            &["sip_profiles", "test", "egress_sip_port"],
            json!(15201),
        );
        set(d, &["sip_profiles", "test", "inbound_codec"], json!("PCMU"));
        set(d, &["sip_profiles", "test", "ingress_acl"], json!([]));
    });
    let p = plan_between(&spec_example(), &new);
    assert_eq!(
        actions(&p)[2..],
        [
            Action::RestartFreeswitch,
            confirm("test-egress", "198.51.100.52:15201"),
            confirm("test-ingress", "198.51.100.52:5200"),
        ]
    );
    assert_eq!(
        p.actions().filter(|a| a.esl_command().is_some()).count(),
        3,
        "drain and two confirmations only:\n{p}"
    );
}

#[test]
fn row_server_only_on_stops_and_disables_off_renders_enables_starts() {
    let on = spec_with(|d| set(d, &["server_only"], json!(true)));
    let p = plan_between(&spec_example(), &on);
    let a = actions(&p);
    assert_eq!(
        a[..3],
        [
            Action::Drain,
            Action::StopFreeswitch,
            Action::DisableFreeswitch
        ]
    );
    assert!(
        matches!(&a[3], Action::WriteFiles { write, remove } if write.is_empty() && remove.len() == 8)
    );
    assert_eq!(p.cost, Cost::StopsFreeswitch);

    let p = plan_between(&on, &spec_example());
    let a = actions(&p);
    assert!(
        matches!(&a[0], Action::WriteFiles { write, remove } if write.len() == 8 && remove.is_empty())
    );
    assert_eq!(
        a[1..],
        [
            Action::EnableFreeswitch,
            Action::StartFreeswitch,
            confirm("test-egress", "198.51.100.52:15200"),
            confirm("test-ingress", "198.51.100.52:5200"),
        ]
    );
    // The service switch behaves the same.
    let off = spec_with(|d| set(d, &["services", "freeswitch", "enabled"], json!(false)));
    assert_eq!(
        actions(&plan_between(&spec_example(), &off))[1],
        Action::StopFreeswitch
    );
    // Staying off costs nothing whatever else changes.
    let on2 = spec_with(|d| {
        set(d, &["server_only"], json!(true));
        set(d, &["sip_variables", "x"], json!("1"));
    });
    assert!(plan_between(&on, &on2).is_empty());
}

#[test]
fn row_image_version_names_the_upgrade() {
    let new = spec_with(|d| set(d, &["image", "version"], json!("2026.12.1")));
    let p = plan_between(&spec_example(), &new);
    assert_eq!(
        actions(&p),
        [Action::Upgrade {
            version: "2026.12.1".into()
        }]
    );
    assert_eq!(p.cost, Cost::RebootsHost);
    // Dropping `image` means: stay on the booted version.
    let none = spec_with(|d| {
        d.as_object_mut().expect("object").remove("image");
    });
    assert!(plan_between(&spec_example(), &none).is_empty());
}

#[test]
fn first_apply_loads_everything_afresh() {
    let h = host(&spec_example());
    let r = rendering(&h);
    let p = plan(
        None,
        Snapshot {
            host: &h,
            rendering: &r,
        },
        Path::new(VOLUME_DIR),
    );
    let a = actions(&p);
    assert_eq!(a[0], Action::Drain);
    assert!(matches!(&a[1], Action::ReplaceFiles { write } if write.len() == 8));
    assert_eq!(
        a[2..4],
        [Action::EnableFreeswitch, Action::RestartFreeswitch]
    );
    assert_eq!(
        a.last(),
        Some(&Action::Upgrade {
            version: "2026.11.2".into()
        })
    );
    // From whatever was there before (here: another host's files, running), the model
    // ends where a fresh start on the new files would.
    let other = rendering(&host(&two_entries()));
    let mut fs = ModelFreeswitch::booted(other.tree.clone());
    fs.apply_plan(&p, &r.tree).expect("the model accepts it");
    assert_eq!(fs, ModelFreeswitch::expected(&r));
}

#[test]
fn combination_is_one_union_in_order() {
    let old = two_entries();
    let mut new = old.clone();
    let sp = new["sip_profiles"].as_object_mut().expect("object");
    sp.remove("a");
    sp.insert(
        "c".into(),
        json!({ "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5080 }),
    );
    set(
        &mut new,
        &["sip_profiles", "b", "egress_sip_port"],
        json!(15071),
    );
    set(&mut new, &["sip_profiles", "b", "sip_trace"], json!(true));
    set(&mut new, &["sip_profiles", "b", "ingress_acl"], json!([]));
    let p = plan_between(&old, &new);
    let a = actions(&p);
    assert_eq!(a[..2], [stop("a-egress"), stop("a-ingress")]);
    assert!(matches!(&a[2], Action::WriteFiles { .. }));
    assert_eq!(
        a[3..],
        [
            Action::ReloadXml,
            Action::ReloadAcl,
            rescan("b-ingress"),
            restart("b-egress", "192.0.2.10:15071"),
            start("c-egress", "192.0.2.10:15080"),
            start("c-ingress", "192.0.2.10:5080"),
            confirm("b-egress", "192.0.2.10:15071"),
            confirm("c-egress", "192.0.2.10:15080"),
            confirm("c-ingress", "192.0.2.10:5080"),
        ]
    );
    assert_eq!(
        p.cost,
        Cost::DropsCalls {
            profiles: vec!["a-egress".into(), "a-ingress".into(), "b-egress".into()]
        }
    );
}

#[test]
fn swapped_binds_stop_before_and_start_after() {
    let old = two_entries();
    let mut new = old.clone();
    set(
        &mut new,
        &["sip_profiles", "a", "ingress_sip_port"],
        json!(5070),
    );
    set(
        &mut new,
        &["sip_profiles", "a", "egress_sip_port"],
        json!(15060),
    );
    set(
        &mut new,
        &["sip_profiles", "b", "ingress_sip_port"],
        json!(5060),
    );
    set(
        &mut new,
        &["sip_profiles", "b", "egress_sip_port"],
        json!(15070),
    );
    // A restart onto an address its neighbour still holds would fail to bind (09c);
    // the model (and `plan_between`) would catch it.
    let p = plan_between(&old, &new);
    let a = actions(&p);
    assert_eq!(a[..2], [stop("a-ingress"), stop("b-ingress")]);
    assert!(!a.iter().any(|x| matches!(x, Action::RestartProfile { .. })));
}

#[test]
fn handler_changes() {
    // Another socket: the dialplan only, read at the next call after reloadxml.
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "test", "handler"],
            json!({ "socket": "127.0.0.1:5703" }),
        )
    });
    let p = plan_between(&spec_example(), &new);
    assert_eq!(
        actions(&p),
        [
            write(&["dialplan/test-egress.xml", "dialplan/test-ingress.xml"]),
            Action::ReloadXml
        ]
    );
    // A context handler changes the profile's context: rescan; the dialplan files go.
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "test", "handler"],
            json!({ "context": "x" }),
        )
    });
    let p = plan_between(&spec_example(), &new);
    assert_eq!(
        actions(&p)[1..],
        [
            Action::ReloadXml,
            rescan("test-egress"),
            rescan("test-ingress")
        ]
    );
}

#[test]
fn plan_serializes_for_the_api() {
    let new = spec_with(|d| {
        set(
            d,
            &["sip_profiles", "test", "egress_sip_port"],
            json!(15201),
        )
    });
    let p = plan_between(&spec_example(), &new);
    let v = serde_json::to_value(&p).expect("serializes");
    assert_eq!(
        v["cost"],
        json!({ "kind": "drops_calls", "profiles": ["test-egress"] })
    );
    assert_eq!(
        v["steps"][2],
        json!({
            "action": "restart_profile", "profile": "test-egress", "bind": "198.51.100.52:15201",
            "cost": { "kind": "drops_calls", "profiles": ["test-egress"] },
            "description": "sofia profile test-egress restart (to bind 198.51.100.52:15201)"
        })
    );
    assert_eq!(
        p.to_string(),
        "write sip_profiles/test-egress.xml in /var/lib/ccnq/freeswitch — no effect on calls\n\
         reloadxml — reload, no call dropped\n\
         sofia profile test-egress restart (to bind 198.51.100.52:15201) — drops the calls on profile test-egress\n\
         confirm test-egress RUNNING on 198.51.100.52:15201 (sofia xmlstatus) — no effect on calls\n"
    );
}

#[test]
fn file_steps_name_the_directory_they_are_given() {
    // A daemon whose data_dir is not the appliance's: its plans name its own directory.
    let (old, new) = (
        spec_example(),
        spec_with(|d| {
            set(
                d,
                &["sip_profiles", "test", "ingress_acl"],
                json!(["198.51.100.7/32"]),
            )
        }),
    );
    let (old_h, new_h) = (host(&old), host(&new));
    let (old_r, new_r) = (rendering(&old_h), rendering(&new_h));
    let dir = Path::new("/srv/ccnq-test/freeswitch");
    let snap = |h, r| Snapshot {
        host: h,
        rendering: r,
    };
    let p = plan(Some(snap(&old_h, &old_r)), snap(&new_h, &new_r), dir);
    assert_eq!(
        p.steps[0].description,
        "write autoload_configs/acl.conf.xml in /srv/ccnq-test/freeswitch"
    );
    let first = plan(None, snap(&new_h, &new_r), dir);
    assert!(
        first.steps.iter().any(|s| s
            .description
            .ends_with(" in /srv/ccnq-test/freeswitch, removing every other file there")),
        "{first}"
    );
    let off = host(&spec_with(|d| set(d, &["server_only"], json!(true))));
    let off_r = rendering(&off);
    let p = plan(None, snap(&off, &off_r), dir);
    assert!(
        p.steps
            .iter()
            .any(|s| s.description == "remove every file in /srv/ccnq-test/freeswitch"),
        "{p}"
    );
    for p in [&first, &p] {
        assert!(!p.to_string().contains(VOLUME_DIR), "{p}");
    }
}

#[test]
fn actions_map_to_esl_commands_and_systemd_jobs() {
    use ccnq_freeswitch::SystemdJob;
    assert_eq!(
        stop("x").esl_command().as_deref(),
        Some("sofia profile x stop")
    );
    assert_eq!(
        rescan("x").esl_command().as_deref(),
        Some("sofia profile x rescan")
    );
    assert_eq!(
        restart("x", "192.0.2.1:5060").esl_command().as_deref(),
        Some("sofia profile x restart")
    );
    assert_eq!(
        start("x", "192.0.2.1:5060").esl_command().as_deref(),
        Some("sofia profile x start")
    );
    assert_eq!(
        Action::ReloadXml.esl_command().as_deref(),
        Some("reloadxml")
    );
    assert_eq!(
        Action::ReloadAcl.esl_command().as_deref(),
        Some("reloadacl")
    );
    assert_eq!(
        Action::RestartFreeswitch.systemd(),
        Some(SystemdJob::Restart)
    );
    assert_eq!(Action::StopFreeswitch.systemd(), Some(SystemdJob::Stop));
    assert_eq!(Action::ReloadXml.systemd(), None);
    assert_eq!(Action::RestartFreeswitch.esl_command(), None);
}

#[test]
fn systemd_steps_name_the_unit_they_are_given() {
    let (old, new) = (
        spec_example(),
        spec_with(|d| set(d, &["sip_variables"], json!({ "x": "1" }))),
    );
    let (old_h, new_h) = (host(&old), host(&new));
    let (old_r, new_r) = (rendering(&old_h), rendering(&new_h));
    let snap = |h, r| Snapshot {
        host: h,
        rendering: r,
    };
    let p = plan_from(
        InForce {
            applied: Some(snap(&old_h, &old_r)),
            in_doubt: &[],
        },
        snap(&new_h, &new_r),
        Target {
            files_dir: Path::new(VOLUME_DIR),
            unit: "fs-e2e-1.service",
        },
    );
    let restart = p
        .steps
        .iter()
        .find(|s| s.action == Action::RestartFreeswitch)
        .unwrap_or_else(|| panic!("no restart in\n{p}"));
    assert_eq!(restart.description, "systemd restart fs-e2e-1.service");
    assert!(!p.to_string().contains("freeswitch.service"), "{p}");
    // Without a unit, the appliance's.
    let p = plan(
        Some(snap(&old_h, &old_r)),
        snap(&new_h, &new_r),
        Path::new(VOLUME_DIR),
    );
    assert!(
        p.steps
            .iter()
            .any(|s| s.description == "systemd restart freeswitch.service"),
        "{p}"
    );
}

/// The plan to `wanted` from `applied` with `in_doubt` between, checked on the model from
/// each state those may have left FreeSWITCH in whole (applied, or any one in doubt
/// carried out completely).
fn plan_in_doubt(applied: &Value, in_doubt: &[Value], wanted: &Value) -> Plan {
    let hosts: Vec<_> = std::iter::once(applied)
        .chain(in_doubt)
        .chain([wanted])
        .map(host)
        .collect();
    let rs: Vec<_> = hosts.iter().map(rendering).collect();
    let snaps: Vec<Snapshot> = hosts
        .iter()
        .zip(&rs)
        .map(|(host, rendering)| Snapshot { host, rendering })
        .collect();
    let last = snaps.len() - 1;
    let p = plan_from(
        InForce {
            applied: Some(snaps[0]),
            in_doubt: &snaps[1..last],
        },
        snaps[last],
        Target {
            files_dir: Path::new(VOLUME_DIR),
            unit: ccnq_freeswitch::FREESWITCH_UNIT,
        },
    );
    for from in &rs[..last] {
        let mut fs = ModelFreeswitch::expected(from);
        for a in p.actions() {
            match (fs.apply(a, &rs[last].tree), a) {
                (Ok(()), _) => {}
                // The applier takes `Invalid Profile` on a stop for done.
                (
                    Err(ccnq_freeswitch::fs_model::ModelError::InvalidProfile(_)),
                    Action::StopProfile { .. },
                ) => {}
                (Err(e), _) => panic!("{a:?} refused by the model: {e}\n{p}"),
            }
        }
        assert_eq!(fs, ModelFreeswitch::expected(&rs[last]), "plan:\n{p}");
    }
    p
}

fn with_c(mut d: Value) -> Value {
    d["sip_profiles"]["c"] = json!({ "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5080 });
    d
}

#[test]
fn an_interrupted_revision_is_carried_out_again_from_the_revision_applied() {
    // Killed while it confirmed c: c may run or not; a start is right either way.
    let p = plan_in_doubt(
        &two_entries(),
        &[with_c(two_entries())],
        &with_c(two_entries()),
    );
    let a = actions(&p);
    assert!(a.contains(&start("c-ingress", "192.0.2.10:5080")), "{p}");
    assert!(a.contains(&confirm("c-ingress", "192.0.2.10:5080")), "{p}");
    assert!(
        a.iter().all(|x| !matches!(
            x,
            Action::StopProfile { .. }
                | Action::RestartProfile { .. }
                | Action::RescanProfile { .. }
        )),
        "a and b run in every state: nothing for them\n{p}"
    );
    // The same plan as from a host that never saw c.
    assert_eq!(p, plan_between(&two_entries(), &with_c(two_entries())));
}

#[test]
fn a_revision_left_in_doubt_leaves_nothing_of_itself_running() {
    // c may have been started; the revision wanted has no c: it is stopped (a stop of a
    // profile that does not run is harmless), where from `two_entries` alone nothing is
    // to be done.
    let p = plan_in_doubt(&two_entries(), &[with_c(two_entries())], &two_entries());
    let a = actions(&p);
    assert_eq!(a[..2], [stop("c-egress"), stop("c-ingress")], "{p}");
    assert!(a.contains(&Action::ReloadXml), "{p}");
    assert!(plan_between(&two_entries(), &two_entries()).is_empty());
}

#[test]
fn a_profile_that_may_run_elsewhere_is_stopped_then_started() {
    // Moved to 5062 by an apply cut short: a restart would fail where it was stopped,
    // a start would not move it where it moved.
    let mut moved = two_entries();
    moved["sip_profiles"]["a"]["ingress_sip_port"] = json!(5062);
    let p = plan_in_doubt(&two_entries(), &[moved], &two_entries());
    let a = actions(&p);
    // Its egress port follows the ingress port.
    assert_eq!(a[..2], [stop("a-egress"), stop("a-ingress")], "{p}");
    assert!(a.contains(&start("a-ingress", "192.0.2.10:5060")), "{p}");
    assert!(a.contains(&confirm("a-ingress", "192.0.2.10:5060")), "{p}");
    assert!(
        !a.iter().any(|x| matches!(x, Action::RestartProfile { .. })),
        "{p}"
    );
}
