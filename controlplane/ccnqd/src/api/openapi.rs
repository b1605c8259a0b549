//! The OpenAPI 3.1 description of the local API, generated from the handlers'
//! annotations and the shared types, and checked against the route table so that the
//! description and the server cannot disagree.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ccnqd local API",
        description = "The control-plane daemon of a CCNQ5 host. Authenticate with a client \
            certificate signed by the site's admin CA (the role is the certificate's OU: \
            reader, operator or admin) or with a bearer token. Errors are RFC 9457 problem \
            documents."
    ),
    paths(
        super::daemon::health,
        super::daemon::version,
        super::daemon::upgrade,
        super::daemon::status,
        super::daemon::openapi,
        super::daemon::get_log_level,
        super::daemon::set_log_level,
        super::config::get_config,
        super::config::get_plan,
        super::config::post_plan,
        super::services::list,
        super::services::start_service,
        super::services::stop_service,
        super::services::restart_service,
        super::couchdb::get,
        super::metrics::get,
        super::logs::get,
        super::bundle::get,
        super::capture::post,
        super::freeswitch::get_profiles,
        super::freeswitch::get_gateways,
        super::freeswitch::get_calls,
        super::freeswitch::get_registrations,
    ),
    components(schemas(
        ccnq_api::Health,
        ccnq_api::Version,
        ccnq_api::upgrade::UpgradeStatus,
        ccnq_api::upgrade::Slot,
        ccnq_api::upgrade::UpgradeState,
        ccnq_api::upgrade::ByteProgress,
        ccnq_api::upgrade::ProgressStep,
        ccnq_api::Status,
        ccnq_api::ConfigState,
        ccnq_api::Volume,
        ccnq_api::LogLevel,
        ccnq_api::Level,
        ccnq_api::Problem,
        ccnq_api::Role,
        ccnq_api::ConfigReport,
        ccnq_api::AppliedPoint,
        ccnq_api::Attempt,
        ccnq_api::FieldNote,
        ccnq_api::FeedState,
        ccnq_api::ReplicationState,
        ccnq_api::ReplicationJob,
        ccnq_api::PlanPreview,
        ccnq_api::PlanStep,
        ccnq_api::PlanCost,
        crate::capture::Request,
        ccnq_api::couchdb::CouchState,
        ccnq_api::couchdb::CouchDatabase,
        ccnq_api::couchdb::CouchReplication,
        ccnq_api::couchdb::CouchTask,
        ccnq_api::freeswitch::FsProfiles,
        ccnq_api::freeswitch::FsProfile,
        ccnq_api::freeswitch::FsGateways,
        ccnq_api::freeswitch::FsCalls,
        ccnq_api::freeswitch::FsCall,
        ccnq_api::freeswitch::FsRegistrations,
        ccnq_api::freeswitch::FsRegistration,
        ccnq_api::ServiceList,
        ccnq_api::ServiceState,
        ccnq_api::ServiceAction,
        ccnq_api::ServiceActionReport,
        ccnq_api::DrainReport,
        ccnq_api::ServiceActionFailed,
    )),
    modifiers(&Security),
    tags((name = "daemon", description = "The daemon itself"),
        (name = "config", description = "The host document and how it is applied"),
        (name = "services", description = "The units this daemon manages (FreeSWITCH, CouchDB)"),
        (name = "diagnostics", description = "Packet capture"),
        (name = "couchdb", description = "The local CouchDB: up, databases, replication jobs, tasks (read-only)"),
        (name = "freeswitch", description = "What FreeSWITCH runs now: profiles, gateways, calls, registrations (read-only)"))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "mutualTLS",
            SecurityScheme::MutualTls {
                description: Some("A client certificate signed by the admin CA".into()),
                extensions: None,
            },
        );
    }
}

pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::ROUTES;
    use super::*;

    #[test]
    fn the_description_lists_exactly_the_served_routes() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut described = std::collections::BTreeSet::new();
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                    described.insert((path.clone(), method.to_uppercase()));
                }
            }
        }
        let served: std::collections::BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.path.to_string(), r.method.to_string()))
            .collect();
        assert_eq!(described, served);
    }

    #[test]
    fn protected_routes_declare_their_security() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
            let declared = op.get("security").is_some();
            assert_eq!(declared, r.role.is_some(), "{} {}", r.method, r.path);
            if let Some(role) = r.role {
                let text = op["description"].as_str().unwrap_or("");
                assert!(
                    text.contains(&format!("Role: {role}")),
                    "{} {}: {text}",
                    r.method,
                    r.path
                );
            }
        }
    }
}
