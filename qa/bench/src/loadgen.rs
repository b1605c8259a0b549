//! A closed-loop HTTPS load generator that presents a client certificate.
//!
//! wrk and h2load cannot do mutual TLS, and the API's cost includes verifying the
//! client certificate, so the benchmark brings its own client. It opens `connections`
//! keep-alive connections (handshakes are not timed), and on each sends one request
//! after another for `duration`; it prints requests per second and latency percentiles
//! as one line of `key=value` pairs. The same client measures ccnqd and nginx.

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// host:port
    #[arg(long)]
    addr: String,
    #[arg(long, default_value = "/v1/status")]
    path: String,
    #[arg(long)]
    ca: PathBuf,
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(&args.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key)?;
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?,
    );
    let connector = tokio_rustls::TlsConnector::from(config);

    // Connect everything first: the measurement is of requests, not handshakes.
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let tcp = tokio::net::TcpStream::connect(&args.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        senders.push(sender);
    }

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut sender in senders {
        let path = args.path.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let req = http::Request::get(&path)
                    .header("host", "localhost")
                    .body(Empty::<Bytes>::new())
                    .expect("a static request");
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) if resp.status().is_success() => {
                        if resp.into_body().collect().await.is_err() {
                            errors += 1;
                            break;
                        }
                        latencies.push(t.elapsed().as_micros() as u32);
                    }
                    _ => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    println!(
        "connections={} requests={} errors={} rps={:.0} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        args.connections,
        all.len(),
        errors,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}
