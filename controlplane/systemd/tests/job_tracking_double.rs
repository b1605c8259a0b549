//! Fast tests of the job-tracking logic against `SystemdManagerDouble`, a TEST DOUBLE of
//! systemd's Manager served on a private dbus-daemon (tests/common/double.rs).
//!
//! It exists to force orderings a real systemd produces only by chance — above all a
//! JobRemoved sent before the StartUnit reply — and to check the timeout path quickly.
//! The proof that the crate works with systemd is `tests/real_systemd.rs`, which also
//! checks the double's signatures against the real systemd's introspection.

mod common;

use std::time::Duration;

use ccnq_systemd::{Error, JobResult, Systemd};
use common::double::{private_bus, serve_double};

#[tokio::test]
async fn job_removed_before_the_reply_is_still_caught() {
    let bus = private_bus();
    let _double = serve_double(&bus).await;
    let sd = Systemd::connect(&bus.address)
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    // Many times: each call is a fresh chance for the early signal to be dropped.
    for _ in 0..50 {
        assert_eq!(sd.start("early.service").await.unwrap(), JobResult::Done);
    }
}

#[tokio::test]
async fn result_is_matched_by_job_path_not_by_arrival() {
    let bus = private_bus();
    let _double = serve_double(&bus).await;
    let sd = Systemd::connect(&bus.address)
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let (late, early) = tokio::join!(sd.start("late.service"), sd.start("early.service"));
    assert_eq!(late.unwrap(), JobResult::Dependency);
    assert_eq!(early.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn unknown_results_are_kept_verbatim() {
    let bus = private_bus();
    let _double = serve_double(&bus).await;
    let sd = Systemd::connect(&bus.address).await.unwrap();
    assert_eq!(
        sd.start("newer.service").await.unwrap(),
        JobResult::Other("frozen".into())
    );
}

#[tokio::test]
async fn a_job_that_never_ends_times_out_with_its_path() {
    let bus = private_bus();
    let _double = serve_double(&bus).await;
    let sd = Systemd::connect(&bus.address)
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    match sd.start("never.service").await {
        Err(Error::Timeout {
            operation,
            unit,
            job,
            ..
        }) => {
            assert_eq!(operation, "start");
            assert_eq!(unit, "never.service");
            assert!(job.starts_with("/org/freedesktop/systemd1/job/"), "{job}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The connection stays usable after a timeout.
    assert_eq!(sd.start("early.service").await.unwrap(), JobResult::Done);
}

#[tokio::test]
async fn invalid_unit_names_are_refused_before_any_call() {
    let bus = private_bus();
    let _double = serve_double(&bus).await;
    let sd = Systemd::connect(&bus.address).await.unwrap();
    assert!(matches!(
        sd.start("no suffix").await,
        Err(Error::InvalidUnitName { .. })
    ));
}
