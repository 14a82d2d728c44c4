//! initrd packing benchmark: GNU cpio + gzip, GNU cpio + pigz, and cvmforge (gzip and zstd) on the same payload.
//!
//! Run with `scripts/bench-initrd.sh` (or `cargo bench -p cvmforge --bench initrd`); see `benches/README.md`.
//! Environment: `SIZE_MIB` (payload size, default 1024, half random and half text-like), `BENCH_DIR` (default
//! `build/bench-initrd` in the workspace), `BENCH_ONLY` (comma-separated words: only the runs whose name contains
//! one). The payload is generated from a fixed seed and reused when present.
//!
//! `initrd pack <dir> <out> <gzip|zstd|none> <threads>` is the cvmforge pipeline on its own (the orchestrator runs
//! it under `/usr/bin/time -v`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use cvmforge::format::compress::{self, Compression, DEFAULT_ZSTD_LEVEL};
use cvmforge::format::cpio::CpioWriter;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MIB: u64 = 1024 * 1024;
/// Each payload file is this large (the last one of each half may be smaller).
const FILE_SIZE: u64 = 4 * MIB;
/// Fixed seed: the payload is the same on every run and every machine.
const SEED: u64 = 0x6376_6d66_6f72_6765;

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and must not start a
    // multi-minute benchmark.
    let benching = all.iter().any(|a| a == "--bench");
    let args: Vec<String> = all.into_iter().filter(|a| !a.starts_with("--")).collect();
    let result = match args.first().map(String::as_str) {
        Some("pack") => pack_command(&args[1..]),
        _ if benching => orchestrate(),
        _ => {
            println!("initrd benchmark: not run without `--bench` (use scripts/bench-initrd.sh or `cargo bench`)");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Orchestration

struct Measurement {
    name: String,
    wall_s: f64,
    cpu_s: f64,
    max_rss_kib: u64,
    size: u64,
}

fn orchestrate() -> Result<()> {
    let size_mib: u64 = std::env::var("SIZE_MIB").ok().map(|v| v.parse()).transpose()?.unwrap_or(1024);
    let root = match std::env::var_os("BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("build").join("bench-initrd"),
    };
    fs::create_dir_all(&root)?;
    let root = root.canonicalize()?;
    let payload = root.join(format!("payload-{size_mib}MiB"));
    let out = root.join("out");
    fs::create_dir_all(&out)?;
    generate_if_missing(&payload, size_mib)?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let exe = std::env::current_exe()?;
    let p = payload.display().to_string();
    let o = |name: &str| out.join(name).display().to_string();

    let shell = |tool: &str, file: &str| {
        format!(
            "cd '{p}' && find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet | {tool} > '{file}'"
        )
    };
    let runs: Vec<(String, Vec<String>, String)> = vec![
        ("GNU cpio \\| gzip -n -6".into(), sh(shell("gzip -n -6", &o("gnu-gzip.cpio.gz"))), o("gnu-gzip.cpio.gz")),
        ("GNU cpio \\| pigz -n -6".into(), sh(shell("pigz -n -6", &o("gnu-pigz.cpio.gz"))), o("gnu-pigz.cpio.gz")),
        (
            format!("cvmforge gzip -6, {threads} threads"),
            vec![
                exe.display().to_string(),
                "pack".into(),
                p.clone(),
                o("cvmforge.cpio.gz"),
                "gzip".into(),
                threads.to_string(),
            ],
            o("cvmforge.cpio.gz"),
        ),
        (
            format!("cvmforge zstd -{DEFAULT_ZSTD_LEVEL}, {threads} threads"),
            vec![
                exe.display().to_string(),
                "pack".into(),
                p.clone(),
                o("cvmforge.cpio.zst"),
                "zstd".into(),
                threads.to_string(),
            ],
            o("cvmforge.cpio.zst"),
        ),
    ];
    println!("payload: {} ({size_mib} MiB: half random, half text-like), {threads} CPUs", payload.display());
    println!("load average before: {}", load_average());
    // BENCH_ONLY=pigz,gzip-6 keeps the runs whose name contains one of the words (for re-running a comparison).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|word| name.contains(word));
    let mut results = Vec::new();
    for (name, command, file) in runs.into_iter().filter(|(name, _, _)| wanted(name)) {
        eprintln!("running: {name}");
        let mut m = time_v(&command)?;
        m.name = name;
        m.size = fs::metadata(&file)?.len();
        check_integrity(&file)?;
        results.push(m);
    }
    println!("load average after: {}", load_average());
    print_table(&results);
    Ok(())
}

fn sh(script: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script]
}

/// Runs `command` under `/usr/bin/time -v` and reads wall time, CPU time and peak RSS (of the largest process).
fn time_v(command: &[String]) -> Result<Measurement> {
    let output = Command::new("/usr/bin/time").arg("-v").args(command).output()?;
    let report = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("{command:?} failed: {report}").into());
    }
    let field = |label: &str| -> Result<&str> {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim))
            .ok_or_else(|| format!("`{label}` missing from /usr/bin/time output").into())
    };
    let wall_s = parse_clock(field("Elapsed (wall clock) time (h:mm:ss or m:ss):")?)?;
    let cpu_s: f64 =
        field("User time (seconds):")?.parse::<f64>()? + field("System time (seconds):")?.parse::<f64>()?;
    let max_rss_kib = field("Maximum resident set size (kbytes):")?.parse()?;
    Ok(Measurement { name: String::new(), wall_s, cpu_s, max_rss_kib, size: 0 })
}

