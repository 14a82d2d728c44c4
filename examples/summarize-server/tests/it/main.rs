//! Integration tests: start the real binary on 127.0.0.1:0 and talk HTTP to it.
#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};

struct Server {
    child: Child,
    addr: String,
    stderr: BufReader<ChildStderr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `args` and reads its first `lines` stderr lines (the listening addresses).
fn spawn(args: &[&str], lines: usize) -> (Server, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_summarize-server"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut read = Vec::new();
    while read.len() < lines {
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        read.push(line.trim().to_owned());
    }
    (Server { child, addr: String::new(), stderr }, read)
}

fn start() -> Server {
    let (mut server, lines) = spawn(&["--listen", "127.0.0.1:0"], 1);
    server.addr = lines[0]
        .strip_prefix("summarize-server: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {:?}", lines[0]))
        .to_owned();
    server
}

/// Sends raw bytes, returns (status, headers, body).
fn exchange(addr: &str, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(raw).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(resp[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, resp[split + 4..].to_vec())
}

fn post(addr: &str, body: &str) -> (u16, String, Vec<u8>) {
    let raw = format!(
        "POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, raw.as_bytes())
}

#[test]
fn summarizes_over_http() {
    let srv = start();
    let text = "The launch measurement covers the firmware. Confidential VMs encrypt guest memory \
                with per-VM keys. The launch measurement is signed by the platform. \
                Reproducible builds let third parties recompute the launch measurement.";
    let body = serde_json::json!({"text": text, "max_sentences": 2}).to_string();
    let (status, head, body) = post(&srv.addr, &body);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["method"], "tfidf-extractive/v1");
    // By hand (N = 4; "the", "launch", "measurement" have df 3, all else df 1):
    // s0 = 4/6 ln(4/3) + 2/6 ln 4 = 0.654, s1 = ln 4 = 1.386,
    // s2 = 4/8 ln(4/3) + 4/8 ln 4 = 0.837, s3 = 3/9 ln(4/3) + 6/9 ln 4 = 1.020.
    assert_eq!(v["sentences"], serde_json::json!([1, 3]));
    assert_eq!(
        v["summary"],
        "Confidential VMs encrypt guest memory with per-VM keys. \
         Reproducible builds let third parties recompute the launch measurement."
    );
    // Same request, same bytes.
    let again = post(&srv.addr, &serde_json::json!({"text": text, "max_sentences": 2}).to_string());
    assert_eq!(again.2, body);
}

#[test]
fn answers_errors_with_status_codes() {
    let mut srv = start();
    let health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let (status, head, body) = exchange(&srv.addr, health);
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    let health_log = format!("healthz 200 in={} out={}", health.len(), head.len() + 4 + body.len());
    assert_eq!(exchange(&srv.addr, b"GET /missing HTTP/1.1\r\n\r\n").0, 404);
    let (status, head, _) = exchange(&srv.addr, b"GET /v1/summarize HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: POST"));
    let (status, _, body) = post(&srv.addr, "{not json");
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().starts_with("invalid request body"));
    // Declared body over 1 MiB: refused from the header alone.
    let (status, _, _) = exchange(&srv.addr, b"POST /v1/summarize HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
    assert_eq!(status, 413);
    assert_eq!(exchange(&srv.addr, b"GET / HTTP/3\r\n\r\n").0, 505);
    assert_eq!(exchange(&srv.addr, b"garbage\r\n\r\n").0, 400);

    // The access log has the route (from a fixed list, never the client's method or path), status and sizes, and
    // none of the content (issue 17).
    assert_eq!(exchange(&srv.addr, b"GET /cvmforge-init:forged HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(exchange(&srv.addr, b"GET /\x1b[2Jforged HTTP/1.1\r\n\r\n").0, 400);
    let secret = "Zanzibar-7781 is the secret.";
    let (status, _, _) = post(&srv.addr, &serde_json::json!({ "text": secret }).to_string());
    assert_eq!(status, 200);
    let _ = srv.child.kill();
    let mut log = String::new();
    srv.stderr.read_to_string(&mut log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], health_log);
    assert!(lines.iter().any(|l| l.starts_with("malformed 413 in=")), "{log}");
    assert!(lines.iter().any(|l| l.starts_with("other 404 in=")), "{log}");
    assert!(lines.last().unwrap().starts_with("summarize 200 in="), "{log}");
    assert!(!log.contains("Zanzibar") && !log.contains("forged") && !log.contains('\u{1b}'), "{log}");
}

#[test]
fn rejects_bad_command_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_summarize-server")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument `--bogus`"));
}

