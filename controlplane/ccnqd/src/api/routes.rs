//! The route table: every endpoint with its method, path and the role it needs. One
//! table, so that the dispatch, the audit (which routes change something), the metrics
//! (requests by route pattern) and the OpenAPI description's check all read the same
//! rows, and a route cannot be served without its role.

use ccnq_api::Role;
use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Version,
    Status,
    OpenApi,
    GetLogLevel,
    SetLogLevel,
    GetConfig,
    GetPlan,
    PostPlan,
    ListServices,
    ServiceAction(ccnq_api::ServiceAction),
    Upgrade,
    FsProfiles,
    FsGateways,
    FsCalls,
    FsRegistrations,
    Couchdb,
    Metrics,
    Logs,
    SupportBundle,
    Capture,
}

/// One row of the route table.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// `None`: anyone may call it, without authenticating.
    pub role: Option<Role>,
    pub endpoint: Endpoint,
}

impl Route {
    /// Whether `path` is this route's; `Some(Some(name))` carries the `{name}` segment.
    pub fn capture(&self, path: &str) -> Option<Option<String>> {
        let mut name = None;
        let mut pattern = self.path.split('/');
        let mut actual = path.split('/');
        loop {
            match (pattern.next(), actual.next()) {
                (None, None) => return Some(name),
                (Some("{name}"), Some(seg)) if !seg.is_empty() => name = Some(seg.to_string()),
                (Some(p), Some(seg)) if p == seg => {}
                _ => return None,
            }
        }
    }

    /// Requests that change something are audited. A POST that only computes (the plan
    /// preview) changes nothing and is not.
    pub fn mutating(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD) && self.endpoint != Endpoint::PostPlan
    }

    /// What the audit log records: every change, and the support bundle (a copy of the
    /// host's state leaving it).
    pub fn audited(&self) -> bool {
        self.mutating() || self.endpoint == Endpoint::SupportBundle
    }
}

/// Every endpoint the daemon serves. Keep in step with `openapi::ApiDoc` (a test checks).
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/v1/health",
        role: None,
        endpoint: Endpoint::Health,
    },
    Route {
        method: Method::GET,
        path: "/v1/version",
        role: Some(Role::Reader),
        endpoint: Endpoint::Version,
    },
    Route {
        method: Method::GET,
        path: "/v1/status",
        role: Some(Role::Reader),
        endpoint: Endpoint::Status,
    },
    Route {
        method: Method::GET,
        path: "/v1/upgrade",
        role: Some(Role::Reader),
        endpoint: Endpoint::Upgrade,
    },
    Route {
        method: Method::GET,
        path: "/v1/openapi.json",
        role: Some(Role::Reader),
        endpoint: Endpoint::OpenApi,
    },
    Route {
        method: Method::GET,
        path: "/v1/log/level",
        role: Some(Role::Reader),
        endpoint: Endpoint::GetLogLevel,
    },
    Route {
        method: Method::PUT,
        path: "/v1/log/level",
        role: Some(Role::Operator),
        endpoint: Endpoint::SetLogLevel,
    },
    Route {
        method: Method::GET,
        path: "/v1/config",
        role: Some(Role::Reader),
        endpoint: Endpoint::GetConfig,
    },
    Route {
        method: Method::GET,
        path: "/v1/config/plan",
        role: Some(Role::Reader),
        endpoint: Endpoint::GetPlan,
    },
    // A preview changes nothing, so a reader may ask (see `Route::mutating`).
    Route {
        method: Method::POST,
        path: "/v1/config/plan",
        role: Some(Role::Reader),
        endpoint: Endpoint::PostPlan,
    },
    Route {
        method: Method::GET,
        path: "/v1/services",
        role: Some(Role::Reader),
        endpoint: Endpoint::ListServices,
    },
    // `?force=true` (no drain) also needs admin: checked by the handler, which sees it.
    Route {
        method: Method::POST,
        path: "/v1/services/{name}/start",
        role: Some(Role::Operator),
        endpoint: Endpoint::ServiceAction(ccnq_api::ServiceAction::Start),
    },
    Route {
        method: Method::POST,
        path: "/v1/services/{name}/stop",
        role: Some(Role::Operator),
        endpoint: Endpoint::ServiceAction(ccnq_api::ServiceAction::Stop),
    },
    Route {
        method: Method::POST,
        path: "/v1/services/{name}/restart",
        role: Some(Role::Operator),
        endpoint: Endpoint::ServiceAction(ccnq_api::ServiceAction::Restart),
    },
    Route {
        method: Method::POST,
        path: "/v1/capture",
        role: Some(Role::Operator),
        endpoint: Endpoint::Capture,
    },
    Route {
        method: Method::GET,
        path: "/v1/support-bundle",
        role: Some(Role::Operator),
        endpoint: Endpoint::SupportBundle,
    },
    Route {
        method: Method::GET,
        path: "/v1/logs",
        role: Some(Role::Reader),
        endpoint: Endpoint::Logs,
    },
    Route {
        method: Method::GET,
        path: "/v1/metrics",
        role: Some(Role::Reader),
        endpoint: Endpoint::Metrics,
    },
    Route {
        method: Method::GET,
        path: "/v1/couchdb",
        role: Some(Role::Reader),
        endpoint: Endpoint::Couchdb,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/profiles",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsProfiles,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/gateways",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsGateways,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/calls",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsCalls,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/registrations",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsRegistrations,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_and_method_appears_once() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.path, r.method.as_str())),
                "{} {} twice",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn only_health_is_public() {
        let public: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.role.is_none())
            .map(|r| r.path)
            .collect();
        assert_eq!(public, vec!["/v1/health"]);
    }

    #[test]
    fn mutating_routes_need_at_least_operator() {
        for r in ROUTES.iter().filter(|r| r.mutating()) {
            assert!(r.role >= Some(Role::Operator), "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn named_routes_capture_one_segment() {
        let r = ROUTES
            .iter()
            .find(|r| r.path == "/v1/services/{name}/restart")
            .unwrap();
        assert_eq!(
            r.capture("/v1/services/freeswitch/restart"),
            Some(Some("freeswitch".into()))
        );
        assert_eq!(r.capture("/v1/services//restart"), None);
        assert_eq!(r.capture("/v1/services/a/b/restart"), None);
        assert_eq!(r.capture("/v1/services/a/stop"), None);
        let list = ROUTES.iter().find(|r| r.path == "/v1/services").unwrap();
        assert_eq!(list.capture("/v1/services"), Some(None));
        assert_eq!(list.capture("/v1/services/"), None);
    }
}
