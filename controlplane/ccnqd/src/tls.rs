//! TLS for the local API: the server's identity and whom it trusts.
//!
//! Clients prove who they are with a certificate signed by the site's admin CA (their
//! role is in the certificate), or, for scripts, with a bearer token inside the TLS
//! session. So the handshake *accepts* clients without a certificate, and *refuses* any
//! certificate that does not chain to the admin CA or is outside its validity: a stranger
//! or an expired certificate never reaches HTTP.
//!
//! Only TLS 1.3 and 1.2 are offered (rustls implements nothing older).

use crate::config::ApiConfig;
use rustls::crypto::ring;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("api.admin_ca: cannot read {path}: {reason}")]
    AdminCa { path: PathBuf, reason: String },
    #[error("cannot read the server certificate or key {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("cannot write the generated server certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a server certificate: {0}")]
    Generate(#[from] ccnq_pki::PkiError),
    #[error("invalid TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid admin CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The server's certificate chain and key, and where they came from.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: String,
    pub generated: bool,
}

/// Loads the configured certificate, or the one under `<data_dir>/tls/`; on first start,
/// when neither exists, makes a self-signed one there for `names`.
pub fn load_or_generate_identity(
    api: &ApiConfig,
    data_dir: &Path,
    names: &[String],
) -> Result<Identity, TlsError> {
    let (cert_path, key_path, may_generate) = match &api.cert_and_key {
        Some((c, k)) => (c.clone(), k.clone(), false),
        None => (
            data_dir.join("tls/server.crt"),
            data_dir.join("tls/server.key"),
            true,
        ),
    };
    let mut generated = false;
    if may_generate && !cert_path.exists() && !key_path.exists() {
        let issued = ccnq_pki::self_signed_server(names, ccnq_pki::Validity::days_from_now(3650))?;
        write_private(&key_path, issued.key_pem.as_bytes(), 0o600)?;
        write_private(&cert_path, issued.cert_pem.as_bytes(), 0o644)?;
        generated = true;
    }
    let identity_err = |path: &Path, reason: String| TlsError::Identity {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| identity_err(&cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(identity_err(
            &cert_path,
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| identity_err(&key_path, e.to_string()))?;
    Ok(Identity {
        fingerprint: ccnq_pki::fingerprint(&chain[0]),
        chain,
        key,
        generated,
    })
}

fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads the admin CA bundle: every certificate in it is a trust anchor for clients.
pub fn load_admin_ca(path: &Path) -> Result<RootCertStore, TlsError> {
    let err = |reason: String| TlsError::AdminCa {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    Ok(roots)
}

/// The rustls configuration for the API listener.
pub fn server_config(
    identity: Identity,
    admin_ca: RootCertStore,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(admin_ca), provider.clone())
            .allow_unauthenticated()
            .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
