//! Routing and the connection loop: one thread per connection, capped.
//!
//! Nothing is kept between requests. The access log (stderr) has the method,
//! path, status and byte counts only, never request or response content.

use std::io::{BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::http::{self, Response};
use crate::summarize::{self, DEFAULT_MAX_SENTENCES, METHOD};
use crate::weights::Weights;

/// Server limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body: usize,
    /// Most connections served at once; more get 503.
    pub max_connections: usize,
    /// Read and write timeout per connection.
    pub io_timeout: Duration,
    /// The whole request (head and body) must arrive within this long, however slowly it trickles: slow
    /// connections cannot hold their slots (and starve `/healthz`) for longer.
    pub request_deadline: Duration,
    /// Memory that requests in flight may use together, in bytes. A request reserves its worst case (see
    /// [`request_cost`]) once its `Content-Length` is known, before its body is read; when the budget cannot cover
    /// it, it gets 503. Admission is by memory, not only by connection count.
    pub memory_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 1024 * 1024,
            max_connections: 64,
            io_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(15),
            memory_budget: 384 << 20,
        }
    }
}

/// The most memory one request can take while it is served: the head, the body, and the summariser's working set
/// for that body (sentences, tokens, term tables, the response), bounded by [`SUMMARIZE_COST_PER_BYTE`] times the body.
pub fn request_cost(body_len: u64) -> usize {
    let body = usize::try_from(body_len).unwrap_or(usize::MAX);
    (http::MAX_HEAD + 4096).saturating_add(body.saturating_mul(SUMMARIZE_COST_PER_BYTE + 1))
}

/// Bytes of summariser working set per byte of text, at most. The review measured about 160 MB for a 1 MiB body of
/// `"a. "` (the worst case: a sentence every three bytes); this bound covers it.
pub const SUMMARIZE_COST_PER_BYTE: usize = 160;

/// The memory requests in flight have reserved (see [`Limits::memory_budget`]).
#[derive(Debug, Default)]
pub struct Budget {
    reserved: AtomicUsize,
}

/// A reservation, returned to the budget when dropped.
pub struct Reservation<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Budget {
    /// Reserves `bytes` if the total stays within `limit`.
    pub fn reserve(&self, bytes: usize, limit: usize) -> Option<Reservation<'_>> {
        let mut current = self.reserved.load(Ordering::SeqCst);
        loop {
            let next = current.checked_add(bytes).filter(|n| *n <= limit)?;
            match self.reserved.compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(Reservation { budget: self, bytes }),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.reserved.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// The body of `POST /v1/summarize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummarizeRequest {
    text: String,
    #[serde(default)]
    max_sentences: Option<u32>,
}

/// The answer of `POST /v1/summarize`.
#[derive(Debug, Serialize)]
struct SummarizeResponse<'a> {
    summary: &'a str,
    sentences: &'a [usize],
    method: &'static str,
}

/// Answers one parsed request.
pub fn route(req: &http::Request) -> Response {
    match (req.path.as_str(), req.method.as_str()) {
        ("/v1/summarize", "POST") => summarize_endpoint(&req.body, None),
        ("/healthz", "GET") => {
            Response { status: 200, content_type: "text/plain; charset=utf-8", allow: None, body: b"ok".to_vec() }
        }
        ("/v1/summarize", _) => method_not_allowed("POST"),
        ("/healthz", _) => method_not_allowed("GET"),
        _ => Response::error(404, "not found"),
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = Response::error(405, &format!("method not allowed: use {allow}"));
    resp.allow = Some(allow);
    resp
}

fn summarize_endpoint(body: &[u8], weights: Option<&Weights>) -> Response {
    let req: SummarizeRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return Response::error(400, &format!("invalid request body: {e}")),
    };
    let max = match req.max_sentences {
        None => DEFAULT_MAX_SENTENCES,
        Some(0) => return Response::error(400, "max_sentences must be at least 1"),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let s = summarize::summarize_weighted(&req.text, max, weights);
    let method = if weights.is_some() { summarize::METHOD_WEIGHTED } else { METHOD };
    let out = SummarizeResponse { summary: &s.summary, sentences: &s.sentences, method };
    match serde_json::to_vec(&out) {
        Ok(body) => Response::json(200, body),
        Err(_) => Response::error(500, "could not encode the response"),
    }
}

/// Makes a path safe for a log line: printable ASCII only, at most 128 characters.
/// The access log names the route from a fixed list, never the method or path the client sent: the console is the
/// host's, and nothing a client controls goes there (issue 17).
fn route_name(req: &http::Request) -> &'static str {
    match req.path.as_str() {
        "/v1/summarize" => "summarize",
        "/v1/attestation" => "attestation",
        "/healthz" => "healthz",
        _ => "other",
    }
}

