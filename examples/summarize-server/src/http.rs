//! HTTP/1.1 requests (parsed by `httparse`) and responses (RFC 9112).
//!
//! Only what the server needs: one request per connection, `Content-Length`
//! bodies, no `Transfer-Encoding`, no obsolete line folding. Every limit is
//! checked before the bytes are buffered: the head is read line by line under
//! [`MAX_LINE`] and [`MAX_HEAD`], then handed to `httparse`.

use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line accepted, in bytes (including CRLF).
pub const MAX_LINE: usize = 8 * 1024;

/// Most header lines accepted in one request.
pub const MAX_HEADERS: usize = 64;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method token, e.g. `POST`.
    pub method: String,
    /// The request target without its query string, e.g. `/v1/summarize`.
    pub path: String,
    /// The body, exactly `Content-Length` bytes.
    pub body: Vec<u8>,
}

/// Why a request could not be parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A request or header line exceeded [`MAX_LINE`].
    #[error("a request or header line is longer than {limit} bytes")]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection ended before the request was complete.
    #[error("the connection closed after {received} bytes, before the request was complete")]
    Incomplete {
        /// Bytes of the current element received before EOF.
        received: usize,
    },
    /// A line was not valid UTF-8 / ASCII.
    #[error("a request or header line is not ASCII")]
    NotAscii,
    /// The request line is not `METHOD SP /target SP HTTP/1.x`.
    #[error("malformed request line: expected `METHOD /path HTTP/1.1`")]
    BadRequestLine,
    /// The HTTP version is not 1.0 or 1.1.
    #[error("unsupported HTTP version `{version}`: expected `HTTP/1.1` or `HTTP/1.0`")]
    BadVersion {
        /// The version as received.
        version: String,
    },
    /// A header line is not `name: value`.
    #[error("malformed header line {index}: expected `name: value`")]
    BadHeader {
        /// Zero-based header index.
        index: usize,
    },
    /// More than [`MAX_HEADERS`] header lines.
    #[error("more than {limit} header lines")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// `Content-Length` is not a plain decimal number.
    #[error("invalid Content-Length `{value}`: expected decimal digits")]
    BadContentLength {
        /// The value as received.
        value: String,
    },
    /// More than one `Content-Length` header.
    #[error("more than one Content-Length header")]
    DuplicateContentLength,
    /// A body-carrying method without `Content-Length`.
    #[error("{method} requires a Content-Length header")]
    LengthRequired {
        /// The method.
        method: String,
    },
    /// The declared body is larger than the server accepts.
    #[error("body of {length} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Declared length.
        length: u64,
        /// The limit.
        limit: usize,
    },
    /// The server's memory budget cannot cover this request now.
    #[error("the server is busy: try again later")]
    Busy,
    /// `Transfer-Encoding` (e.g. chunked) is not implemented.
    #[error("Transfer-Encoding is not supported: send a Content-Length body")]
    TransferEncoding,
    /// Reading from the connection failed (including timeouts).
    #[error("reading the request failed")]
    Io {
        /// The underlying error.
        #[from]
        source: io::Error,
    },
}

impl HttpError {
    /// The status code to answer with, or `None` when no answer can be sent.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Io { .. } | HttpError::Incomplete { .. } => None,
            HttpError::LineTooLong { .. } | HttpError::TooManyHeaders { .. } => Some(431),
            HttpError::BadVersion { .. } => Some(505),
            HttpError::LengthRequired { .. } => Some(411),
            HttpError::BodyTooLarge { .. } => Some(413),
            HttpError::TransferEncoding => Some(501),
            HttpError::Busy => Some(503),
            _ => Some(400),
        }
    }
}

/// Most bytes of a request head (request line and headers) accepted.
pub const MAX_HEAD: usize = MAX_LINE + 8 * 1024;

