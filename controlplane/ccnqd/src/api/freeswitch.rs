//! The FreeSWITCH endpoints: its sofia profiles and gateways, the calls in progress and
//! the registrations, asked over the event socket at each request (never cached: the
//! operator wants what runs now). Reader role, and read-only by construction: each
//! endpoint sends its own fixed commands, nothing from the request reaches FreeSWITCH.
//! The mapping from FreeSWITCH's answers to the API's shapes is pure ([`profiles`],
//! [`call`], [`registration`]) and unit-tested.

use super::{json, problem, Body, Daemon};
use ccnq_api::freeswitch::{
    FsCall, FsCalls, FsGateways, FsProfile, FsProfiles, FsRegistration, FsRegistrations,
};
use ccnq_api::Problem;
use ccnq_esl::{Channel, EslClient, Registration, SofiaStatus};
use http::{Response, StatusCode};

/// Every sofia profile and alias, with its address, state and calls in progress.
#[utoipa::path(get, path = "/v1/freeswitch/profiles", tag = "freeswitch",
    description = "Role: reader. From `sofia xmlstatus`; the calls from `show channels`.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The profiles", body = FsProfiles),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "FreeSWITCH cannot be reached or refused", body = Problem, content_type = "application/problem+json")))]
pub async fn get_profiles(daemon: &Daemon) -> Response<Body> {
    answer(async {
        let esl = connect(daemon).await?;
        let sofia = sofia(&esl).await?;
        let channels = channels(&esl).await?;
        let (profiles, _) = profiles(&sofia, &channels);
        Ok(json(StatusCode::OK, &FsProfiles { profiles }))
    })
    .await
}

/// Every sofia gateway and its registration state.
#[utoipa::path(get, path = "/v1/freeswitch/gateways", tag = "freeswitch",
    description = "Role: reader. From `sofia xmlstatus`.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The gateways", body = FsGateways),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "FreeSWITCH cannot be reached or refused", body = Problem, content_type = "application/problem+json")))]
pub async fn get_gateways(daemon: &Daemon) -> Response<Body> {
    answer(async {
        let esl = connect(daemon).await?;
        let sofia = sofia(&esl).await?;
        let (_, gateways) = profiles(&sofia, &[]);
        Ok(json(StatusCode::OK, &FsGateways { gateways }))
    })
    .await
}

/// The call legs in progress.
#[utoipa::path(get, path = "/v1/freeswitch/calls", tag = "freeswitch",
    description = "Role: reader. From `show channels`, oldest first.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The calls", body = FsCalls),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "FreeSWITCH cannot be reached or refused", body = Problem, content_type = "application/problem+json")))]
pub async fn get_calls(daemon: &Daemon) -> Response<Body> {
    answer(async {
        let esl = connect(daemon).await?;
        let mut calls: Vec<FsCall> = channels(&esl).await?.iter().map(call).collect();
        calls.sort_by(|a, b| a.created.cmp(&b.created).then(a.uuid.cmp(&b.uuid)));
        Ok(json(StatusCode::OK, &FsCalls { calls }))
    })
    .await
}

/// The SIP registrations FreeSWITCH holds.
#[utoipa::path(get, path = "/v1/freeswitch/registrations", tag = "freeswitch",
    description = "Role: reader. From `show registrations`.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The registrations", body = FsRegistrations),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "FreeSWITCH cannot be reached or refused", body = Problem, content_type = "application/problem+json")))]
pub async fn get_registrations(daemon: &Daemon) -> Response<Body> {
    answer(async {
        let esl = connect(daemon).await?;
        let o = esl.show_registrations().await.map_err(|e| e.to_string())?;
        let rows = o.result.map_err(|e| e.to_string())?;
        let registrations = rows.iter().map(registration).collect();
        Ok(json(StatusCode::OK, &FsRegistrations { registrations }))
    })
    .await
}

/// The handler's answer, or a 503 naming what failed.
async fn answer(
    work: impl std::future::Future<Output = Result<Response<Body>, String>>,
) -> Response<Body> {
    work.await
        .unwrap_or_else(|e| problem(StatusCode::SERVICE_UNAVAILABLE, e))
}

async fn connect(daemon: &Daemon) -> Result<EslClient, String> {
    crate::event_socket::connect_configured(&daemon.config.freeswitch).await
}

async fn sofia(esl: &EslClient) -> Result<SofiaStatus, String> {
    let o = esl.sofia_xmlstatus().await.map_err(|e| e.to_string())?;
    o.result.map_err(|e| e.to_string())
}

async fn channels(esl: &EslClient) -> Result<Vec<Channel>, String> {
    let o = esl.show_channels().await.map_err(|e| e.to_string())?;
    o.result.map_err(|e| e.to_string())
}