#[test]
fn refuses_connections_over_the_cap() {
    use std::time::Duration;
    use summarize_server::server::{serve, Limits};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let limits = Limits { max_connections: 1, io_timeout: Duration::from_secs(5), ..Limits::default() };
    std::thread::spawn(move || serve(&listener, &limits));
    // The first connection sends nothing and holds the only slot.
    let idle = TcpStream::connect(&addr).unwrap();
    let (status, _, body) = exchange(&addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "too many connections");
    drop(idle);
    // Once the slot is free again (the idle connection's thread sees EOF), requests succeed.
    let mut status = 0;
    for _ in 0..50 {
        status = exchange(&addr, b"GET /healthz HTTP/1.1\r\n\r\n").0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status, 200);
}

/// A server with `limits` on a free loopback port.
fn server_with(limits: summarize_server::server::Limits) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || summarize_server::server::serve(&listener, &limits));
    addr
}

/// Issue 11 item 18, issue 17 item 6: a request that trickles in (a byte every 100 ms, each read within the per-read
/// timeout) is cut off at the overall request deadline, and `/healthz` still answers meanwhile.
#[test]
fn slow_request_is_cut_off_at_the_deadline() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let limits = summarize_server::server::Limits {
        request_deadline: Duration::from_millis(800),
        io_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let addr = server_with(limits);
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut closed_at = None;
    for byte in b"POST /v1/summarize HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".iter().cycle().take(100) {
        if slow.write_all(&[*byte]).is_err() {
            closed_at = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_millis(300) && started.elapsed() < Duration::from_millis(500) {
            assert_eq!(exchange(&addr, b"GET /healthz HTTP/1.1\r\n\r\n").0, 200, "healthz while a slow client waits");
        }
    }
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut slow, &mut answer);
    let elapsed = closed_at.unwrap_or_else(|| started.elapsed());
    assert!(elapsed < Duration::from_secs(5), "the slow request held its connection for {elapsed:?}");
    assert!(!String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "the trickled request was served");
}

/// Issue 17 item 6: admission by memory. With a budget that covers one large request, a second large request that
/// arrives while the first is in flight gets 503, and a small one still gets through.
#[test]
fn large_requests_are_admitted_by_memory_budget() {
    use std::io::Write;
    use std::time::Duration;
    use summarize_server::server::{request_cost, Limits};
    let body_len = 64 * 1024;
    let limits = Limits {
        memory_budget: request_cost(body_len) + request_cost(1000),
        io_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let addr = server_with(limits);
    // The first large request reserves its cost and then waits for its body.
    let mut first = TcpStream::connect(&addr).unwrap();
    first.write_all(format!("POST /v1/summarize HTTP/1.1\r\nContent-Length: {body_len}\r\n\r\n").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second = format!("POST /v1/summarize HTTP/1.1\r\nContent-Length: {body_len}\r\n\r\n");
    assert_eq!(exchange(&addr, second.as_bytes()).0, 503, "no memory left for a second large request");
    let small = serde_json::json!({"text": "Small requests still fit. They do."}).to_string();
    assert_eq!(post(&addr, &small).0, 200);
    drop(first);
}

/// Issue 17: the attested channel end to end, as a client does it. The plain listener serves `/v1/attestation`
/// (here 503: no confidential-computing device, said explicitly, with the TLS key's hash and no made-up report) and
/// refuses summaries; the TLS listener serves them to a client that pins exactly the attested key, and refuses a
/// client pinning another key.
#[test]
fn attested_tls_channel_end_to_end() {
    let (server, lines) = spawn(&["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"], 3);
    let tls_addr = lines[0].strip_prefix("summarize-server: listening on ").unwrap().strip_suffix(" (TLS)").unwrap();
    let logged_key = lines[1].strip_prefix("summarize-server: TLS key SPKI sha256 ").unwrap();
    let plain_addr = lines[2].strip_prefix("summarize-server: listening on ").unwrap();

    let (status, _, body) = exchange(plain_addr, b"GET /v1/attestation HTTP/1.1\r\n\r\n");
    assert_eq!(status, 503);
    let evidence: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(evidence["error"].as_str().unwrap().starts_with("no confidential-computing report device"), "{evidence}");
    assert!(evidence.get("report").is_none(), "never a made-up report: {evidence}");
    let key_hex = evidence["tls_spki_sha256"].as_str().unwrap();
    assert_eq!(key_hex, logged_key);
    assert_eq!(evidence["report_data"].as_str().unwrap(), format!("{key_hex}{}", "0".repeat(64)));
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex, &mut key).unwrap();

    // No text in the clear: the plain listener refuses summaries.
    assert_eq!(post(plain_addr, r#"{"text":"secret."}"#).0, 403);

    let body = r#"{"text":"Attested channels carry the text. Nothing else does.","max_sentences":1}"#;
    let request = format!("POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let response = summarize_server::client::https_request(tls_addr, key, request.as_bytes()).unwrap();
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\"method\":\"tfidf-extractive/v1\""), "{text}");

    let mut other = key;
    other[0] ^= 1;
    let refused = summarize_server::client::https_request(tls_addr, other, request.as_bytes());
    assert!(refused.is_err(), "a client pinning another key must not get an answer");
    drop(server);
}
