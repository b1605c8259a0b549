//! Render + plan for a host with 200 sofia profiles (100 entries), the worst realistic
//! case: one profile setting changed, so the planner compares every part. Prints the time
//! per iteration and its ratio to the 5 ms target (ratio < 1 is within target).

use ccnq_freeswitch::render::VOLUME_DIR;
use ccnq_freeswitch::{plan, render, Secrets, Snapshot};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const TARGET: Duration = Duration::from_millis(5);

fn document(codec: &str) -> Value {
    let mut profiles = Map::new();
    for i in 0..100u16 {
        profiles.insert(
            format!("p{i:03}"),
            json!({
                "ingress_sip_ip": "192.0.2.10",
                "ingress_sip_port": 5000 + i,
                "ingress_acl": ["198.51.100.0/24", format!("203.0.113.{}/32", i % 250)],
                "egress_acl": ["192.0.2.0/24"],
                "inbound_codec": if i == 50 { codec } else { "PCMA" },
            }),
        );
    }
    json!({
        "_id": "host:bench.example.net", "type": "host", "host": "bench.example.net",
        "sip_domain_name": "bench.example.net",
        "sip_profiles": profiles,
    })
}

fn main() {
    let secrets = Secrets {
        event_socket_password: "bench".into(),
    };
    let old = ccnq_model::validate(&document("PCMA"), "bench.example.net")
        .expect("valid")
        .host;
    let new = ccnq_model::validate(&document("PCMU"), "bench.example.net")
        .expect("valid")
        .host;
    let old_r = render(&old, &secrets).expect("renders");
    assert_eq!(old_r.parts.as_ref().map(|p| p.profiles.len()), Some(200));

    let run = |n: u32| {
        let start = Instant::now();
        for _ in 0..n {
            let new_r = render(black_box(&new), &secrets).expect("renders");
            let p = plan(
                Some(Snapshot {
                    host: &old,
                    rendering: &old_r,
                }),
                Snapshot {
                    host: &new,
                    rendering: &new_r,
                },
                Path::new(VOLUME_DIR),
            );
            black_box(p);
        }
        start.elapsed() / n
    };
    // The measured work must be the real one: a rescan of entry p050's two profiles.
    let new_r = render(&new, &secrets).expect("renders");
    let p = plan(
        Some(Snapshot {
            host: &old,
            rendering: &old_r,
        }),
        Snapshot {
            host: &new,
            rendering: &new_r,
        },
        Path::new(VOLUME_DIR),
    );
    let rescans: Vec<_> = p.actions().filter_map(|a| a.esl_command()).collect();
    assert_eq!(
        rescans,
        [
            "reloadxml",
            "sofia profile p050-egress rescan",
            "sofia profile p050-ingress rescan"
        ]
    );

    run(5); // warm-up
    let per_iter = run(50);
    let ratio = per_iter.as_secs_f64() / TARGET.as_secs_f64();
    println!(
        "render+plan, 200 profiles: {:.3} ms/iteration; target {} ms; ratio {ratio:.3}",
        per_iter.as_secs_f64() * 1e3,
        TARGET.as_millis()
    );
}