/// `h:mm:ss` or `m:ss.ss` to seconds.
fn parse_clock(text: &str) -> Result<f64> {
    text.split(':').try_fold(0.0, |acc, part| Ok(acc * 60.0 + part.parse::<f64>()?))
}

/// The archive must decompress: `gzip -t` / `zstd -t`.
fn check_integrity(file: &str) -> Result<()> {
    let tool = if file.ends_with(".zst") { "zstd" } else { "gzip" };
    let status = Command::new(tool).args(["-t", "-q", file]).status()?;
    if !status.success() {
        return Err(format!("`{tool} -t {file}` failed").into());
    }
    Ok(())
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

fn print_table(results: &[Measurement]) {
    let base = results.iter().find(|m| m.name.contains("pigz"));
    println!();
    println!("| pipeline | wall s | CPU s | peak RSS MiB | output bytes | size vs pigz | wall vs pigz |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let (size_ratio, time_ratio) = match base {
            Some(b) => (m.size as f64 / b.size as f64, m.wall_s / b.wall_s),
            None => (f64::NAN, f64::NAN),
        };
        println!(
            "| {} | {:.2} | {:.2} | {:.1} | {} | {:.4} | {:.2} |",
            m.name,
            m.wall_s,
            m.cpu_s,
            m.max_rss_kib as f64 / 1024.0,
            m.size,
            size_ratio,
            time_ratio
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The cvmforge pipeline

fn pack_command(args: &[String]) -> Result<()> {
    let [dir, out, algorithm, threads] = args else {
        return Err("usage: initrd pack <dir> <out> <gzip|zstd|none> <threads>".into());
    };
    let compression = match algorithm.as_str() {
        "gzip" => Compression::Gzip { level: compress::DEFAULT_GZIP_LEVEL },
        "zstd" => Compression::Zstd { level: DEFAULT_ZSTD_LEVEL },
        "none" => Compression::None,
        other => return Err(format!("unknown algorithm `{other}`").into()),
    };
    let threads: usize = threads.parse()?;
    let file = BufWriter::with_capacity(256 * 1024, File::create(out)?);
    let encoder = compress::encoder(&compression, threads, file)?;
    let mut cpio = CpioWriter::new(encoder, 0);
    add_tree(&mut cpio, Path::new(dir), "")?;
    let encoder = cpio.finish()?;
    // No fsync: the GNU pipelines do not sync either (the kernel writes back after the timed run).
    encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Adds the directory tree under `dir` in sorted (byte-wise) path order, as `find | sort` would list it.
fn add_tree<W: Write>(cpio: &mut CpioWriter<W>, dir: &Path, prefix: &str) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().into_string().map_err(|n| format!("non-UTF-8 name {n:?}"))?;
        let path = format!("{prefix}{name}");
        let meta = fs::metadata(entry.path())?; // follows symbolic links, as a payload may use them
        if meta.is_dir() {
            cpio.add_directory(&path, 0o755)?;
            add_tree(cpio, &entry.path(), &format!("{path}/"))?;
        } else {
            let mut file = File::open(entry.path())?;
            cpio.add_file(&path, 0o644, meta.len(), &mut file as &mut dyn Read)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Payload generation

fn generate_if_missing(dir: &Path, size_mib: u64) -> Result<()> {
    let marker = dir.join(".complete");
    if marker.exists() {
        return Ok(());
    }
    eprintln!("generating {size_mib} MiB payload in {}", dir.display());
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    let half = size_mib * MIB / 2;
    let mut rng = SplitMix64(SEED);
    write_files(&dir.join("random"), "r", ".bin", half, |buf| rng.fill(buf))?;
    let mut text = TextGen::new(SEED ^ 0x7465_7874);
    write_files(&dir.join("text"), "t", ".txt", half, |buf| text.fill(buf))?;
    fs::write(marker, b"")?;
    Ok(())
}

fn write_files(dir: &Path, stem: &str, ext: &str, total: u64, mut fill: impl FnMut(&mut [u8])) -> Result<()> {
    fs::create_dir_all(dir)?;
    let mut left = total;
    let mut index = 0;
    let mut buf = vec![0u8; usize::try_from(FILE_SIZE)?];
    while left > 0 {
        let len = usize::try_from(left.min(FILE_SIZE))?;
        fill(&mut buf[..len]);
        fs::write(dir.join(format!("{stem}{index:04}{ext}")), &buf[..len])?;
        left -= len as u64;
        index += 1;
    }
    Ok(())
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny deterministic PRNG, good enough for incompressible bytes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Text-like bytes: lines of words drawn with a skewed (Zipf-like) distribution from a generated vocabulary, with
/// punctuation, numbers and indentation — compresses roughly like source code or logs.
struct TextGen {
    rng: SplitMix64,
    vocabulary: Vec<Vec<u8>>,
    pending: Vec<u8>,
}

impl TextGen {
    fn new(seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let letters = b"etaoinshrdlucmfwypvbgkjqxz";
        let vocabulary = (0..4096)
            .map(|_| {
                let len = 2 + (rng.next() % 9) as usize;
                (0..len).map(|_| letters[((rng.next() % 26) * (rng.next() % 26) / 26) as usize]).collect()
            })
            .collect();
        TextGen { rng, vocabulary, pending: Vec::new() }
    }

    fn line(&mut self) {
        let indent = (self.rng.next() % 4) as usize * 4;
        self.pending.extend(std::iter::repeat_n(b' ', indent));
        let words = 4 + self.rng.next() % 11;
        for i in 0..words {
            if i > 0 {
                self.pending.push(b' ');
            }
            let r = self.rng.next();
            if r.is_multiple_of(17) {
                self.pending.extend_from_slice((r >> 20).to_string().as_bytes());
            } else {
                // u^3 skews towards the front of the vocabulary, like word frequencies.
                let u = (r >> 11) as f64 / (1u64 << 53) as f64;
                let index = (u * u * u * self.vocabulary.len() as f64) as usize;
                self.pending.extend_from_slice(&self.vocabulary[index.min(self.vocabulary.len() - 1)]);
            }
        }
        let end: &[u8] = match self.rng.next() % 5 {
            0 => b";\n",
            1 => b",\n",
            2 => b" {\n",
            3 => b".\n",
            _ => b"\n",
        };
        self.pending.extend_from_slice(end);
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut filled = 0;
        while filled < buf.len() {
            if self.pending.is_empty() {
                while self.pending.len() < 64 * 1024 {
                    self.line();
                }
            }
            let n = self.pending.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            filled += n;
        }
    }
}