/// The profiles and aliases, then the gateways, each with its call legs among `channels`.
fn profiles(sofia: &SofiaStatus, channels: &[Channel]) -> (Vec<FsProfile>, Vec<FsProfile>) {
    let (gateways, profiles): (Vec<_>, Vec<_>) = sofia
        .entries
        .iter()
        .map(|e| FsProfile {
            name: e.name.clone(),
            kind: e.kind.clone(),
            address: e.address().unwrap_or(&e.data).to_owned(),
            state: e.state.clone(),
            running: e.kind == "profile" && e.is_running(),
            calls: if e.kind == "profile" {
                channels
                    .iter()
                    .filter(|c| c.profile() == Some(e.name.as_str()))
                    .count() as u64
            } else {
                0
            },
        })
        .partition(|p| p.kind == "gateway");
    (profiles, gateways)
}

fn call(c: &Channel) -> FsCall {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    FsCall {
        uuid: c.uuid.clone(),
        direction: c.direction.clone(),
        profile: c.profile().map(str::to_owned),
        created: c
            .created_secs()
            .and_then(crate::reconcile::report::from_epoch),
        callstate: c.callstate.clone(),
        state: c.state.clone(),
        caller_name: c.cid_name.clone(),
        caller_number: c.cid_num.clone(),
        destination: c.dest.clone(),
        remote_ip: c.ip_addr.clone(),
        application: c.application.clone(),
        read_codec: c.read_codec.clone(),
        write_codec: c.write_codec.clone(),
        bridged_to: some(&c.call_uuid).filter(|u| *u != c.uuid),
    }
}

fn registration(r: &Registration) -> FsRegistration {
    FsRegistration {
        user: r.reg_user.clone(),
        realm: r.realm.clone(),
        contact: r.url.clone(),
        expires: r
            .expires
            .parse()
            .ok()
            .and_then(crate::reconcile::report::from_epoch),
        network: format!("{}:{} {}", r.network_ip, r.network_port, r.network_proto),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccnq_esl::SofiaStatusEntry;

    fn entry(name: &str, kind: &str, data: &str, state: &str) -> SofiaStatusEntry {
        SofiaStatusEntry {
            name: name.into(),
            kind: kind.into(),
            data: data.into(),
            state: state.into(),
        }
    }

    fn leg(uuid: &str, name: &str) -> Channel {
        Channel {
            uuid: uuid.into(),
            name: name.into(),
            ..Channel::default()
        }
    }

    #[test]
    fn each_profile_counts_its_own_legs_and_gateways_stand_apart() {
        let sofia = SofiaStatus {
            entries: vec![
                entry(
                    "qa-ingress",
                    "profile",
                    "sip:mod_sofia@10.0.2.15:5200",
                    "RUNNING (2)",
                ),
                entry(
                    "qa-egress",
                    "profile",
                    "sip:mod_sofia@10.0.2.15:15200",
                    "RUNNING (0)",
                ),
                entry("10.0.2.15", "alias", "qa-ingress", "ALIASED"),
                entry("carrier", "gateway", "sip:carrier@192.0.2.9", "NOREG"),
            ],
        };
        let legs = [
            leg("a", "sofia/qa-ingress/sipp@127.0.0.1:5060"),
            leg("b", "sofia/qa-ingress/sipp@127.0.0.1:5060"),
            leg("c", "loopback/park-a"),
        ];
        let (profiles, gateways) = profiles(&sofia, &legs);
        let seen: Vec<(&str, &str, bool, u64)> = profiles
            .iter()
            .map(|p| (p.name.as_str(), p.address.as_str(), p.running, p.calls))
            .collect();
        assert_eq!(
            seen,
            [
                ("qa-ingress", "10.0.2.15:5200", true, 2),
                ("qa-egress", "10.0.2.15:15200", true, 0),
                ("10.0.2.15", "qa-ingress", false, 0),
            ]
        );
        assert_eq!(gateways.len(), 1);
        assert_eq!(
            (gateways[0].name.as_str(), gateways[0].state.as_str()),
            ("carrier", "NOREG")
        );
    }

    #[test]
    fn a_call_leg_in_the_api_shape() {
        let c = Channel {
            uuid: "u1".into(),
            call_uuid: "u1".into(),
            created_epoch: "1796318000".into(),
            name: "sofia/qa-ingress/sipp@127.0.0.1:5060".into(),
            cid_num: "33123456789".into(),
            ..Channel::default()
        };
        let f = call(&c);
        assert_eq!(f.profile.as_deref(), Some("qa-ingress"));
        assert_eq!(f.created.as_deref(), Some("2026-12-03T17:13:20Z"));
        assert_eq!(f.caller_number, "33123456789");
        assert_eq!(f.bridged_to, None, "its own UUID is no bridge");
        let bridged = call(&Channel {
            call_uuid: "u2".into(),
            ..c
        });
        assert_eq!(bridged.bridged_to.as_deref(), Some("u2"));
    }

    #[test]
    fn a_registration_in_the_api_shape() {
        let r = registration(&Registration {
            reg_user: "1000".into(),
            realm: "a.example.net".into(),
            url: "sip:1000@192.0.2.7:5060".into(),
            expires: "not a number".into(),
            network_ip: "192.0.2.7".into(),
            network_port: "5060".into(),
            network_proto: "udp".into(),
            ..Registration::default()
        });
        assert_eq!(r.network, "192.0.2.7:5060 udp");
        assert_eq!(r.expires, None);
    }
}
