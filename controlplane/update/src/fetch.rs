//! Fetching from the update repository's web server or mirror, over HTTP(S).
//!
//! Two kinds of fetch. Metadata files are small and whole: [`HttpTransport`] hands them
//! to `tough` (a 404 is "file not found", which is how `tough` learns that no newer root
//! exists). Artifacts are large: [`download`] writes one into a partial file on `/var`,
//! resuming with a `Range` request from what is already there (after a broken
//! connection or a restart of the daemon), at most at a configured rate, syncing to disk
//! as it goes so what is resumed from was really written, and checks the whole file
//! against the signed length and SHA-256 at the end. A file that fails the check is
//! removed: the next attempt starts again from nothing.

use crate::artifact;
use crate::error::{Refusal, UpdateError};
use crate::release::Artifact;
use bytes::Bytes;
use ccnq_http::{HttpError, Origin};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// How to reach the repository's server.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// PEM CA(s) of an https server with a private CA; `None`: the system bundle.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Longest wait for the response headers, then for each piece of the body.
    pub read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Metadata larger than this is an endless-data attack, not metadata.
const MAX_METADATA: usize = 16 << 20;

/// Where `url` is served from (scheme, host, port), with its TLS trust.
fn origin_of(settings: &HttpSettings, url: &Url) -> Result<Origin, HttpError> {
    Origin::parse(
        &url.origin().ascii_serialization(),
        settings.ca_file.as_deref(),
        settings.connect_timeout,
    )
}

/// Sends one GET for `url` (served by `origin`) with a `Range` from `from`, if any, and
/// waits for its headers.
async fn get(
    settings: &HttpSettings,
    origin: &Origin,
    url: &Url,
    from: Option<u64>,
) -> Result<hyper::Response<Incoming>, HttpError> {
    let mut sender = origin.open().await?;
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut req = Request::get(target).header(http::header::HOST, origin.authority());
    if let Some(from) = from {
        req = req.header(http::header::RANGE, format!("bytes={from}-"));
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| HttpError::Invalid(format!("GET {url}: {e}")))?;
    match tokio::time::timeout(settings.read_timeout, sender.send_request(req)).await {
        Err(_) => Err(HttpError::Timeout("waiting for the response headers")),
        Ok(Err(e)) => Err(HttpError::Transport(format!("GET {url}: {e}"))),
        Ok(Ok(resp)) => Ok(resp),
    }
}

/// A small file at `url` (a script, a pointer): its bytes, `None` if the server has no
/// such file (404), an error past `max` bytes.
pub async fn small_file(
    settings: &HttpSettings,
    url: &Url,
    max: usize,
) -> Result<Option<Vec<u8>>, UpdateError> {
    let unavailable = |e: HttpError| UpdateError::Unavailable(format!("{url}: {e}"));
    let origin = origin_of(settings, url).map_err(unavailable)?;
    let resp = get(settings, &origin, url, None)
        .await
        .map_err(unavailable)?;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Ok(None),
        s => return Err(unavailable(HttpError::Transport(format!("HTTP {s}")))),
    }
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(piece) = next_piece(&mut body, settings.read_timeout)
        .await
        .map_err(unavailable)?
    {
        if out.len() + piece.len() > max {
            return Err(UpdateError::Unavailable(format!(
                "{url}: more than {max} bytes"
            )));
        }
        out.extend_from_slice(&piece);
    }
    Ok(Some(out))
}

