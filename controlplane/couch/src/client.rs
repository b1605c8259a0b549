//! HTTP client for CouchDB 3 (and pouchdb-server, on which it must work too).
//!
//! One module talks to CouchDB: hyper 1 over a plain or rustls connection, with the
//! habits spec/couchdb.md asks for: `Content-Type: application/json` on every request
//! (CouchDB answers 415 otherwise), a connect timeout and a timeout per read (never a
//! total one: a `_changes` feed lives for days), errors classified by status and `error`
//! field, `?rev=` on every DELETE, `_local/` writes that send the current `_rev`, and
//! `_bulk_docs` results matched by id.
//!
//! Each request uses its own connection (`ccnq_http::Origin`): the control plane talks
//! to the CouchDB on its own host at a low rate, and a fresh connection never meets the
//! "server closed an idle keep-alive connection just as we reused it" race, which would
//! need retries of non-idempotent writes to paper over.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;

use crate::changes::{parse_line, FeedLine, FeedRequest, LineSplitter};
use crate::error::{CouchError, ErrorBody};
use ccnq_http::Origin;

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Basic` on every request.
    Basic {
        user: String,
        password: String,
    },
    /// `POST /_session` once, then the `AuthSession` cookie; on a 401 the client logs in
    /// again and retries the request once (the session expired).
    Cookie {
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    // Never print a password into a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => write!(f, "None"),
            Auth::Basic { user, .. } => write!(f, "Basic({user})"),
            Auth::Cookie { user, .. } => write!(f, "Cookie({user})"),
        }
    }
}

impl Auth {
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }
}

/// Where and how to reach one CouchDB server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL without credentials: `http://127.0.0.1:5984`, `https://central:6984/couch`.
    pub url: String,
    pub auth: Auth,
    /// PEM file with the CA(s) that signed an https server's certificate (the central
    /// server's private CA). `None`: the system bundle `/etc/ssl/certs/ca-certificates.crt`.
    pub ca_file: Option<PathBuf>,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Longest wait for any single read: the response headers, then each body chunk.
    pub read_timeout: Duration,
}

