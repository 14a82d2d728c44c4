//! A strict, minimal HTTP/1.1 request parser and response writer (RFC 9112).
//!
//! Only what the server needs: one request per connection, `Content-Length`
//! bodies, no `Transfer-Encoding`, no obsolete line folding. Every limit is
//! checked before the bytes are buffered.

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
            _ => Some(400),
        }
    }
}

/// Reads one line ending in LF (CR before it is dropped), at most [`MAX_LINE`] bytes.
fn read_line(r: &mut impl BufRead) -> Result<String, HttpError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
    r.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    match buf.pop() {
        Some(b'\n') => {}
        _ if buf.len() + 1 >= MAX_LINE => return Err(HttpError::LineTooLong { limit: MAX_LINE }),
        _ => return Err(HttpError::Incomplete { received: buf.len() }),
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    if !buf.is_ascii() {
        return Err(HttpError::NotAscii);
    }
    String::from_utf8(buf).map_err(|_| HttpError::NotAscii)
}

/// RFC 9110 5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Parses `METHOD SP target SP version` (RFC 9112 3).
fn parse_request_line(line: &str) -> Result<(String, String), HttpError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if !is_token(method) || !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(HttpError::BadRequestLine);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::BadVersion { version: version.chars().take(16).collect() });
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok((method.to_owned(), path.to_owned()))
}

/// Parses `name: value` (RFC 9112 5); returns the lowercased name and trimmed value.
fn parse_header(line: &str, index: usize) -> Result<(String, &str), HttpError> {
    let (name, value) = line.split_once(':').ok_or(HttpError::BadHeader { index })?;
    if !is_token(name) {
        // Also rejects obsolete line folding and whitespace before the colon.
        return Err(HttpError::BadHeader { index });
    }
    Ok((name.to_ascii_lowercase(), value.trim_matches([' ', '\t'])))
}

fn parse_content_length(value: &str) -> Result<u64, HttpError> {
    let bad = || HttpError::BadContentLength { value: value.chars().take(32).collect() };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value.parse().map_err(|_| bad())
}

/// Reads one request, rejecting bodies longer than `max_body` before reading them.
pub fn read_request(r: &mut impl BufRead, max_body: usize) -> Result<Request, HttpError> {
    let (method, path) = parse_request_line(&read_line(r)?)?;
    let mut content_length = None;
    for index in 0.. {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        if index >= MAX_HEADERS {
            return Err(HttpError::TooManyHeaders { limit: MAX_HEADERS });
        }
        let (name, value) = parse_header(&line, index)?;
        match name.as_str() {
            "content-length" if content_length.is_some() => return Err(HttpError::DuplicateContentLength),
            "content-length" => content_length = Some(parse_content_length(value)?),
            "transfer-encoding" => return Err(HttpError::TransferEncoding),
            _ => {}
        }
    }
    let length = match content_length {
        Some(n) => n,
        None if method == "POST" || method == "PUT" => return Err(HttpError::LengthRequired { method }),
        None => 0,
    };
    if length > u64::try_from(max_body).unwrap_or(u64::MAX) {
        return Err(HttpError::BodyTooLarge { length, limit: max_body });
    }
    let mut body = Vec::new();
    r.take(length).read_to_end(&mut body)?;
    if u64::try_from(body.len()).ok() != Some(length) {
        return Err(HttpError::Incomplete { received: body.len() });
    }
    Ok(Request { method, path, body })
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