/// Counts bytes read through it, for the access log.
/// It also enforces the request's overall deadline: each read may wait only for what is left of it (`sock` is a
/// handle on the same socket, to set the timeout even when `inner` is a TLS stream over it).
struct Counting<S> {
    inner: S,
    sock: TcpStream,
    count: usize,
    deadline: Instant,
    io_timeout: Duration,
}

impl<S: Read> Read for Counting<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the request deadline passed"));
        }
        self.sock.set_read_timeout(Some(left.min(self.io_timeout)))?;
        let n = self.inner.read(buf)?;
        self.count += n;
        Ok(n)
    }
}

/// What a listener serves besides the summariser: the TLS key's hash for the attestation endpoint, and whether
/// summaries may be asked for on it (not on the plain listener once TLS is on).
#[derive(Debug, Clone, Default)]
pub struct Service {
    /// SHA-256 of the TLS key's SubjectPublicKeyInfo, when the server has a TLS listener.
    pub tls_spki_sha256: Option<[u8; 32]>,
    /// Whether `/v1/summarize` is refused here because it is served over TLS only.
    pub summarize_tls_only: bool,
    /// The corpus weights the summariser uses, read from a file (the image's data volume).
    pub weights: Option<Arc<WeightsFile>>,
}

/// A weights file, read at the first request that needs it and kept once it was read whole. A read that fails (an
/// I/O error where dm-verity found a block that is not the measured one) fails that request with 503 and is tried
/// again by the next: the summariser never runs on weights it could not read.
#[derive(Debug)]
pub struct WeightsFile {
    path: String,
    loaded: std::sync::Mutex<Option<Arc<Weights>>>,
}

impl WeightsFile {
    /// The weights at `path`, not read yet.
    pub fn new(path: &str) -> Self {
        WeightsFile { path: path.to_owned(), loaded: std::sync::Mutex::new(None) }
    }

    /// The weights, reading the file if it was not read yet.
    pub fn get(&self) -> Result<Arc<Weights>, String> {
        let mut loaded = self.loaded.lock().map_err(|_| "the weights lock is poisoned".to_owned())?;
        if let Some(w) = loaded.as_ref() {
            return Ok(Arc::clone(w));
        }
        let read = std::fs::File::open(&self.path).and_then(|f| {
            let mut bytes = Vec::new();
            f.take(crate::weights::MAX_FILE).read_to_end(&mut bytes).map(|_| bytes)
        });
        let weights = match read {
            Ok(bytes) => Weights::parse(&bytes).map_err(|e| format!("`{}`: {e}", self.path))?,
            Err(e) => return Err(format!("cannot read `{}`: {e}", self.path)),
        };
        let weights = Arc::new(weights);
        *loaded = Some(Arc::clone(&weights));
        Ok(weights)
    }
}

/// Routes with the listener's [`Service`]: `/v1/attestation` (the report binding the TLS key), and on the plain
/// listener of a TLS server, `/v1/summarize` refused (403) so that no text ever travels in the clear.
pub fn route_with(req: &http::Request, service: &Service) -> Response {
    match (req.path.as_str(), req.method.as_str(), service.tls_spki_sha256) {
        ("/v1/attestation", "GET", Some(spki)) => {
            let (answer, ok) = crate::attest::attest(&spki);
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            Response::json(if ok { 200 } else { 503 }, body)
        }
        ("/v1/attestation", _, Some(_)) => method_not_allowed("GET"),
        ("/v1/summarize", _, _) if service.summarize_tls_only => {
            Response::error(403, "summaries are served over TLS only: use the TLS port, after checking /v1/attestation")
        }
        ("/v1/summarize", "POST", _) if service.weights.is_some() => {
            let Some(file) = &service.weights else { return route(req) };
            match file.get() {
                Ok(weights) => summarize_endpoint(&req.body, Some(&weights)),
                Err(e) => {
                    // The path and the error are the server's own, never the client's: safe for the console.
                    eprintln!("summarize-server: the model's weights are unavailable: {e}");
                    Response::error(503, "the model's weights cannot be read; the request was not served")
                }
            }
        }
        _ => route(req),
    }
}

