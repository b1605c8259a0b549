//! Certificates for the local API, so that nobody needs openssl incantations.
//!
//! A site has one *admin CA*. It signs role certificates for the people and programs that
//! talk to `ccnqd` (the role travels in the subject's `OU`), and it may sign the servers'
//! own certificates. A host that was never given a server certificate makes a self-signed
//! one on first start and logs its fingerprint, so an operator can pin it.
//!
//! Keys are ECDSA P-256: small, fast to verify, and accepted by every TLS stack we meet.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// The roles a client certificate can carry, weakest first.
pub const ROLES: [&str; 3] = ["reader", "operator", "admin"];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    #[error("unparsable certificate: {0}")]
    Parse(String),
    #[error("unknown role {0:?} (expected one of reader, operator, admin)")]
    UnknownRole(String),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How long a certificate is valid, from a point in time. `not_before` is backdated by
/// an hour so that a host whose clock lags a little still accepts a fresh certificate.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

fn base_params(common_name: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params
}

/// A site's admin CA: a self-signed CA allowed to sign leaf certificates only.
pub fn issue_ca(common_name: &str, validity: Validity) -> Result<Issued, PkiError> {
    let mut params = base_params(common_name, validity);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A client certificate for `role`, signed by the CA. The role is the subject's `OU`.
pub fn issue_client(
    ca: &Issued,
    common_name: &str,
    role: &str,
    validity: Validity,
) -> Result<Issued, PkiError> {
    if !ROLES.contains(&role) {
        return Err(PkiError::UnknownRole(role.to_string()));
    }
    let mut params = base_params(common_name, validity);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    sign_leaf(params, ca)
}

/// A server certificate for the given DNS names and addresses, signed by the CA.
pub fn issue_server(ca: &Issued, names: &[String], validity: Validity) -> Result<Issued, PkiError> {
    sign_leaf(server_params(names, validity)?, ca)
}

/// A self-signed server certificate: what a host makes for itself on first start.
pub fn self_signed_server(names: &[String], validity: Validity) -> Result<Issued, PkiError> {
    let params = server_params(names, validity)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn server_params(names: &[String], validity: Validity) -> Result<CertificateParams, PkiError> {
    let cn = names.first().map(String::as_str).unwrap_or("ccnqd");
    let mut params = base_params(cn, validity);
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

fn sign_leaf(params: CertificateParams, ca: &Issued) -> Result<Issued, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    // rcgen signs with a `Certificate`; rebuilding it from the CA's own PEM and key gives
    // the same subject and key, which is all a signature by that CA needs.
    let ca_params = CertificateParams::from_ca_cert_pem(&ca.cert_pem)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// SHA-256 of a certificate's DER, as colon-separated upper-case hex: the form operators
/// compare by eye and `ccnqctl --server-fingerprint` accepts.
pub fn fingerprint(der: &[u8]) -> String {
    fingerprint_hex(&Sha256::digest(der).into())
}

/// A SHA-256 digest in the form [`fingerprint`] prints.
pub fn fingerprint_hex(digest: &[u8; 32]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a fingerprint in the form [`fingerprint`] prints, or as plain hex, with an
/// optional `sha256:` prefix.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What the API needs from a client certificate: who it is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The full subject, e.g. `CN=alice,OU=operator`, as written in the audit log.
    pub display: String,
    pub common_name: Option<String>,
    /// Every `OU` in the subject; the role is the strongest known one among them.
    pub organizational_units: Vec<String>,
}

/// Reads the subject of a DER certificate.
pub fn subject_of(der: &[u8]) -> Result<Subject, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let organizational_units = subject
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .map(str::to_string)
        .collect();
    Ok(Subject {
        display: subject.to_string(),
        common_name,
        organizational_units,
    })
}

/// The first certificate of a PEM text, as DER.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| PkiError::Pem(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_carries_its_role_and_name() {
        let ca = issue_ca("test CA", Validity::days_from_now(1)).unwrap();
        let alice = issue_client(&ca, "alice", "operator", Validity::days_from_now(1)).unwrap();
        let subject = subject_of(&pem_to_der(&alice.cert_pem).unwrap()).unwrap();
        assert_eq!(subject.common_name.as_deref(), Some("alice"));
        assert_eq!(subject.organizational_units, vec!["operator".to_string()]);
        assert!(subject.display.contains("CN=alice"), "{}", subject.display);
    }

    #[test]
    fn unknown_role_is_refused() {
        let ca = issue_ca("test CA", Validity::days_from_now(1)).unwrap();
        let err = issue_client(&ca, "mallory", "root", Validity::days_from_now(1)).unwrap_err();
        assert!(matches!(err, PkiError::UnknownRole(r) if r == "root"));
    }

    #[test]
    fn fingerprint_round_trips_in_both_spellings() {
        let der = b"not really a certificate";
        let printed = fingerprint(der);
        assert_eq!(printed.len(), 32 * 3 - 1);
        let parsed = parse_fingerprint(&printed).unwrap();
        let plain = printed.replace(':', "").to_lowercase();
        assert_eq!(parse_fingerprint(&format!("sha256:{plain}")), Some(parsed));
        assert_eq!(parse_fingerprint("AB:CD"), None);
    }

    #[test]
    fn server_certificate_names_addresses_and_hosts() {
        let names = vec!["sbc1.example.net".to_string(), "127.0.0.1".to_string()];
        let server = self_signed_server(&names, Validity::days_from_now(1)).unwrap();
        let der = pem_to_der(&server.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let text = format!("{:?}", san.value.general_names);
        assert!(text.contains("sbc1.example.net"), "{text}");
        assert!(
            text.contains("127.0.0.1") || text.contains("[127, 0, 0, 1]"),
            "{text}"
        );
    }
}

/// A new bearer token: 32 random bytes, URL-safe, prefixed so it is recognisable in a
/// leaked file or a shell history (`ccnq_…`).
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("ccnq_{hex}"))
}

/// What the daemon's configuration stores for a token: the hex SHA-256 of its secret.
/// Tokens are 256-bit random secrets, so a fast hash is enough to make a leaked
/// configuration useless; a password hash would only slow every request.
pub fn token_hash(secret: &str) -> String {
    token_digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a token secret, surrounding white space ignored (a token read from a
/// file keeps its newline): what the daemon compares against the configured hashes.
pub fn token_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.trim().as_bytes()).into()
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_64_hex_digits() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("ccnq_") && a.len() == 5 + 64);
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            token_hash(&format!("{a}\n")),
            h,
            "a trailing newline from a file is ignored"
        );
    }
}
