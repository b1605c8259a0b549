//! The drain procedure on its own (the services API calls it outside of an apply),
//! against `ccnq-esl-peer`, the FreeSWITCH event-socket test double.

use ccnq_apply::{drain, resume, DrainOutcome};
use ccnq_esl::{ConnectOptions, EslClient};
use ccnq_esl_peer::{Peer, PeerConfig};
use std::sync::Mutex;
use std::time::Duration;

async fn peer(channels: Vec<u64>) -> (Peer, EslClient) {
    let peer = Peer::start(PeerConfig {
        channels,
        ..PeerConfig::default()
    })
    .await
    .expect("start the peer");
    let esl = EslClient::connect(
        &peer.addr().to_string(),
        "ClueCon",
        ConnectOptions::default(),
    )
    .await
    .expect("connect");
    (peer, esl)
}

#[tokio::test]
async fn drains_until_no_call_is_left_and_stays_paused_until_resumed() {
    let (peer, esl) = peer(vec![2, 1, 0]).await;
    let counts = Mutex::new(Vec::new());
    let outcome = drain(
        &esl,
        Duration::from_secs(10),
        Duration::from_millis(10),
        |n| counts.lock().unwrap().push(n),
    )
    .await
    .unwrap();
    assert_eq!(outcome, DrainOutcome::Drained);
    assert_eq!(*counts.lock().unwrap(), [2, 1, 0]);
    assert!(
        peer.paused(),
        "new calls stay refused until the caller resumes"
    );
    resume(&esl).await.unwrap();
    assert!(!peer.paused());
    assert_eq!(
        peer.commands(),
        [
            "fsctl pause inbound",
            "show channels count",
            "show channels count",
            "show channels count",
            "fsctl resume inbound"
        ]
    );
}

#[tokio::test]
async fn stops_waiting_at_the_deadline_with_the_calls_left() {
    let (peer, esl) = peer(vec![4]).await;
    let outcome = drain(
        &esl,
        Duration::from_millis(200),
        Duration::from_millis(20),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(outcome, DrainOutcome::DeadlineReached { calls: 4 });
    assert!(peer.paused());
}
