//! Transparency-log benchmark (`harness = false`), driven by `benches/log.sh`:
//!
//! - `append DIR COUNT BATCH SIZE [signed]`: a new log in DIR, COUNT entries of SIZE bytes appended in batches of
//!   BATCH (`signed`: DSSE envelopes signed by a release key that the log accepts, checked on append as in production;
//!   otherwise raw entries through `append_unchecked`); prints entries per second, bytes on disk and the resident set
//!   after each tenth, so that growth with the log shows;
//! - `prove DIR INDEX`: one inclusion proof (time, tiles read).

use std::path::Path;
use std::time::Instant;

use cvmforge::publish::dsse;
use cvmforge::publish::log::{proof, source::DirSource, writer, LogKey};
use ed25519_dalek::SigningKey;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata();
        match meta {
            Ok(m) if m.is_dir() => total += disk_bytes(&entry.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

fn entry(i: u64, size: usize, release: Option<&SigningKey>) -> Vec<u8> {
    match release {
        None => {
            let mut e = vec![0u8; size];
            e[..8].copy_from_slice(&i.to_be_bytes());
            e
        }
        Some(key) => {
            // A statement padded so that the envelope is about `size` bytes (base64 grows it by 4/3).
            let pad = "x".repeat((size * 3 / 4).saturating_sub(220));
            let statement = format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"r{i}","digest":{{"sha256":"{i:064x}"}}}}],"predicateType":"https://cvmforge.dev/launch-measurements/v1","predicate":{{"pad":"{pad}"}}}}"#
            );
            serde_json::to_vec(&dsse::sign(statement.as_bytes(), dsse::IN_TOTO_PAYLOAD_TYPE, key)).unwrap_or_default()
        }
    }
}

fn append(dir: &Path, count: u64, batch: u64, size: usize, signed: bool) {
    let log_key = SigningKey::from_bytes(&[1; 32]);
    let release = SigningKey::from_bytes(&[2; 32]);
    let _ = std::fs::remove_dir_all(dir);
    writer::init(dir, "bench.example/log", &log_key, &[release.verifying_key()]).expect("init");
    let start = Instant::now();
    let mut done = 0u64;
    let mut entry_bytes = 0u64;
    let mut next_report = count / 10;
    while done < count {
        let n = batch.min(count - done);
        let entries: Vec<Vec<u8>> = (done..done + n).map(|i| entry(i, size, signed.then_some(&release))).collect();
        entry_bytes += entries.iter().map(|e| e.len() as u64).sum::<u64>();
        let result = if signed {
            writer::append(dir, &log_key, &entries, &mut |_| {})
        } else {
            writer::append_unchecked(dir, &log_key, &entries)
        };
        result.expect("append");
        done += n;
        if done >= next_report {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "append: {done:>8} entries  {:>9.0} entries/s  disk {:>6.1} MiB  RSS {:>5.1} MiB  peak {:>5.1} MiB",
                done as f64 / secs,
                disk_bytes(dir) as f64 / 1048576.0,
                rss_kib("VmRSS:") as f64 / 1024.0,
                rss_kib("VmHWM:") as f64 / 1024.0
            );
            next_report += count / 10;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "append total: {count} entries ({:.1} MiB of entries) in {secs:.2} s = {:.0} entries/s; {:.1} MiB on disk; peak RSS {:.1} MiB",
        entry_bytes as f64 / 1048576.0,
        count as f64 / secs,
        disk_bytes(dir) as f64 / 1048576.0,
        rss_kib("VmHWM:") as f64 / 1024.0
    );
}

fn prove(dir: &Path, index: u64) {
    let log_key = SigningKey::from_bytes(&[1; 32]);
    let source = DirSource(dir.to_path_buf());
    let start = Instant::now();
    let proved = proof::prove(&source, &LogKey::Bare(log_key.verifying_key()), index).expect("prove");
    let secs = start.elapsed().as_secs_f64();
    let hashes = proved.text.lines().filter(|l| l.len() == 44 && l.ends_with('=')).count();
    println!(
        "prove: entry {index} of {}: {:.3} ms, {} tiles read (incl. its entry bundle), {} proof hashes",
        proved.checkpoint.size,
        secs * 1000.0,
        proved.tiles_read,
        hashes.saturating_sub(1)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "append" => append(
            Path::new(&arg(1)),
            arg(2).parse().expect("COUNT"),
            arg(3).parse().expect("BATCH"),
            arg(4).parse().expect("SIZE"),
            arg(5) == "signed",
        ),
        "prove" => prove(Path::new(&arg(1)), arg(2).parse().expect("INDEX")),
        _ => eprintln!("usage: log append DIR COUNT BATCH SIZE [signed] | log prove DIR INDEX (see benches/log.sh)"),
    }
}
