//! `attest-client PLAIN_ADDR TLS_ADDR JSON_BODY`: the client side of the attested channel (see `client`), for the
//! boot test and for people. Fetches `/v1/attestation` from PLAIN_ADDR, prints what it says on stderr, pins the TLS key
//! it names, and POSTs JSON_BODY to `/v1/summarize` over TLS at TLS_ADDR; prints the response body on stdout.
//!
//! Without a report (no confidential-computing device), the key is taken from the endpoint's `tls_spki_sha256` and
//! the client says on stderr that it is UNVERIFIED: a real client would refuse, or check the report with
//! `cvmforge check-evidence --report-data` first. Exit 0 on a 200 answer, 1 otherwise, 2 on usage errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

fn get_attestation(addr: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    s.write_all(b"GET /v1/attestation HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP head in the answer")?;
    Ok(serde_json::from_slice(response.get(split + 4..).unwrap_or_default())?)
}

fn run(plain: &str, tls: &str, body: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let evidence = get_attestation(plain)?;
    let key_hex = evidence["tls_spki_sha256"].as_str().ok_or("no tls_spki_sha256 in the attestation")?;
    match evidence.get("report") {
        Some(report) if report.is_string() => {
            eprintln!(
                "attest-client: report from `{}`; check it with `cvmforge check-evidence --report-data {}`",
                evidence["provider"].as_str().unwrap_or("?"),
                evidence["report_data"].as_str().unwrap_or("?")
            );
        }
        _ => eprintln!(
            "attest-client: UNVERIFIED: no report ({}); pinning the key the server names, {key_hex}",
            evidence["error"].as_str().unwrap_or("no reason given")
        ),
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex, &mut key)?;
    let request = format!("POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let response = summarize_server::client::https_request(tls, key, request.as_bytes())?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP head in the answer")?;
    let ok = response.starts_with(b"HTTP/1.1 200 ");
    std::io::stdout().write_all(response.get(split + 4..).unwrap_or_default())?;
    println!();
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plain, tls, body] = args.as_slice() else {
        eprintln!("usage: attest-client PLAIN_ADDR TLS_ADDR JSON_BODY");
        return ExitCode::from(2);
    };
    match run(plain, tls, body) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