/// The next piece of a body, waiting at most `t`; `None` at its proper end.
async fn next_piece(body: &mut Incoming, t: Duration) -> Result<Option<Bytes>, HttpError> {
    loop {
        match tokio::time::timeout(t, body.frame()).await {
            Err(_) => return Err(HttpError::Timeout("reading the response body")),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(HttpError::Transport(format!("reading the body: {e}"))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// `tough`'s transport over HTTP(S) (and `file://`, through `tough`'s own). It keeps one
/// [`Origin`] per server: a repository load fetches several files from the same one,
/// and each `Origin` reads its CA bundle.
#[derive(Debug, Clone, Default)]
pub struct HttpTransport {
    pub settings: HttpSettings,
    origins: Arc<Mutex<HashMap<String, Origin>>>,
}

impl HttpTransport {
    pub fn new(settings: HttpSettings) -> HttpTransport {
        HttpTransport {
            settings,
            origins: Arc::default(),
        }
    }

    fn origin(&self, url: &Url) -> Result<Origin, HttpError> {
        let key = url.origin().ascii_serialization();
        let mut origins = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = origins.get(&key) {
            return Ok(o.clone());
        }
        let o = origin_of(&self.settings, url)?;
        origins.insert(key, o.clone());
        Ok(o)
    }
}

#[tough::async_trait]
impl Transport for HttpTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if url.scheme() == "file" {
            return tough::FilesystemTransport.fetch(url).await;
        }
        let other =
            |e: HttpError| TransportError::new_with_cause(TransportErrorKind::Other, &url, e);
        let origin = self.origin(&url).map_err(other)?;
        let resp = get(&self.settings, &origin, &url, None)
            .await
            .map_err(other)?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(TransportError::new(TransportErrorKind::FileNotFound, &url))
            }
            s => return Err(other(HttpError::Transport(format!("HTTP {s}")))),
        }
        let mut body = resp.into_body();
        let mut whole = Vec::new();
        while let Some(piece) = next_piece(&mut body, self.settings.read_timeout)
            .await
            .map_err(other)?
        {
            whole.extend_from_slice(&piece);
            if whole.len() > MAX_METADATA {
                return Err(other(HttpError::Transport(format!(
                    "more than {MAX_METADATA} bytes of metadata"
                ))));
            }
        }
        let once = futures_util::stream::once(std::future::ready(Ok(Bytes::from(whole))));
        Ok(Box::pin(once))
    }
}

/// How fast, and who hears of the progress.
pub struct Pace<'a> {
    /// Bytes per second at most (`None`: as fast as it goes).
    pub rate_limit: Option<u64>,
    /// Called with (bytes on disk, bytes in all) as the file grows.
    pub progress: &'a (dyn Fn(u64, u64) + Send + Sync),
}

/// Bytes written between two syncs to disk: what a restart resumes from.
const SYNC_EVERY: u64 = 8 << 20;

/// Downloads `artifact` from `url` into `part` (resuming from what `part` holds) and
/// checks it. On success `part` holds exactly the signed bytes.
pub async fn download(
    settings: &HttpSettings,
    url: &Url,
    part: &Path,
    artifact: &Artifact,
    pace: &Pace<'_>,
) -> Result<(), UpdateError> {
    let local = |e: std::io::Error| UpdateError::Local(format!("{}: {e}", part.display()));
    let unavailable = |e: HttpError| UpdateError::Unavailable(format!("{url}: {e}"));
    let mut have = match tokio::fs::metadata(part).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(local(e)),
    };
    if have > artifact.length {
        have = 0;
    }
    if have < artifact.length {
        let origin = origin_of(settings, url).map_err(unavailable)?;
        let resp = get(settings, &origin, url, (have > 0).then_some(have))
            .await
            .map_err(unavailable)?;
        let append = match resp.status() {
            StatusCode::PARTIAL_CONTENT => true,
            // A server that ignores `Range` sends it all again.
            StatusCode::OK => false,
            s => return Err(unavailable(HttpError::Transport(format!("HTTP {s}")))),
        };
        if !append {
            have = 0;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .await
            .map_err(local)?;
        let mut body = resp.into_body();
        let started = Instant::now();
        let mut limiter = pace.rate_limit.map(Limiter::new);
        let mut unsynced = 0u64;
        (pace.progress)(have, artifact.length);
        while let Some(piece) = next_piece(&mut body, settings.read_timeout)
            .await
            .map_err(unavailable)?
        {
            let n = piece.len() as u64;
            if have + n > artifact.length {
                drop(file);
                let _ = tokio::fs::remove_file(part).await;
                return Err(UpdateError::refused(
                    Refusal::Artifact,
                    format!("{url}: more than the {} bytes signed", artifact.length),
                ));
            }
            file.write_all(&piece).await.map_err(local)?;
            have += n;
            unsynced += n;
            if unsynced >= SYNC_EVERY {
                file.sync_data().await.map_err(local)?;
                unsynced = 0;
            }
            (pace.progress)(have, artifact.length);
            if let Some(wait) = limiter.as_mut().and_then(|l| l.wait(n, started.elapsed())) {
                tokio::time::sleep(wait).await;
            }
        }
        file.sync_data().await.map_err(local)?;
        if have < artifact.length {
            // Kept: the next attempt resumes from here.
            return Err(UpdateError::Unavailable(format!(
                "{url}: the body ended after {have} of {} bytes",
                artifact.length
            )));
        }
    }
    if let Err(e) = artifact::check(part, artifact).await {
        if e.refusal().is_some() {
            let _ = tokio::fs::remove_file(part).await;
        }
        return Err(e);
    }
    Ok(())
}