/// Reads the request head, line by line, up to the empty line, at most [`MAX_HEAD`] bytes in all and [`MAX_LINE`] per
/// line: nothing beyond those limits is ever buffered.
fn read_head(r: &mut impl BufRead) -> Result<Vec<u8>, HttpError> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        let room = MAX_LINE.min(MAX_HEAD.saturating_sub(start));
        r.by_ref().take(u64::try_from(room).unwrap_or(u64::MAX)).read_until(b'\n', &mut head)?;
        let line = head.get(start..).unwrap_or_default();
        if line.last() != Some(&b'\n') {
            if line.len() >= room {
                return Err(if room < MAX_LINE {
                    HttpError::TooManyHeaders { limit: MAX_HEADERS }
                } else {
                    HttpError::LineTooLong { limit: MAX_LINE }
                });
            }
            return Err(HttpError::Incomplete { received: head.len() });
        }
        if line == b"\r\n" || line == b"\n" {
            // An empty line ends the head; one before any request line is not a request.
            return if start == 0 { Err(HttpError::BadRequestLine) } else { Ok(head) };
        }
    }
}

/// Maps httparse's verdict to ours; `index` is the header being parsed when the error is in the headers.
fn head_error(error: httparse::Error, index: usize) -> HttpError {
    match error {
        httparse::Error::Version => HttpError::BadVersion { version: String::new() },
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders { limit: MAX_HEADERS },
        httparse::Error::HeaderName | httparse::Error::HeaderValue | httparse::Error::NewLine => {
            HttpError::BadHeader { index }
        }
        _ => HttpError::BadRequestLine,
    }
}

/// httparse says what failed, not where: an error of the request line alone is the request line's (or its
/// version's); otherwise it is the first header line that is not `name: value`.
fn locate_error(head: &[u8], error: httparse::Error) -> HttpError {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut alone = first.strip_suffix(b"\r").unwrap_or(first).to_vec();
    alone.extend_from_slice(b"\r\n\r\n");
    match httparse::Request::new(&mut []).parse(&alone) {
        Err(httparse::Error::Version) => HttpError::BadVersion { version: version_of(head) },
        Err(_) | Ok(httparse::Status::Partial) => HttpError::BadRequestLine,
        Ok(httparse::Status::Complete(_)) => {
            let index = head.split(|&b| b == b'\n').skip(1).take_while(|l| is_header_line(l)).count();
            head_error(error, index)
        }
    }
}

/// The version as sent, for a 505 message (the request line's last word, at most 16 characters).
fn version_of(head: &[u8]) -> String {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let word = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    String::from_utf8_lossy(word).trim_end().chars().take(16).collect()
}

fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    let bad = || HttpError::BadContentLength { value: String::from_utf8_lossy(value).chars().take(32).collect() };
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(value).map_err(|_| bad())?.parse().map_err(|_| bad())
}

/// Reads one request, rejecting bodies longer than `max_body` before reading them. The head is parsed by `httparse`
/// (a maintained parser made for this) under this module's size limits; the framing rules are ours: `Content-Length`
/// bodies only, one `Content-Length`, no `Transfer-Encoding`, ASCII header values.
pub fn read_request(r: &mut impl BufRead, max_body: usize) -> Result<Request, HttpError> {
    read_request_admitted(r, max_body, &mut |_| true)
}

