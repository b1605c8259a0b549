//! Who is calling, and what may they do.
//!
//! A caller is identified once per request, from the client certificate the TLS layer
//! already verified (role = the strongest known role among the subject's `OU`s) or else
//! from a bearer token. The route table says which role each endpoint needs; this module
//! only answers "who" and "may they".

use crate::config::Token;
use ccnq_api::Role;

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Certificate,
    Token,
    /// No credential, or one refused: audited as such (docs/api.md).
    Nothing,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Certificate => "certificate",
            Via::Token => "token",
            Via::Nothing => "none",
        }
    }
}

/// An authenticated caller. `role` is `None` for a valid certificate that carries no
/// role we know: such a caller is known (and audited) but may do nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The certificate subject (`CN=alice,OU=operator`) or `token:<name>`.
    pub who: String,
    pub role: Option<Role>,
    pub via: Via,
}

impl Caller {
    pub fn may(&self, needed: Role) -> bool {
        self.role.is_some_and(|r| r >= needed)
    }
}

/// The identity in a verified client certificate (DER of the end-entity certificate).
pub fn from_certificate(der: &[u8]) -> Option<Caller> {
    let subject = ccnq_pki::subject_of(der).ok()?;
    let role = subject
        .organizational_units
        .iter()
        .filter_map(|ou| ou.parse::<Role>().ok())
        .max();
    Some(Caller {
        who: subject.display,
        role,
        via: Via::Certificate,
    })
}

/// Why a presented bearer token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// The Authorization header is not `Bearer <token>`.
    Malformed,
    /// No configured token has this hash.
    Unknown,
}

/// Checks an `Authorization` header value against the configured token hashes.
pub fn from_bearer(header: &str, tokens: &[Token]) -> Result<Caller, TokenError> {
    let (scheme, secret) = header.trim().split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || secret.trim().is_empty() {
        return Err(TokenError::Malformed);
    }
    let digest = ccnq_pki::token_digest(secret);
    // Compare every hash in full: the time taken says nothing about which one was close.
    let mut found = None;
    for token in tokens {
        if constant_time_eq(&digest, &token.sha256) {
            found = Some(token);
        }
    }
    let token = found.ok_or(TokenError::Unknown)?;
    Ok(Caller {
        who: format!("token:{}", token.name),
        role: Some(token.role),
        via: Via::Token,
    })
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, role: Role, secret: &str) -> Token {
        Token {
            name: name.into(),
            role,
            sha256: ccnq_pki::token_digest(secret),
        }
    }

    #[test]
    fn bearer_token_maps_to_its_name_and_role() {
        let tokens = [
            token("backup", Role::Reader, "s3cret"),
            token("deploy", Role::Operator, "other"),
        ];
        let caller = from_bearer("Bearer other", &tokens).unwrap();
        assert_eq!(caller.who, "token:deploy");
        assert_eq!(caller.role, Some(Role::Operator));
        assert!(caller.may(Role::Reader) && caller.may(Role::Operator) && !caller.may(Role::Admin));
        assert_eq!(
            from_bearer("bearer s3cret", &tokens).unwrap().who,
            "token:backup"
        );
    }

    #[test]
    fn unknown_and_malformed_tokens_are_told_apart() {
        let tokens = [token("backup", Role::Reader, "s3cret")];
        assert_eq!(
            from_bearer("Bearer nope", &tokens),
            Err(TokenError::Unknown)
        );
        assert_eq!(
            from_bearer("Basic YWRtaW46eA==", &tokens),
            Err(TokenError::Malformed)
        );
        assert_eq!(from_bearer("Bearer ", &tokens), Err(TokenError::Malformed));
    }

    #[test]
    fn certificate_role_is_the_strongest_known_ou() {
        let ca = ccnq_pki::issue_ca("CA", ccnq_pki::Validity::days_from_now(1)).unwrap();
        let cert =
            ccnq_pki::issue_client(&ca, "alice", "admin", ccnq_pki::Validity::days_from_now(1))
                .unwrap();
        let der = ccnq_pki::pem_to_der(&cert.cert_pem).unwrap();
        let caller = from_certificate(&der).unwrap();
        assert_eq!(caller.role, Some(Role::Admin));
        assert!(caller.who.contains("CN=alice"));
    }
}
