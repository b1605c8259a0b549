//! The API listener: TCP accept, TLS handshake, HTTP/1.1 and HTTP/2, and shutdown.
//!
//! Bounded in every direction a client could abuse: a handshake must finish within the
//! configured timeout, at most `max_connections` connections are served at once (extra
//! ones are closed at once rather than queued), request headers must arrive in time,
//! and bodies are size-limited by the handlers. On shutdown the listeners close, every
//! connection is asked to finish its in-flight requests, and whatever is still running
//! after the grace period is dropped.

use crate::api::{self, Connection, Daemon};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Everything a running listener needs, shared by its connection tasks.
pub struct Server {
    pub daemon: Arc<Daemon>,
    pub acceptor: TlsAcceptor,
    pub limit: Arc<Semaphore>,
    /// Flips to `true` when the daemon begins to stop.
    pub shutdown: watch::Receiver<bool>,
    /// Each connection task holds a clone; when all are dropped, every connection is done.
    pub done: mpsc::Sender<()>,
}

/// Binds every configured address. Done before `READY=1`, so readiness means "accepting".
pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        log::info!("API listening on https://{}", listener.local_addr()?);
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Accepts connections until shutdown.
pub async fn accept_loop(server: Arc<Server>, listener: TcpListener) {
    let mut shutdown = server.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off a little instead of spinning.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = server.limit.clone().try_acquire_owned() else {
            log::warn!(peer = peer.to_string().as_str(); "connection refused: {} connections already open", server.daemon.config.api.max_connections);
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            serve_connection(&server, stream, peer).await;
            drop(permit);
        });
    }
}

async fn serve_connection(server: &Server, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let timeout = server.daemon.config.api.handshake_timeout;
    let tls = match tokio::time::timeout(timeout, server.acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            log::info!(peer = peer.to_string().as_str(); "TLS handshake refused: {e}");
            return;
        }
        Err(_) => {
            log::info!(peer = peer.to_string().as_str(); "TLS handshake timed out after {timeout:?}");
            return;
        }
    };
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| crate::auth::from_certificate(cert));
    let conn = Arc::new(Connection { peer, certificate });
    let daemon = server.daemon.clone();
    let service = service_fn(move |req| api::handle(daemon.clone(), conn.clone(), req));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let _done = server.done.clone();
    let mut shutdown = server.shutdown.clone();
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                log::debug!(peer = peer.to_string().as_str(); "connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            // Finish what is in flight, accept nothing new on this connection.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