/// [`read_request`], asking `admit` (with the body's length) whether the request may be served before its body is
/// read: a refusal is [`HttpError::Busy`] (503).
pub fn read_request_admitted(
    r: &mut impl BufRead,
    max_body: usize,
    admit: &mut dyn FnMut(u64) -> bool,
) -> Result<Request, HttpError> {
    let head = read_head(r)?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::BadRequestLine),
        Err(e) => return Err(locate_error(&head, e)),
    }
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(HttpError::BadRequestLine);
    };
    if !target.starts_with('/') {
        return Err(HttpError::BadRequestLine);
    }
    let mut content_length = None;
    for header in parsed.headers.iter() {
        if !header.value.is_ascii() {
            return Err(HttpError::NotAscii);
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(HttpError::DuplicateContentLength);
            }
            content_length = Some(parse_content_length(header.value)?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        }
    }
    let method = method.to_owned();
    let path = target.split_once('?').map_or(target, |(p, _)| p).to_owned();
    let length = match content_length {
        Some(n) => n,
        None if method == "POST" || method == "PUT" => return Err(HttpError::LengthRequired { method }),
        None => 0,
    };
    if length > u64::try_from(max_body).unwrap_or(u64::MAX) {
        return Err(HttpError::BodyTooLarge { length, limit: max_body });
    }
    if !admit(length) {
        return Err(HttpError::Busy);
    }
    let mut body = Vec::new();
    r.take(length).read_to_end(&mut body)?;
    if u64::try_from(body.len()).ok() != Some(length) {
        return Err(HttpError::Incomplete { received: body.len() });
    }
    Ok(Request { method, path, body })
}

/// A well-formed `name: value` header line (RFC 9110 token name, no leading whitespace).
fn is_header_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.iter().position(|&b| b == b':') {
        Some(colon) => colon > 0 && line.get(..colon).is_some_and(|name| name.iter().all(|&b| is_tchar(b))),
        None => false,
    }
}

/// RFC 9110 5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Entry point of the `http_request` fuzz target: any bytes from a client give a request within the limits or an
/// error with a status (or none, for a closed connection), never a panic; whatever parses is consistent.
pub fn fuzz_request(data: &[u8]) {
    const MAX_BODY: usize = 4096;
    match read_request(&mut &data[..], MAX_BODY) {
        Ok(req) => {
            assert!(req.body.len() <= MAX_BODY, "a body over the limit was accepted");
            assert!(req.path.starts_with('/') && !req.path.contains('?'), "path {:?}", req.path);
            assert!(!req.method.is_empty());
        }
        Err(e) => {
            let _ = e.status();
            let _ = e.to_string();
        }
    }
}

/// A response ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Value of the `Content-Type` header.
    pub content_type: &'static str,
    /// Value of the `Allow` header, sent with 405.
    pub allow: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response { status, content_type: "application/json", allow: None, body }
    }

    /// A JSON `{"error": message}` response.
    pub fn error(status: u16, message: &str) -> Response {
        let body = serde_json::json!({ "error": message }).to_string().into_bytes();
        Response::json(status, body)
    }
}