impl ClientConfig {
    pub fn new(url: &str, auth: Auth) -> Self {
        ClientConfig {
            url: url.to_string(),
            auth,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// A CouchDB server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Origin,
    auth: Auth,
    cookie: Mutex<Option<String>>,
    read_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({:?}, {:?})", self.inner.origin, self.inner.auth)
    }
}

/// Percent-encodes one path segment or query value: everything but RFC 3986 unreserved
/// characters and `:` `@` (so `host:a.example.net` stays readable in logs).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Path of a document: `_local/` and `_design/` keep their slash, the rest is encoded.
pub fn doc_path(db: &str, id: &str) -> String {
    for prefix in ["_local/", "_design/"] {
        if let Some(rest) = id.strip_prefix(prefix) {
            return format!(
                "/{}/{prefix}{}",
                encode_component(db),
                encode_component(rest)
            );
        }
    }
    format!("/{}/{}", encode_component(db), encode_component(id))
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Basic …` header value for a user and password.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Reads the next data chunk of a body, waiting at most `t` for it. `Ok(None)`: the body
/// ended properly (for chunked encoding: the closing `0\r\n\r\n` arrived).
pub(crate) async fn next_chunk(
    body: &mut Incoming,
    t: Duration,
) -> Result<Option<Bytes>, CouchError> {
    loop {
        match tokio::time::timeout(t, body.frame()).await {
            Err(_) => return Err(CouchError::Timeout("reading the response body")),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(CouchError::Transport(format!("reading the body: {e}")))
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Documents above this size are not configuration: refuse rather than buffer.
const MAX_BODY: usize = 64 * 1024 * 1024;

async fn read_body(body: &mut Incoming, t: Duration) -> Result<Vec<u8>, CouchError> {
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(body, t).await? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_BODY {
            return Err(CouchError::Decode(format!(
                "response body larger than {MAX_BODY} bytes"
            )));
        }
    }
    Ok(out)
}

fn decode(body: &[u8]) -> Result<Value, CouchError> {
    serde_json::from_slice(body).map_err(|e| {
        CouchError::Decode(format!(
            "{e}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, CouchError> {
        let origin = Origin::parse(
            &config.url,
            config.ca_file.as_deref(),
            config.connect_timeout,
        )?;
        Ok(Client {
            inner: Arc::new(Inner {
                origin,
                auth: config.auth,
                cookie: Mutex::new(None),
                read_timeout: config.read_timeout,
            }),
        })
    }

    /// A handle on one database of this server.
    pub fn db(&self, name: &str) -> Db {
        Db {
            client: self.clone(),
            name: name.to_string(),
        }
    }

    pub fn read_timeout(&self) -> Duration {
        self.inner.read_timeout
    }

    /// `GET /`: the welcome object (`version`, `vendor`, …).
    pub async fn server_info(&self) -> Result<Value, CouchError> {
        self.json(Method::GET, "/", None).await
    }

    /// Sends one request on a fresh connection and waits (at most `read_timeout`) for the
    /// response headers.
    async fn send_once(
        &self,
        method: &Method,
        path_and_query: &str,
        body: &Bytes,
        read_timeout: Duration,
    ) -> Result<Response<Incoming>, CouchError> {
        let mut sender = self.inner.origin.open().await?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!(
                "{}{}",
                self.inner.origin.base_path(),
                path_and_query
            ))
            .header(http::header::HOST, self.inner.origin.authority())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json");
        match &self.inner.auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                req = req.header(http::header::AUTHORIZATION, basic_header(user, password));
            }
            Auth::Cookie { .. } => {
                let cookie = self.inner.cookie.lock().map(|c| c.clone()).unwrap_or(None);
                if let Some(cookie) = cookie {
                    req = req.header(http::header::COOKIE, cookie);
                }
            }
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| CouchError::Invalid(format!("request {path_and_query:?}: {e}")))?;
        match tokio::time::timeout(read_timeout, sender.send_request(req)).await {
            Err(_) => Err(CouchError::Timeout("waiting for the response headers")),
            Ok(Err(e)) => Err(CouchError::Transport(format!(
                "{method} {path_and_query}: {e}"
            ))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// `POST /_session` and keeps the `AuthSession` cookie.
    async fn login(&self, user: &str, password: &str) -> Result<(), CouchError> {
        let body = Bytes::from(serde_json::json!({"name": user, "password": password}).to_string());
        if let Ok(mut c) = self.inner.cookie.lock() {
            *c = None;
        }
        let mut resp = self
            .send_once(&Method::POST, "/_session", &body, self.inner.read_timeout)
            .await?;
        let status = resp.status();
        let cookie = resp
            .headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("AuthSession="))
            .and_then(|v| v.split(';').next())
            .map(str::to_string);
        let bytes = read_body(resp.body_mut(), self.inner.read_timeout).await?;
        if !status.is_success() {
            return Err(CouchError::from_status(status.as_u16(), &bytes));
        }
        let cookie = cookie
            .ok_or_else(|| CouchError::Decode("POST /_session set no AuthSession cookie".into()))?;
        if let Ok(mut c) = self.inner.cookie.lock() {
            *c = Some(cookie);
        }
        Ok(())
    }

    /// One request with authentication handled: a cookie session is opened when missing,
    /// and renewed once if the server answers 401.
    pub(crate) async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        read_timeout: Duration,
    ) -> Result<Response<Incoming>, CouchError> {
        let body = Bytes::from(body.unwrap_or_default());
        if let Auth::Cookie { user, password } = &self.inner.auth {
            let have = self
                .inner
                .cookie
                .lock()
                .map(|c| c.is_some())
                .unwrap_or(false);
            let mut fresh = false;
            if !have {
                self.login(user, password).await?;
                fresh = true;
            }
            let resp = self
                .send_once(&method, path_and_query, &body, read_timeout)
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED || fresh {
                return Ok(resp);
            }
            drop(resp);
            self.login(user, password).await?;
            return self
                .send_once(&method, path_and_query, &body, read_timeout)
                .await;
        }
        self.send_once(&method, path_and_query, &body, read_timeout)
            .await
    }

    /// A request whose answer is one JSON value; non-2xx answers become typed errors.
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CouchError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let mut resp = self
            .send(method, path, body, self.inner.read_timeout)
            .await?;
        let status = resp.status();
        let bytes = read_body(resp.body_mut(), self.inner.read_timeout).await?;
        if !status.is_success() {
            return Err(CouchError::from_status(status.as_u16(), &bytes));
        }
        decode(&bytes)
    }
}

/// One result of `_bulk_docs`, for the document of the request with this `_id`.
#[derive(Debug)]
pub struct BulkResult {
    pub id: String,
    /// The new revision, or why this document was not written.
    pub result: Result<String, CouchError>,
}

/// One database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    client: Client,
    name: String,
}

fn rev_of(v: &Value) -> Result<String, CouchError> {
    v.get("rev")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CouchError::Decode(format!("write answer without rev: {v}")))
}

impl Db {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn path(&self) -> String {
        format!("/{}", encode_component(&self.name))
    }

    /// `GET /db`.
    pub async fn info(&self) -> Result<Value, CouchError> {
        self.client.json(Method::GET, &self.path(), None).await
    }

    /// `GET /db`: false on 404, any other failure is an error.
    pub async fn exists(&self) -> Result<bool, CouchError> {
        match self.info().await {
            Ok(_) => Ok(true),
            Err(CouchError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PUT /db` (admin only: a non-admin PUT crashes pouchdb-server). Ok(false) if the
    /// database already existed (412 `file_exists`).
    pub async fn create(&self) -> Result<bool, CouchError> {
        match self.client.json(Method::PUT, &self.path(), None).await {
            Ok(_) => Ok(true),
            Err(CouchError::BadRequest { status: 412, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /db` (admin).
    pub async fn delete_db(&self) -> Result<(), CouchError> {
        self.client
            .json(Method::DELETE, &self.path(), None)
            .await
            .map(|_| ())
    }

    /// `PUT /db/_security`. pouchdb-server keeps databases world-readable until this is set.
    pub async fn put_security(&self, security: &Value) -> Result<(), CouchError> {
        let path = format!("{}/_security", self.path());
        self.client
            .json(Method::PUT, &path, Some(security))
            .await
            .map(|_| ())
    }

    /// `GET /db/id[?rev=]`.
    pub async fn get(&self, id: &str, rev: Option<&str>) -> Result<Value, CouchError> {
        let mut path = doc_path(&self.name, id);
        if let Some(rev) = rev {
            path.push_str("?rev=");
            path.push_str(&encode_component(rev));
        }
        self.client.json(Method::GET, &path, None).await
    }

    /// `GET /db/id`, `None` on 404.
    pub async fn get_opt(&self, id: &str) -> Result<Option<Value>, CouchError> {
        match self.get(id, None).await {
            Ok(v) => Ok(Some(v)),
            Err(CouchError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /db/id?<query>` (`conflicts=true`, `revs=true`), `None` on 404. The query is
    /// sent as given: the caller's own constant, never user input.
    pub async fn get_opt_with(&self, id: &str, query: &str) -> Result<Option<Value>, CouchError> {
        let path = format!("{}?{query}", doc_path(&self.name, id));
        match self.client.json(Method::GET, &path, None).await {
            Ok(v) => Ok(Some(v)),
            Err(CouchError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /db/id` with the document as given (its `_rev`, if any, decides which
    /// revision it replaces; 409 if stale). Returns the new revision.
    pub async fn put(&self, id: &str, doc: &Value) -> Result<String, CouchError> {
        let v = self
            .client
            .json(Method::PUT, &doc_path(&self.name, id), Some(doc))
            .await?;
        rev_of(&v)
    }

    /// `DELETE /db/id?rev=`: the revision is mandatory (pouchdb-server would delete the
    /// current one without it). Returns the tombstone's revision.
    pub async fn delete(&self, id: &str, rev: &str) -> Result<String, CouchError> {
        let path = format!("{}?rev={}", doc_path(&self.name, id), encode_component(rev));
        let v = self.client.json(Method::DELETE, &path, None).await?;
        rev_of(&v)
    }

    /// `GET /db/_local/name`, `None` on 404.
    pub async fn get_local(&self, name: &str) -> Result<Option<Value>, CouchError> {
        self.get_opt(&format!("_local/{name}")).await
    }

    /// Writes `_local/name` with the current `_rev` read first (pouchdb-server refuses a
    /// write without it, CouchDB would overwrite). A 409 (someone wrote in between) is
    /// retried a few times, re-reading each time.
    pub async fn put_local(&self, name: &str, body: &Value) -> Result<String, CouchError> {
        let id = format!("_local/{name}");
        let mut doc = body.clone();
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| CouchError::Invalid("a _local document must be a JSON object".into()))?;
        let mut last = None;
        for _ in 0..5 {
            obj.remove("_rev");
            if let Some(current) = self.get_opt(&id).await? {
                if let Some(rev) = current.get("_rev") {
                    obj.insert("_rev".into(), rev.clone());
                }
            }
            obj.insert("_id".into(), Value::String(id.clone()));
            match self.put(&id, &Value::Object(obj.clone())).await {
                Err(CouchError::Conflict(b)) => last = Some(b),
                other => return other,
            }
        }
        Err(CouchError::Conflict(last.unwrap_or_default()))
    }

    /// `POST /db/_bulk_docs`. Every document must carry a distinct `_id`: results are
    /// matched to documents by id (pouchdb-server's order is not stable) and returned in
    /// the order of `docs`.
    pub async fn bulk_docs(&self, docs: &[Value]) -> Result<Vec<BulkResult>, CouchError> {
        let mut ids = Vec::with_capacity(docs.len());
        for d in docs {
            let id = d.get("_id").and_then(Value::as_str).ok_or_else(|| {
                CouchError::Invalid("_bulk_docs: every document needs an _id".into())
            })?;
            if ids.contains(&id) {
                return Err(CouchError::Invalid(format!(
                    "_bulk_docs: _id {id:?} appears twice"
                )));
            }
            ids.push(id);
        }
        let path = format!("{}/_bulk_docs", self.path());
        let answer = self
            .client
            .json(
                Method::POST,
                &path,
                Some(&serde_json::json!({ "docs": docs })),
            )
            .await?;
        let rows = answer.as_array().ok_or_else(|| {
            CouchError::Decode(format!("_bulk_docs answer is not a list: {answer}"))
        })?;
        let mut by_id = std::collections::HashMap::new();
        for row in rows {
            if let Some(id) = row.get("id").and_then(Value::as_str) {
                by_id.insert(id.to_string(), row);
            }
        }
        ids.into_iter()
            .map(|id| {
                let row = by_id.get(id).ok_or_else(|| {
                    CouchError::Decode(format!("_bulk_docs answer has no result for {id:?}"))
                })?;
                let result = match row.get("error").and_then(Value::as_str) {
                    Some(error) => Err(CouchError::from_bulk_error(ErrorBody {
                        error: error.to_string(),
                        reason: row
                            .get("reason")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    })),
                    None => rev_of(row),
                };
                Ok(BulkResult {
                    id: id.to_string(),
                    result,
                })
            })
            .collect()
    }

    /// Opens a continuous `_changes` feed filtered to `doc_ids`. Each read waits at most
    /// `read_timeout` (choose about twice the heartbeat).
    pub async fn changes_feed(
        &self,
        doc_ids: &[String],
        since: &Value,
        heartbeat: Duration,
        read_timeout: Duration,
    ) -> Result<FeedStream, CouchError> {
        let req = FeedRequest {
            db: &self.name,
            doc_ids,
            heartbeat_ms: heartbeat.as_millis().max(1) as u64,
            since,
        };
        let mut resp = self
            .client
            .send(
                Method::POST,
                &req.path_and_query(),
                Some(req.body()),
                read_timeout,
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = read_body(resp.body_mut(), read_timeout)
                .await
                .unwrap_or_default();
            return Err(CouchError::from_status(status.as_u16(), &bytes));
        }
        Ok(FeedStream {
            body: resp.into_body(),
            splitter: LineSplitter::new(),
            pending: std::collections::VecDeque::new(),
            read_timeout,
        })
    }
}

/// An open continuous feed: typed lines, one at a time.
pub struct FeedStream {
    body: Incoming,
    splitter: LineSplitter,
    pending: std::collections::VecDeque<Vec<u8>>,
    read_timeout: Duration,
}

impl FeedStream {
    /// The next line. `Ok(None)`: the server closed the body properly (after a
    /// `last_seq` line, normally). A body that stops mid-line, a reset, or silence longer
    /// than the read timeout are errors (`Transport`, `Timeout`).
    pub async fn next_line(&mut self) -> Result<Option<FeedLine>, CouchError> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return parse_line(&line).map(Some);
            }
            match next_chunk(&mut self.body, self.read_timeout).await? {
                Some(chunk) => self.pending.extend(self.splitter.push(&chunk)?),
                None if self.splitter.unfinished().is_empty() => return Ok(None),
                None => {
                    return Err(CouchError::Transport(format!(
                        "feed ended in the middle of a line ({} bytes)",
                        self.splitter.unfinished().len()
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_matches_recordings() {
        // The recordings' `Authorization: Basic YWRtaW46c2VjcmV0` is admin:secret.
        assert_eq!(basic_header("admin", "secret"), "Basic YWRtaW46c2VjcmV0");
        assert_eq!(basic_header("bob", "bobpw"), "Basic Ym9iOmJvYnB3");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn paths_are_encoded_but_local_keeps_its_slash() {
        assert_eq!(
            doc_path("provisioning", "host:a.example.net"),
            "/provisioning/host:a.example.net"
        );
        assert_eq!(
            doc_path("provisioning", "_local/ccnqd-a"),
            "/provisioning/_local/ccnqd-a"
        );
        assert_eq!(doc_path("p", "a/b c"), "/p/a%2Fb%20c");
    }

    #[test]
    fn urls_with_credentials_are_refused() {
        let e = Client::new(ClientConfig::new(
            "http://admin:secret@127.0.0.1:5984",
            Auth::None,
        ));
        assert!(matches!(e, Err(CouchError::Invalid(_))));
        assert!(Client::new(ClientConfig::new("ftp://x", Auth::None)).is_err());
        assert!(Client::new(ClientConfig::new("http://127.0.0.1:5984/", Auth::None)).is_ok());
    }
}