/// Serves one plain connection: reads one request, answers it, closes.
pub fn handle_connection(stream: TcpStream, limits: &Limits, budget: &Budget) {
    handle_plain(stream, limits, budget, &Service::default());
}

fn handle_plain(stream: TcpStream, limits: &Limits, budget: &Budget, service: &Service) {
    let _ = stream.set_write_timeout(Some(limits.io_timeout));
    let Ok(sock) = stream.try_clone() else {
        return;
    };
    if let Some(reader) = serve_one(stream, sock, limits, budget, service) {
        let (stream, sock) = (reader.get_ref().inner.try_clone(), &reader.get_ref().sock);
        if let Ok(stream) = stream {
            linger(sock, stream, Duration::from_millis(500));
        }
    }
}

/// Serves one TLS connection: the handshake, then one request, within the same deadline.
pub fn handle_tls_connection(
    stream: TcpStream,
    limits: &Limits,
    budget: &Budget,
    service: &Service,
    config: Arc<rustls::ServerConfig>,
) {
    let _ = stream.set_write_timeout(Some(limits.io_timeout));
    let Ok(sock) = stream.try_clone() else {
        return;
    };
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let tls = rustls::StreamOwned::new(connection, stream);
    if let Some(mut reader) = serve_one(tls, sock, limits, budget, service) {
        let tls = &mut reader.get_mut().inner;
        tls.conn.send_close_notify();
        let _ = std::io::Write::flush(tls);
    }
}

/// Reads one request from `stream` (plain or TLS), answers it, logs it; returns the reader for the caller's close.
fn serve_one<S: Read + std::io::Write>(
    stream: S,
    sock: TcpStream,
    limits: &Limits,
    budget: &Budget,
    service: &Service,
) -> Option<BufReader<Counting<S>>> {
    let deadline = Instant::now() + limits.request_deadline;
    let counting = Counting { inner: stream, sock, count: 0, deadline, io_timeout: limits.io_timeout };
    let mut reader = BufReader::new(counting);
    let mut reservation = None;
    let mut admit = |length: u64| {
        reservation = budget.reserve(request_cost(length), limits.memory_budget);
        reservation.is_some()
    };
    let (route, resp) = match http::read_request_admitted(&mut reader, limits.max_body, &mut admit) {
        Ok(req) => (route_name(&req), route_with(&req, service)),
        Err(e) => match e.status() {
            Some(status) => ("malformed", Response::error(status, &e.to_string())),
            None => return None,
        },
    };
    let written = http::write_response(&mut reader.get_mut().inner, &resp).unwrap_or(0);
    let received = reader.get_ref().count;
    eprintln!("{route} {} in={received} out={written}", resp.status);
    Some(reader)
}

/// Half-closes and drains briefly, so that an early answer (413, 503) is not lost to
/// a TCP reset caused by closing a socket with unread request bytes.
fn linger(stream: &TcpStream, mut reader: impl Read, wait: Duration) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(wait));
    let _ = std::io::copy(&mut reader.by_ref().take(1024 * 1024), &mut std::io::sink());
}

/// Decrements the active-connection count when a connection thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts plain connections forever, one thread each, at most `limits.max_connections` at once.
pub fn serve(listener: &TcpListener, limits: &Limits) -> std::io::Result<()> {
    serve_with(listener, limits, &Arc::new(Budget::default()), &Service::default(), None)
}

/// Accepts connections forever (TLS ones when `tls` is given), sharing `budget` with the server's other listener.
pub fn serve_with(
    listener: &TcpListener,
    limits: &Limits,
    budget: &Arc<Budget>,
    service: &Service,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            let slot = Slot(Arc::clone(&active));
            reject_busy(stream);
            drop(slot);
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let (limits, budget, service, tls) = (limits.clone(), Arc::clone(budget), service.clone(), tls.clone());
        let spawned = std::thread::Builder::new().name("conn".into()).spawn(move || {
            let _slot = slot;
            match tls {
                Some(config) => handle_tls_connection(stream, &limits, &budget, &service, config),
                None => handle_plain(stream, &limits, &budget, &service),
            }
        });
        if let Err(e) = spawned {
            eprintln!("summarize-server: could not start a connection thread: {e}");
        }
    }
    Ok(())
}

