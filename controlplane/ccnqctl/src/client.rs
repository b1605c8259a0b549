//! One HTTPS request to `ccnqd`, with the operator's certificate or token.
//!
//! The server is authenticated either by a CA (`--ca`: the site CA that issued its
//! certificate) or, for a host that made its own certificate on first start, by pinning
//! the SHA-256 fingerprint it logged (`--server-fingerprint`). There is no "insecure"
//! mode: an operator's credentials must never go to an unverified peer.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why a call failed; each kind has its own exit code (see `main.rs`).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("{0}")]
    Http(String),
}

/// How to reach and trust the server, and how to prove who we are.
pub struct Target {
    pub endpoint: http::Uri,
    pub ca: Option<PathBuf>,
    pub fingerprint: Option<[u8; 32]>,
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    pub token: Option<String>,
    pub timeout: Duration,
}

/// What the server answered.
pub struct Reply {
    pub status: http::StatusCode,
    pub body: Bytes,
}

impl Target {
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, CallError> {
        let provider = Arc::new(ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| CallError::Setup(e.to_string()))?;
        let builder = match (&self.fingerprint, &self.ca) {
            (Some(pin), _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { pin: *pin, provider })),
            (None, Some(ca)) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(ca)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| CallError::Setup(format!("--ca {}: {e}", ca.display())))?;
                for cert in certs {
                    roots.add(cert).map_err(|e| CallError::Setup(format!("--ca {}: {e}", ca.display())))?;
                }
                builder.with_root_certificates(roots)
            }
            (None, None) => {
                return Err(CallError::Setup(
                    "say how to trust the server: --ca FILE (the CA that issued its certificate) or --server-fingerprint SHA256 (the fingerprint ccnqd logged)".into(),
                ))
            }
        };
        let config = match &self.cert_and_key {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| CallError::Setup(format!("--cert {}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| CallError::Setup(format!("--key {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| CallError::Setup(format!("client certificate: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CallError> {
        tokio::time::timeout(self.timeout, self.call_inner(method, path, body))
            .await
            .map_err(|_| CallError::Connect {
                endpoint: self.endpoint.to_string(),
                reason: format!("no answer within {:?}", self.timeout),
            })?
    }

    async fn call_inner(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CallError> {
        let resp = self.open(method, path, body).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// `method path`, the answer's body handed to `each` as it arrives (a followed log never ends:
    /// only the answer's start is bound by the timeout). A failed request's whole body
    /// is returned instead, for its problem document.
    pub async fn stream(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        mut each: impl FnMut(&[u8]),
    ) -> Result<Reply, CallError> {
        let resp = tokio::time::timeout(self.timeout, self.open(method, path, body))
            .await
            .map_err(|_| CallError::Connect {
                endpoint: self.endpoint.to_string(),
                reason: format!("no answer within {:?}", self.timeout),
            })??;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let body = body
                .collect()
                .await
                .map_err(|e| CallError::Http(e.to_string()))?
                .to_bytes();
            return Ok(Reply { status, body });
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CallError::Http(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                each(data);
            }
        }
        Ok(Reply {
            status,
            body: Bytes::new(),
        })
    }

    /// Connects, sends the request and returns the answer's head, its body unread.
    async fn open(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Response<hyper::body::Incoming>, CallError> {
        let endpoint = self.endpoint.to_string();
        let connect_err = |reason: String| CallError::Connect {
            endpoint: endpoint.clone(),
            reason,
        };
        if self.endpoint.scheme_str() != Some("https") {
            return Err(CallError::Setup(format!(
                "--endpoint {endpoint}: must be an https:// URL"
            )));
        }
        let host = self
            .endpoint
            .host()
            .ok_or_else(|| CallError::Setup(format!("--endpoint {endpoint}: no host")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = self.endpoint.port_u16().unwrap_or(8443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let name = ServerName::try_from(host.clone())
            .map_err(|e| CallError::Setup(format!("--endpoint: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| connect_err(format!("TLS: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(
                http::header::HOST,
                self.endpoint
                    .authority()
                    .map(|a| a.as_str())
                    .unwrap_or("localhost"),
            )
            .header(
                http::header::USER_AGENT,
                concat!("ccnqctl/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            req = req.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            );
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CallError::Setup(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| connect_err(describe(&e)))
    }
}

/// hyper's errors hide the TLS alert that says why the server hung up; dig it out.
fn describe(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Accepts exactly the server certificate whose SHA-256 is pinned; handshake signatures
/// are still checked, so the server must hold that certificate's key.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = ccnq_pki::fingerprint(end_entity);
        let expected = ccnq_pki::fingerprint_hex(&self.pin);
        if seen == expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate fingerprint is {seen}, not the pinned {expected}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
