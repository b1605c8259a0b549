//! ccnq-systemd against a real systemd 252 booted in an nspawn container (see
//! qa/nspawn/). Each test installs its own units, so tests can run in parallel.

mod common;

use std::time::Duration;

use ccnq_systemd::{ActiveState, Error, JobResult, LoadState, UnitStateChange, UnitWatch};
use common::*;

/// Waits for the first change matching `want`, returning the changes seen. A bound on
/// waiting, not a timed assertion: it only turns a hang into a failure.
async fn wait_for(
    watch: &mut UnitWatch,
    want: impl Fn(&UnitStateChange) -> bool,
) -> Vec<UnitStateChange> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(c) = watch.recv().await {
            let hit = want(&c);
            seen.push(c);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "change not seen; saw {seen:#?}");
    seen
}

#[tokio::test]
async fn running_unit_starts_reloads_restarts_and_stops() {
    let c = container();
    c.install(&[ok_unit("t-run")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-run.service";

    assert_eq!(sd.start(u).await.unwrap(), JobResult::Done);
    let info = sd.unit_info(u).await.unwrap();
    assert_eq!(info.load_state, LoadState::Loaded);
    assert_eq!(info.active_state, ActiveState::Active);
    assert_eq!(info.sub_state, "running");
    let pid = info.main_pid.expect("a running service has a main PID");
    let since = info.since_us.expect("state change time");
    assert!(
        since > 1_600_000_000_000_000,
        "since {since} is not epoch µs"
    );
    eprintln!("memory of {u}: {:?}", info.memory_bytes);

    assert_eq!(sd.reload(u).await.unwrap(), JobResult::Done);
    assert_eq!(sd.restart(u).await.unwrap(), JobResult::Done);
    let after = sd.unit_info(u).await.unwrap();
    assert_eq!(after.active_state, ActiveState::Active);
    assert_ne!(after.main_pid, Some(pid), "restart kept the old process");

    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
    let stopped = sd.unit_info(u).await.unwrap();
    assert_eq!(stopped.active_state, ActiveState::Inactive);
    assert_eq!(stopped.sub_state, "dead");
    assert_eq!(stopped.main_pid, None);
    // Stopping a stopped unit is still a job, and done.
    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn failing_unit_reports_failed() {
    let c = container();
    c.install(&[failing_unit("t-fail")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-fail.service";

    assert_eq!(sd.start(u).await.unwrap(), JobResult::Failed);
    let info = sd.unit_info(u).await.unwrap();
    assert_eq!(info.active_state, ActiveState::Failed);
    assert_eq!(info.result.as_deref(), Some("exit-code"));
    assert_eq!(sd.restart(u).await.unwrap(), JobResult::Failed);
    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn unit_that_never_gets_ready_fails_with_a_timeout() {
    let c = container();
    c.install(&[timeout_unit("t-slow")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-slow.service";

    // TimeoutStartSec fails the unit; the job's own result is `failed`.
    assert_eq!(sd.start(u).await.unwrap(), JobResult::Failed);
    let info = sd.unit_info(u).await.unwrap();
    assert_eq!(info.active_state, ActiveState::Failed);
    assert_eq!(info.result.as_deref(), Some("timeout"));
    assert_eq!(sd.restart(u).await.unwrap(), JobResult::Failed);
    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn job_that_outlives_its_job_timeout_ends_timeout() {
    let c = container();
    c.install(&[job_timeout_unit("t-jobslow")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-jobslow.service";

    assert_eq!(sd.start(u).await.unwrap(), JobResult::Timeout);
    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
    assert_eq!(sd.restart(u).await.unwrap(), JobResult::Timeout);
    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn crash_is_seen_and_reported_by_the_watcher() {
    let c = container();
    c.install(&[crash_unit("t-crash")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-crash.service";
    let mut watch = sd.watch(&[u]).await.unwrap();

    for round in 0..2 {
        let result = if round == 0 {
            sd.start(u).await.unwrap()
        } else {
            sd.restart(u).await.unwrap()
        };
        assert_eq!(result, JobResult::Done, "round {round}");
        let seen = wait_for(&mut watch, |c| c.new.active == ActiveState::Failed).await;
        let crash = seen.last().unwrap();
        assert_eq!(crash.unit, u);
        assert_eq!(crash.old.active, ActiveState::Active, "{seen:#?}");
        assert_eq!(crash.old.sub, "running");
        assert_eq!(crash.new.sub, "failed");
        assert!(crash.timestamp_us > 1_600_000_000_000_000);
        let info = sd.unit_info(u).await.unwrap();
        assert_eq!(info.result.as_deref(), Some("signal"));
        assert_eq!(info.since_us, Some(crash.timestamp_us));
    }
    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn watcher_reports_start_and_stop() {
    let c = container();
    c.install(&[ok_unit("t-watch"), ok_unit("t-watch-other")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-watch.service";
    let mut watch = sd.watch(&[u, "t-watch-other.service"]).await.unwrap();

    sd.start(u).await.unwrap();
    let seen = wait_for(&mut watch, |c| c.new.active == ActiveState::Active).await;
    assert!(seen.iter().all(|c| c.unit == u), "{seen:#?}");
    assert_eq!(seen[0].old.active, ActiveState::Inactive);
    sd.stop(u).await.unwrap();
    let seen = wait_for(&mut watch, |c| c.new.active == ActiveState::Inactive).await;
    assert_eq!(seen.last().unwrap().new.sub, "dead");

    sd.start("t-watch-other.service").await.unwrap();
    let seen = wait_for(&mut watch, |c| c.new.active == ActiveState::Active).await;
    assert_eq!(seen.last().unwrap().unit, "t-watch-other.service");
    sd.stop("t-watch-other.service").await.unwrap();
}

#[tokio::test]
async fn enable_and_disable_change_the_unit_file_state() {
    let c = container();
    c.install(&[ok_unit("t-enable")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-enable.service";
    let link = c.units.join("multi-user.target.wants").join(u);

    assert_eq!(
        sd.unit_info(u).await.unwrap().unit_file_state.as_deref(),
        Some("disabled")
    );
    let outcome = sd.enable(&[u]).await.unwrap();
    assert!(outcome.carries_install_info);
    assert!(
        outcome.changes.iter().any(|ch| ch.kind == "symlink"
            && ch.file == format!("/etc/systemd/system/multi-user.target.wants/{u}")),
        "{outcome:#?}"
    );
    assert!(link.symlink_metadata().is_ok(), "no symlink at {link:?}");
    assert_eq!(
        sd.unit_info(u).await.unwrap().unit_file_state.as_deref(),
        Some("enabled")
    );

    let changes = sd.disable(&[u]).await.unwrap();
    assert!(changes.iter().any(|ch| ch.kind == "unlink"), "{changes:#?}");
    assert!(link.symlink_metadata().is_err(), "symlink left at {link:?}");
    assert_eq!(
        sd.unit_info(u).await.unwrap().unit_file_state.as_deref(),
        Some("disabled")
    );
}

#[tokio::test]
async fn failed_requirement_is_a_dependency_result() {
    let c = container();
    c.install(&[
        failing_unit("t-dep-base"),
        requiring_unit("t-dep", "t-dep-base.service"),
    ]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    assert_eq!(
        sd.start("t-dep.service").await.unwrap(),
        JobResult::Dependency
    );
}

#[tokio::test]
async fn concurrent_operations_each_get_their_own_result() {
    let c = container();
    c.install(&[
        ok_unit("t-conc-a"),
        failing_unit("t-conc-b"),
        ok_unit("t-conc-c"),
    ]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let (a, b, cc) = tokio::join!(
        sd.start("t-conc-a.service"),
        sd.start("t-conc-b.service"),
        sd.start("t-conc-c.service")
    );
    assert_eq!(a.unwrap(), JobResult::Done);
    assert_eq!(b.unwrap(), JobResult::Failed);
    assert_eq!(cc.unwrap(), JobResult::Done);
    let (a, cc) = tokio::join!(sd.stop("t-conc-a.service"), sd.stop("t-conc-c.service"));
    assert_eq!(a.unwrap(), JobResult::Done);
    assert_eq!(cc.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn unit_skipped_by_its_condition_says_which() {
    let c = container();
    c.install(&[not_installed_unit("t-absent"), ok_unit("t-present")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    let u = "t-absent.service";
    // Enabled, as the image's units are: a unit nothing refers to is unloaded once
    // inactive, and its condition results with it (seen: the report came back empty).
    sd.enable(&[u]).await.unwrap();
    sd.daemon_reload().await.unwrap();

    // Never started: nothing checked yet, nothing to say.
    assert_eq!(sd.unit_info(u).await.unwrap().unmet_condition, None);
    // A skip is not a failure: the job is done, the unit stays inactive, and the
    // plain condition is named (the trigger one holds anyway).
    assert_eq!(sd.start(u).await.unwrap(), JobResult::Done);
    let info = sd.unit_info(u).await.unwrap();
    assert_eq!(info.active_state, ActiveState::Inactive);
    assert_eq!(
        info.unmet_condition.as_deref(),
        Some("ConditionPathExists=/usr/bin/ccnq-test-not-installed")
    );
    // A unit whose conditions hold has nothing to report.
    assert_eq!(
        sd.start("t-present.service").await.unwrap(),
        JobResult::Done
    );
    let present = sd.unit_info("t-present.service").await.unwrap();
    assert_eq!(present.unmet_condition, None);
    assert_eq!(present.active_state, ActiveState::Active);
}

#[tokio::test]
async fn missing_unit_is_absent_and_cannot_start() {
    let sd = container().connect().await;
    let info = sd.unit_info("t-nowhere.service").await.unwrap();
    assert_eq!(info.load_state, LoadState::Absent);
    assert_eq!(info.load_state.as_str(), "absent");
    assert_eq!(info.active_state, ActiveState::Inactive);
    match sd.start("t-nowhere.service").await {
        Err(Error::NoSuchUnit { operation, unit }) => {
            assert_eq!((operation, unit.as_str()), ("start", "t-nowhere.service"))
        }
        other => panic!("expected NoSuchUnit, got {other:?}"),
    }
}

#[tokio::test]
async fn reload_without_execreload_is_refused_with_systemds_reason() {
    let c = container();
    c.install(&[crash_unit("t-noreload")]);
    let sd = c.connect().await;
    sd.daemon_reload().await.unwrap();
    match sd.reload("t-noreload.service").await {
        Err(Error::Refused { name, .. }) => {
            assert_eq!(name, "org.freedesktop.systemd1.JobTypeNotApplicable")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The (type, direction) of each argument of one method or signal in introspection XML.
/// Attribute order and indentation differ between systemd and zbus, so each `<arg …/>`
/// element is read on its own.
fn member_args(xml: &str, kind: &str, name: &str) -> Option<Vec<(String, String)>> {
    let open = format!("<{kind} name=\"{name}\">");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{kind}>"))?;
    let attr = |el: &str, a: &str| {
        let key = format!("{a}=\"");
        el.find(&key).map(|i| {
            let v = &el[i + key.len()..];
            v[..v.find('"').unwrap_or(v.len())].to_owned()
        })
    };
    Some(
        xml[start..end]
            .split("<arg ")
            .skip(1)
            .map(|el| {
                let el = &el[..el.find("/>").unwrap_or(el.len())];
                let default = if kind == "signal" { "out" } else { "in" };
                (
                    attr(el, "type").unwrap_or_default(),
                    attr(el, "direction").unwrap_or_else(|| default.to_owned()),
                )
            })
            .collect(),
    )
}

async fn introspect(address: &str) -> String {
    let conn = zbus::connection::Builder::address(address)
        .unwrap()
        .build()
        .await
        .unwrap();
    zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination("org.freedesktop.systemd1")
        .unwrap()
        .path("/org/freedesktop/systemd1")
        .unwrap()
        .build()
        .await
        .unwrap()
        .introspect()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_test_double_has_the_real_managers_signatures() {
    let real = introspect(&container().address).await;
    let bus = double::private_bus();
    let _double = double::serve_double(&bus).await;
    let fake = introspect(&bus.address).await;
    for (kind, name) in [
        ("method", "Subscribe"),
        ("method", "StartUnit"),
        ("signal", "JobRemoved"),
    ] {
        let want = member_args(&real, kind, name);
        assert!(want.is_some(), "real systemd has no {kind} {name}");
        assert_eq!(
            member_args(&fake, kind, name),
            want,
            "SystemdManagerDouble's {kind} {name} differs from systemd's"
        );
    }
}

/// A service slower to start than the client's own limit, within its TimeoutStartSec:
/// the start waits for systemd's verdict (`done`), as FreeSWITCH's start under emulation
/// needs (a fixed 120 s gave up on a start its unit allowed 180 s for).
#[tokio::test]
async fn a_start_slower_than_the_client_limit_but_within_the_unit_timeout_is_done() {
    let c = container();
    c.install(&[(
        "t-slowstart.service".to_owned(),
        "[Unit]\nDescription=ccnq test: starts in 4 s\n[Service]\nType=exec\n\
         ExecStartPre=/bin/sleep 4\nExecStart=/bin/sleep infinity\nTimeoutStartSec=20\n"
            .to_owned(),
    )]);
    let sd = c
        .connect()
        .await
        .with_timeout(std::time::Duration::from_secs(2));
    sd.daemon_reload().await.unwrap();
    let u = "t-slowstart.service";
    assert_eq!(sd.start(u).await.unwrap(), JobResult::Done);
    assert_eq!(sd.restart(u).await.unwrap(), JobResult::Done);
    assert_eq!(sd.stop(u).await.unwrap(), JobResult::Done);
}