/// The reason phrase of the status codes this server uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes `resp` with `Connection: close`; returns the number of bytes written.
pub fn write_response(w: &mut impl Write, resp: &Response) -> io::Result<usize> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    if let Some(allow) = resp.allow {
        head.push_str(&format!("Allow: {allow}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(&resp.body)?;
    w.flush()?;
    Ok(head.len() + resp.body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Request, HttpError> {
        read_request(&mut &raw[..], 1024)
    }

    #[test]
    fn parses_post_with_body() {
        let req = parse(b"POST /v1/summarize?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!(req, Request { method: "POST".into(), path: "/v1/summarize".into(), body: b"hello".to_vec() });
    }

    #[test]
    fn parses_get_without_body_and_bare_lf() {
        let req = parse(b"GET /healthz HTTP/1.0\nHost: a\n\n").unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/healthz");
        assert!(req.body.is_empty());
    }

    fn status_of(raw: &[u8]) -> Option<u16> {
        parse(raw).unwrap_err().status()
    }

    #[test]
    fn rejects_malformed_request_lines() {
        for raw in [
            &b"GET\r\n\r\n"[..],
            b"GET  /x HTTP/1.1\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1 extra\r\n\r\n",
            b"G(T /x HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(matches!(parse(raw), Err(HttpError::BadRequestLine)), "{raw:?}");
        }
    }

    #[test]
    fn rejects_bad_version() {
        assert!(matches!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(HttpError::BadVersion { .. })));
        assert_eq!(status_of(b"GET / HTTP/2.0\r\n\r\n"), Some(505));
    }

    #[test]
    fn rejects_malformed_headers() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"), Err(HttpError::BadHeader { index: 0 })));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nA: b\r\nBad Name: x\r\n\r\n"),
            Err(HttpError::BadHeader { index: 1 })
        ));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"), Err(HttpError::BadHeader { index: 1 })));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n"), Err(HttpError::NotAscii)));
    }

    #[test]
    fn rejects_bad_content_length() {
        for v in ["abc", "-1", "+5", "1 2", "", "99999999999999999999999"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n");
            assert!(matches!(parse(raw.as_bytes()), Err(HttpError::BadContentLength { .. })), "{v}");
        }
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
            Err(HttpError::DuplicateContentLength)
        ));
    }

    #[test]
    fn rejects_post_without_length_and_chunked() {
        assert_eq!(status_of(b"POST / HTTP/1.1\r\n\r\n"), Some(411));
        assert_eq!(status_of(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), Some(501));
    }

    #[test]
    fn rejects_oversized_body_before_reading_it() {
        let err = parse(b"POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n").unwrap_err();
        assert!(matches!(err, HttpError::BodyTooLarge { length: 1025, limit: 1024 }));
        assert_eq!(err.status(), Some(413));
    }

    #[test]
    fn rejects_truncated_requests() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost"), Err(HttpError::Incomplete { .. })));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Err(HttpError::Incomplete { received: 3 })
        ));
    }

    #[test]
    fn rejects_long_lines_and_many_headers() {
        let mut raw = b"GET /".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_LINE));
        raw.extend(b" HTTP/1.1\r\n\r\n");
        assert_eq!(status_of(&raw), Some(431));
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            raw.extend(format!("X-{i}: y\r\n").as_bytes());
        }
        raw.extend(b"\r\n");
        assert!(matches!(parse(&raw), Err(HttpError::TooManyHeaders { .. })));
    }

    /// Issue 11, item 18: a second request pipelined behind the first is not read as part of it (one request per
    /// connection; the server closes after answering).
    #[test]
    fn reads_exactly_one_of_pipelined_requests() {
        let raw = b"POST /v1/summarize HTTP/1.1\r\nContent-Length: 2\r\n\r\nabGET /healthz HTTP/1.1\r\n\r\n";
        let mut reader = &raw[..];
        let req = read_request(&mut reader, 1024).unwrap();
        assert_eq!((req.method.as_str(), req.body.as_slice()), ("POST", &b"ab"[..]));
        assert_eq!(reader, b"GET /healthz HTTP/1.1\r\n\r\n");
    }

    /// Issue 11, item 18: a head over MAX_HEAD in total (many long but legal lines) is refused with 431 before more is
    /// buffered.
    #[test]
    fn rejects_an_oversized_head() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEAD / 1000 + 2) {
            raw.extend(format!("X-{i}: {}\r\n", "v".repeat(990)).as_bytes());
        }
        raw.extend(b"\r\n");
        assert_eq!(status_of(&raw), Some(431));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_client_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            fuzz_request(&data);
        }

        #[test]
        fn well_formed_requests_round_trip(path in "/[a-z0-9/]{0,40}", body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut raw = format!("POST {path}?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            raw.extend(&body);
            let req = read_request(&mut &raw[..], 1024).unwrap();
            proptest::prop_assert_eq!(req, Request { method: "POST".into(), path, body });
        }
    }

    #[test]
    fn writes_response_with_length_and_allow() {
        let mut out = Vec::new();
        let mut resp = Response::error(405, "no");
        resp.allow = Some("POST");
        let n = write_response(&mut out, &resp).unwrap();
        assert_eq!(n, out.len());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\
             Connection: close\r\nAllow: POST\r\n\r\n{\"error\":\"no\"}"
        );
    }
}
