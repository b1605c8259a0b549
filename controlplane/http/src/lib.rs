//! `ccnq-http`: one HTTP(S) origin the control plane is a client of, and a connection to it.
//!
//! The local and central CouchDB and the update repository are each reached the same
//! way: hyper 1 over plain TCP or rustls, trusting a private CA file (or the system
//! bundle), a connect timeout that covers the TLS handshake, no credentials in URLs, and
//! one connection per request (the control plane talks at a low rate, and a fresh
//! connection never meets the "server closed an idle keep-alive connection just as we
//! reused it" race). What is said over the connection is each caller's business.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The system's CA bundle, for an https origin with no CA file of its own.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL or the CA file is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// Something took longer than allowed.
    #[error("timeout while {0}")]
    Timeout(&'static str),
}

/// Scheme, host and port of a base URL, and its path.
#[derive(Clone)]
pub struct Origin {
    host: String,
    port: u16,
    authority: String,
    base_path: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.base_path)
    }
}

impl Origin {
    /// `url`: `http://…` or `https://…`, without credentials (they would leak into
    /// logs). `ca_file`: the PEM CA(s) an https server's certificate must chain to
    /// (`None`: [`SYSTEM_CA_BUNDLE`]).
    pub fn parse(
        url: &str,
        ca_file: Option<&Path>,
        connect_timeout: Duration,
    ) -> Result<Origin, HttpError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| HttpError::Invalid(format!("URL {url:?}: {e}")))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => {
                return Err(HttpError::Invalid(format!(
                    "URL scheme {other:?}: http or https only"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| HttpError::Invalid(format!("URL {url:?} has no host")))?;
        if authority.as_str().contains('@') {
            return Err(HttpError::Invalid(
                "credentials in the URL: give them apart, they would leak into logs".into(),
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| HttpError::Invalid(format!("TLS server name {host:?}: {e}")))?;
            Some((tls_connector(ca_file)?, name))
        } else {
            None
        };
        Ok(Origin {
            authority: authority.as_str().to_string(),
            host,
            port,
            base_path: uri.path().trim_end_matches('/').to_string(),
            tls,
            connect_timeout,
        })
    }

    /// `host[:port]`, for the `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The URL's path without its trailing `/` (empty for the root).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// TCP connect plus TLS handshake, within the connect timeout.
    pub async fn connect(&self) -> Result<Stream, HttpError> {
        let fut = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| HttpError::Transport(format!("connect to {}: {e}", self.authority)))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Ok(Stream::Plain(tcp)),
                Some((connector, name)) => connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(|s| Stream::Tls(Box::new(s)))
                    .map_err(|e| HttpError::Transport(format!("TLS with {}: {e}", self.authority))),
            }
        };
        tokio::time::timeout(self.connect_timeout, fut)
            .await
            .map_err(|_| HttpError::Timeout("connecting"))?
    }

    /// A fresh HTTP/1.1 connection, ready for one request.
    pub async fn open(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let stream = self.connect().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpError::Transport(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            // The connection's errors reach the caller through the response or body.
            let _ = conn.await;
        });
        Ok(sender)
    }
}

fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_rustls::TlsConnector, HttpError> {
    let path = ca_file.unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
    let bad =
        |e: &dyn std::fmt::Display| HttpError::Invalid(format!("CA file {}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"holds no certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_credentials_refused() {
        let t = Duration::from_secs(1);
        let o = Origin::parse("http://127.0.0.1:5984/couch/", None, t).unwrap();
        assert_eq!(
            (o.authority(), o.base_path(), o.is_https()),
            ("127.0.0.1:5984", "/couch", false)
        );
        let o = Origin::parse("http://[::1]/", None, t).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 80));
        let e = Origin::parse("http://u:p@h/", None, t).unwrap_err();
        assert!(e.to_string().contains("credentials"), "{e}");
        let e = Origin::parse("ftp://h/", None, t).unwrap_err();
        assert!(e.to_string().contains("http or https only"), "{e}");
        let e = Origin::parse("https://h/", Some(Path::new("/nonexistent.pem")), t).unwrap_err();
        assert!(e.to_string().contains("CA file /nonexistent.pem"), "{e}");
    }
}