/// A rate limit as an average over the transfer, that never lets a slow stretch (a
/// congested link, a stalled server) be made up by a burst of more than a second's
/// worth: once more than a second behind, it counts afresh from there.
#[derive(Debug)]
struct Limiter {
    rate: u64,
    /// Where the current count began (as time into the transfer) and bytes since.
    since: Duration,
    bytes: u64,
}

impl Limiter {
    fn new(rate: u64) -> Limiter {
        Limiter {
            rate,
            since: Duration::ZERO,
            bytes: 0,
        }
    }

    /// `n` more bytes arrived at `now` (time into the transfer): how long to wait.
    fn wait(&mut self, n: u64, now: Duration) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        self.bytes += n;
        let due = self.since + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if now > due + Duration::from_secs(1) {
            self.since = now;
            self.bytes = 0;
            return None;
        }
        due.checked_sub(now).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_transport_keeps_one_origin_per_server() {
        let t = HttpTransport::default();
        let url = |u: &str| Url::parse(u).unwrap();
        t.origin(&url("http://127.0.0.1:8080/metadata/timestamp.json"))
            .unwrap();
        t.origin(&url("http://127.0.0.1:8080/metadata/2.root.json"))
            .unwrap();
        t.origin(&url("http://127.0.0.1:8080/targets/x.efi"))
            .unwrap();
        assert_eq!(t.origins.lock().unwrap().len(), 1);
        t.origin(&url("http://127.0.0.1:8081/metadata/timestamp.json"))
            .unwrap();
        assert_eq!(
            t.origins.lock().unwrap().len(),
            2,
            "another port, another server"
        );
        // A clone (tough clones its transport) shares what is kept.
        t.clone().origin(&url("http://[::1]/a")).unwrap();
        assert_eq!(t.origins.lock().unwrap().len(), 3);
    }

    #[test]
    fn the_limiter_waits_when_ahead_of_the_rate() {
        let mut l = Limiter::new(MIB);
        assert_eq!(l.wait(MIB, Duration::ZERO), Some(s(1)));
        assert_eq!(l.wait(2 * MIB, s(2)), Some(s(1)));
        assert_eq!(l.wait(MIB, s(4)), None, "on time");
        assert_eq!(
            Limiter::new(0).wait(MIB, Duration::ZERO),
            None,
            "0: no limit"
        );
    }

    #[test]
    fn a_slow_stretch_is_not_made_up_by_a_burst() {
        let mut l = Limiter::new(MIB);
        assert_eq!(l.wait(MIB, s(1)), None);
        // Ten seconds of nothing, then data as fast as it comes: the count starts again
        // there, so the burst is held to the rate, not let run for ten seconds' worth.
        assert_eq!(l.wait(MIB, s(11)), None);
        assert_eq!(l.wait(MIB, s(11)), Some(s(1)));
        assert_eq!(l.wait(MIB, s(11)), Some(s(2)));
    }
}