/// Answers 503 from the accept loop. The drain is short (it delays the next accept),
/// which also throttles a flood a little.
fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let written = http::write_response(&mut stream, &Response::error(503, "too many connections")).unwrap_or(0);
    eprintln!("- - 503 in=0 out={written}");
    linger(&stream, &stream, Duration::from_millis(100));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, body: &[u8]) -> http::Request {
        http::Request { method: method.into(), path: path.into(), body: body.to_vec() }
    }

    fn json(resp: &Response) -> serde_json::Value {
        serde_json::from_slice(&resp.body).unwrap()
    }

    #[test]
    fn summarizes_valid_request() {
        let resp = route(&req(
            "POST",
            "/v1/summarize",
            br#"{"text":"Cats purr. Dogs bark loudly at night. Cats purr.","max_sentences":1}"#,
        ));
        assert_eq!(resp.status, 200);
        assert_eq!(
            json(&resp),
            serde_json::json!({"summary":"Dogs bark loudly at night.","sentences":[1],"method":"tfidf-extractive/v1"})
        );
    }

    #[test]
    fn healthz_is_ok() {
        let resp = route(&req("GET", "/healthz", b""));
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
    }

    #[test]
    fn rejects_bad_json_and_unknown_fields() {
        for body in [&b"{"[..], b"[]", br#"{"text":1}"#, br#"{"text":"a","extra":1}"#, br#"{"max_sentences":2}"#] {
            let resp = route(&req("POST", "/v1/summarize", body));
            assert_eq!(resp.status, 400, "{body:?}");
            assert!(json(&resp)["error"].as_str().unwrap().starts_with("invalid request body"));
        }
    }

    #[test]
    fn rejects_zero_or_negative_max_sentences() {
        let resp = route(&req("POST", "/v1/summarize", br#"{"text":"a.","max_sentences":0}"#));
        assert_eq!(resp.status, 400);
        assert_eq!(json(&resp)["error"], "max_sentences must be at least 1");
        let resp = route(&req("POST", "/v1/summarize", br#"{"text":"a.","max_sentences":-1}"#));
        assert_eq!(resp.status, 400);
    }

    #[test]
    fn rejects_unknown_path_and_wrong_method() {
        assert_eq!(route(&req("GET", "/nope", b"")).status, 404);
        let resp = route(&req("GET", "/v1/summarize", b""));
        assert_eq!((resp.status, resp.allow), (405, Some("POST")));
        let resp = route(&req("DELETE", "/healthz", b""));
        assert_eq!((resp.status, resp.allow), (405, Some("GET")));
    }

    #[test]
    fn log_names_routes_from_a_fixed_list() {
        assert_eq!(route_name(&req("GET", "/healthz", b"")), "healthz");
        assert_eq!(route_name(&req("POST", "/v1/summarize", b"")), "summarize");
        assert_eq!(route_name(&req("GET", "/\u{1b}[2Jcvmforge-init: forged", b"")), "other");
    }

    /// The summariser with a weights file: 503 while the file cannot be read (nothing is summarised without it),
    /// the weighted method once it can.
    #[test]
    fn weights_that_cannot_be_read_fail_the_request_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terms.tsv");
        let service =
            Service { weights: Some(Arc::new(WeightsFile::new(path.to_str().unwrap()))), ..Service::default() };
        let body = br#"{"text":"The cat sat. A storm of liberty rose over the nation. The end.","max_sentences":1}"#;
        let resp = route_with(&req("POST", "/v1/summarize", body), &service);
        assert_eq!(resp.status, 503);
        assert!(json(&resp)["error"].as_str().unwrap().contains("weights cannot be read"));
        let weights = crate::weights::Weights::compute(["the cat sat\n\nthe end of the day"]);
        std::fs::write(&path, weights.to_tsv()).unwrap();
        let resp = route_with(&req("POST", "/v1/summarize", body), &service);
        assert_eq!(resp.status, 200);
        assert_eq!(json(&resp)["method"], summarize::METHOD_WEIGHTED);
    }
}
