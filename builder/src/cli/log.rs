//! `cvmforge log init|append|add-signer|checkpoint|prove|verify-proof|audit|witness`: the transparency log of
//! signed release statements (library: `cvmforge::publish::log`).
//!
//! Exit codes: 0 done or verified; 1 refused (the reason is printed: a bad signature, a rewritten log, a split view);
//! 2 usage errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::{print_json, CliResult, Failure, Ui};
use cvmforge::display::untrusted;
use cvmforge::publish::keys;
use cvmforge::publish::log::{self, audit, proof, source, writer, KeyKind, LogError, LogKey, NoteVerifier, Signers};
use cvmforge::sys::regular_file::read_capped;

/// `cvmforge log ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LogCommand {
    /// Create an empty log in a new directory.
    Init(InitArgs),
    /// Append DSSE envelopes and publish a new checkpoint.
    Append(AppendArgs),
    /// Accept envelopes signed by another key.
    AddSigner(AddSignerArgs),
    /// Print the log's checked checkpoint, or merge witnesses' cosignatures into it.
    Checkpoint(CheckpointArgs),
    /// Write an offline inclusion proof (C2SP tlog-proof) of one entry.
    Prove(ProveArgs),
    /// Check an inclusion proof with nothing but the log's public key.
    VerifyProof(VerifyProofArgs),
    /// Read a whole log (directory or http:// URL) and check every entry, tile and signature.
    Audit(AuditArgs),
    /// Check a log's checkpoint against the last one cosigned, and cosign it.
    Witness(WitnessArgs),
}

/// Arguments of `cvmforge log init`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  cvmforge log init transparency/ --origin log.example.com/cvmforge --key log.key --signer release.pub"
)]
pub(crate) struct InitArgs {
    /// The log directory (new or empty).
    pub(crate) dir: PathBuf,
    /// The log's origin line (its name in checkpoints and in the key's verifier string).
    #[arg(long)]
    pub(crate) origin: String,
    /// The log's private key (PKCS#8 PEM, from `cvmforge keygen`).
    #[arg(long, value_name = "LOGKEY")]
    pub(crate) key: PathBuf,
    /// A public key whose envelopes the log accepts (repeatable; more with `log add-signer`).
    #[arg(long = "signer", value_name = "PUB")]
    pub(crate) signers: Vec<PathBuf>,
}

/// Arguments of `cvmforge log append`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  cvmforge log append transparency/ launch.dsse.json provenance.dsse.json --key log.key"
)]
pub(crate) struct AppendArgs {
    /// The log directory.
    pub(crate) dir: PathBuf,
    /// DSSE envelopes, each signed by a key in the log's `signers` file.
    #[arg(required = true)]
    pub(crate) envelopes: Vec<PathBuf>,
    /// The log's private key.
    #[arg(long, value_name = "LOGKEY")]
    pub(crate) key: PathBuf,
}

/// Arguments of `cvmforge log add-signer`.
#[derive(Debug, clap::Args)]
pub(crate) struct AddSignerArgs {
    /// The log directory.
    pub(crate) dir: PathBuf,
    /// The signer's public key (SPKI PEM).
    pub(crate) signer: PathBuf,
}

/// Arguments of `cvmforge log checkpoint`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  cvmforge log checkpoint transparency/ --log-key log.pub \\\n    --add-cosignatures witness-state/checkpoint --witness-key w1.vkey"
)]
pub(crate) struct CheckpointArgs {
    /// The log directory.
    pub(crate) dir: PathBuf,
    /// The log's public key (SPKI PEM, or its verifier-key string or a file holding it).
    #[arg(long, value_name = "PUB")]
    pub(crate) log_key: String,
    /// Checkpoints cosigned by witnesses (`<state>/checkpoint` of `log witness`) to merge into the published one.
    #[arg(long = "add-cosignatures", value_name = "FILE", requires = "witness_keys")]
    pub(crate) cosigned: Vec<PathBuf>,
    /// A witness's verifier key (`name+keyid+base64`, or a file holding it); only its cosignatures are merged.
    #[arg(long = "witness-key", value_name = "VKEY")]
    pub(crate) witness_keys: Vec<String>,
}

/// Arguments of `cvmforge log prove`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  cvmforge log prove transparency/ --entry launch.dsse.json --log-key log.pub -o launch.tlog-proof"
)]
pub(crate) struct ProveArgs {
    /// The log directory (or http:// URL).
    pub(crate) source: String,
    /// The entry's index.
    #[arg(long, conflicts_with = "entry", required_unless_present = "entry")]
    pub(crate) index: Option<u64>,
    /// The entry itself (its index is looked up).
    #[arg(long, value_name = "ENVELOPE")]
    pub(crate) entry: Option<PathBuf>,
    /// The log's public key.
    #[arg(long, value_name = "PUB")]
    pub(crate) log_key: String,
    /// Where to write the proof (default: stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// Arguments of `cvmforge log verify-proof`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyProofArgs {
    /// The proof (C2SP tlog-proof).
    pub(crate) proof: PathBuf,
    /// The log's public key.
    #[arg(long, value_name = "PUB")]
    pub(crate) log_key: String,
    /// The entry that must be the one proved (default: the entry the proof carries).
    #[arg(long, value_name = "ENVELOPE")]
    pub(crate) entry: Option<PathBuf>,
    /// A witness's verifier key whose cosignature counts (repeatable).
    #[arg(long = "witness-key", value_name = "VKEY")]
    pub(crate) witness_keys: Vec<String>,
    /// How many of the witnesses must have cosigned the proof's checkpoint.
    #[arg(long, default_value_t = 0)]
    pub(crate) quorum: usize,
}

/// Arguments of `cvmforge log audit`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cvmforge log audit http://127.0.0.1:8000/ --log-key log.pub --state audit-state/")]
pub(crate) struct AuditArgs {
    /// The log directory, or the http:// URL it is served at.
    pub(crate) source: String,
    /// The log's public key.
    #[arg(long, value_name = "PUB")]
    pub(crate) log_key: String,
    /// Keep the last checkpoint here and require the next audit's to extend it.
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
    /// Accept only envelopes signed by these keys (default: the log's `signers` file).
    #[arg(long = "signer", value_name = "PUB")]
    pub(crate) signers: Vec<PathBuf>,
    /// A witness's verifier key whose cosignature counts (repeatable).
    #[arg(long = "witness-key", value_name = "VKEY")]
    pub(crate) witness_keys: Vec<String>,
    /// How many of the witnesses must have cosigned.
    #[arg(long, default_value_t = 0)]
    pub(crate) quorum: usize,
}

/// Arguments of `cvmforge log witness`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  cvmforge log witness http://127.0.0.1:8000/ --log-key log.pub --witness-key w1.key \\\n    --name witness.example.org/w1 --state w1-state/ --time now"
)]
pub(crate) struct WitnessArgs {
    /// The log directory, or the http:// URL it is served at.
    pub(crate) source: String,
    /// The log's public key.
    #[arg(long, value_name = "PUB")]
    pub(crate) log_key: String,
    /// The witness's private key (PKCS#8 PEM).
    #[arg(long, value_name = "WKEY")]
    pub(crate) witness_key: PathBuf,
    /// The witness's name (its cosignature key name).
    #[arg(long)]
    pub(crate) name: String,
    /// The witness's state: the last checkpoint it cosigned, which it serves, cosigned, at `<DIR>/checkpoint`.
    #[arg(long, value_name = "DIR")]
    pub(crate) state: PathBuf,
    /// The cosignature's time: seconds since the Unix epoch, or `now` (cvmforge reads the clock only when told).
    #[arg(long)]
    pub(crate) time: String,
}

pub(crate) fn run(command: LogCommand, ui: &Ui) -> CliResult {
    match command {
        LogCommand::Init(args) => init(args, ui),
        LogCommand::Append(args) => append(args, ui),
        LogCommand::AddSigner(args) => add_signer(args, ui),
        LogCommand::Checkpoint(args) => checkpoint(args, ui),
        LogCommand::Prove(args) => prove(args, ui),
        LogCommand::VerifyProof(args) => verify_proof(args, ui),
        LogCommand::Audit(args) => audit_log(args, ui),
        LogCommand::Witness(args) => witness(args, ui),
    }
}

/// A log failure, with the library's hint.
fn refused(e: LogError) -> Failure {
    let hint = e.hint();
    Failure::from(e).with_hint(hint)
}

use super::keygen::{private_key, public_key, read_small};

/// Text given on the command line or, when it names a file, that file's contents.
fn inline_or_file(value: &str) -> CliResult<String> {
    let path = Path::new(value);
    if path.is_file() {
        return Ok(String::from_utf8_lossy(&read_small(path)?).trim().to_owned());
    }
    Ok(value.trim().to_owned())
}

/// `--log-key`: a PEM public (or private) key, or a verifier-key string (inline or in a file).
fn log_key(value: &str) -> CliResult<LogKey> {
    let text = inline_or_file(value)?;
    if text.contains("-----BEGIN") {
        let key = keys::read_public(&text).with_context(|| format!("`{value}` is not a public key"))?;
        return Ok(LogKey::Bare(key));
    }
    if !Path::new(value).exists() && !text.contains('+') {
        return Err(Failure::usage(format!("`{value}` does not exist and is not a verifier key")));
    }
    let verifier =
        NoteVerifier::from_vkey(&text, KeyKind::Log).map_err(|e| Failure::usage(format!("--log-key: {e}")))?;
    Ok(LogKey::Named(verifier))
}

fn witness_keys(values: &[String]) -> CliResult<Vec<NoteVerifier>> {
    values
        .iter()
        .map(|v| {
            let text = inline_or_file(v)?;
            NoteVerifier::from_vkey(&text, KeyKind::Cosigner)
                .map_err(|e| Failure::usage(format!("--witness-key `{v}`: {e}")))
        })
        .collect()
}

fn init(args: InitArgs, ui: &Ui) -> CliResult {
    let key = private_key(&args.key)?;
    let signers = args.signers.iter().map(|p| public_key(p)).collect::<CliResult<Vec<_>>>()?;
    let checkpoint = writer::init(&args.dir, &args.origin, &key, &signers).map_err(refused)?;
    let vkey = NoteVerifier { name: checkpoint.origin.clone(), key: key.verifying_key(), kind: KeyKind::Log }.to_vkey();
    if ui.json {
        print_json(&serde_json::json!({"dir": args.dir.display().to_string(), "origin": checkpoint.origin,
            "log_verifier_key": vkey, "signers": signers.len()}))?;
    } else {
        eprintln!("log: created `{}` (origin {}, {} signer(s))", args.dir.display(), checkpoint.origin, signers.len());
        println!("{vkey}");
    }
    Ok(ExitCode::SUCCESS)
}

fn append(args: AppendArgs, ui: &Ui) -> CliResult {
    let key = private_key(&args.key)?;
    let mut entries = Vec::new();
    for path in &args.envelopes {
        if std::fs::symlink_metadata(path).is_err() {
            return Err(Failure::usage(format!("`{}` does not exist", path.display())));
        }
        let bytes = read_capped(path, cvmforge::publish::log::tiles::MAX_ENTRY as u64)
            .with_context(|| format!("cannot read `{}` (an entry holds at most 65535 bytes)", path.display()))?;
        entries.push(bytes);
    }
    let crash_at = crash_point();
    let mut step = 0u64;
    let mut hook = |name: &str| {
        step += 1;
        if crash_at == Some(step) {
            eprintln!("log: test hook: stopping at step {step} ({name})");
            std::process::abort();
        }
    };
    let done = writer::append(&args.dir, &key, &entries, &mut hook).map_err(refused)?;
    if ui.json {
        let list: Vec<_> = args
            .envelopes
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!({"index": done.first_index + i as u64, "entry": p.display().to_string()}))
            .collect();
        print_json(&serde_json::json!({"entries": list, "size": done.checkpoint.size,
            "root": log::b64(&done.checkpoint.root), "steps": step}))?;
    } else {
        for (i, path) in args.envelopes.iter().enumerate() {
            println!("{}\t{}", done.first_index + i as u64, path.display());
        }
        eprintln!(
            "log: checkpoint {} entries, root {} ({step} write steps)",
            done.checkpoint.size,
            log::b64(&done.checkpoint.root)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `CVMFORGE_TEST_CRASH_AT=N`: the fault-injection test stops `log append` at its N-th write step (abort, like a
/// kill). It changes no output; it only ends the process early.
fn crash_point() -> Option<u64> {
    std::env::var("CVMFORGE_TEST_CRASH_AT").ok().and_then(|v| v.parse().ok())
}

fn add_signer(args: AddSignerArgs, ui: &Ui) -> CliResult {
    let key = public_key(&args.signer)?;
    let added = writer::add_signer(&args.dir, &key).map_err(refused)?;
    if ui.json {
        print_json(&serde_json::json!({"added": added, "keyid": cvmforge::publish::dsse::keyid(&key)}))?;
    } else if added {
        eprintln!(
            "log: `{}` now accepts envelopes of key {}",
            args.dir.display(),
            cvmforge::publish::dsse::keyid(&key)
        );
    } else {
        eprintln!("log: key {} was already a signer", cvmforge::publish::dsse::keyid(&key));
    }
    Ok(ExitCode::SUCCESS)
}

fn checkpoint(args: CheckpointArgs, ui: &Ui) -> CliResult {
    let key = log_key(&args.log_key)?;
    let witnesses = witness_keys(&args.witness_keys)?;
    if !args.cosigned.is_empty() {
        let LogKey::Bare(bare) = &key else {
            return Err(Failure::usage("--add-cosignatures needs the log's public key as a PEM file"));
        };
        let mut cosigned = Vec::new();
        for path in &args.cosigned {
            cosigned.push((path.display().to_string(), read_small(path)?));
        }
        let count = writer::merge_cosignatures(&args.dir, bare, &cosigned, &witnesses).map_err(refused)?;
        eprintln!("log: the checkpoint now carries {count} cosignature(s) from the given witnesses");
    }
    let dir = source::DirSource(args.dir.clone());
    let (note, cp) = log::read_checkpoint(&dir, &key).map_err(refused)?;
    let cosignatures = witnesses.iter().filter(|w| note.verify(w).is_ok()).count();
    if ui.json {
        print_json(&serde_json::json!({"origin": cp.origin, "size": cp.size, "root": log::b64(&cp.root),
            "cosignatures": cosignatures, "note": String::from_utf8_lossy(&note.to_bytes())}))?;
    } else {
        // The note parsed, so it holds no control character but newlines: it is printed as it is.
        print!("{}", String::from_utf8_lossy(&note.to_bytes()));
    }
    Ok(ExitCode::SUCCESS)
}

fn prove(args: ProveArgs, ui: &Ui) -> CliResult {
    let key = log_key(&args.log_key)?;
    let src = source::open(&args.source);
    let index = match (args.index, &args.entry) {
        (Some(i), _) => i,
        (None, Some(path)) => {
            let entry =
                read_capped(path, proof::MAX_PROOF).with_context(|| format!("cannot read `{}`", path.display()))?;
            proof::find_entry(src.as_ref(), &key, &entry)
                .map_err(refused)?
                .ok_or_else(|| anyhow::anyhow!("`{}` is not in the log", path.display()))?
        }
        (None, None) => return Err(Failure::usage("give --index or --entry")),
    };
    let proved = proof::prove(src.as_ref(), &key, index).map_err(refused)?;
    match &args.output {
        Some(path) => super::attest::write_atomic(path, proved.text.as_bytes(), true)?,
        None => print!("{}", proved.text),
    }
    if ui.json && args.output.is_some() {
        print_json(
            &serde_json::json!({"index": index, "size": proved.checkpoint.size, "tiles_read": proved.tiles_read}),
        )?;
    } else {
        eprintln!(
            "log: proved entry {index} in the tree of {} entries ({} tiles read)",
            proved.checkpoint.size, proved.tiles_read
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_proof(args: VerifyProofArgs, ui: &Ui) -> CliResult {
    let key = log_key(&args.log_key)?;
    let witnesses = witness_keys(&args.witness_keys)?;
    if std::fs::symlink_metadata(&args.proof).is_err() {
        return Err(Failure::usage(format!("`{}` does not exist", args.proof.display())));
    }
    let bytes = read_capped(&args.proof, proof::MAX_PROOF)
        .with_context(|| format!("cannot read `{}`", args.proof.display()))?;
    let entry = match &args.entry {
        Some(path) => {
            Some(read_capped(path, proof::MAX_PROOF).with_context(|| format!("cannot read `{}`", path.display()))?)
        }
        None => None,
    };
    let shown = args.proof.display().to_string();
    let (parsed, verified) = proof::verify(&bytes, &shown, &key, entry.as_deref())
        .map_err(|e| refused(e).context(format!("`{shown}` is refused")))?;
    let cosignatures = log::check_quorum(&parsed.checkpoint, &witnesses, args.quorum).map_err(refused)?;
    if ui.json {
        print_json(&serde_json::json!({"verified": true, "index": verified.index, "size": verified.checkpoint.size,
            "origin": verified.checkpoint.origin, "root": log::b64(&verified.checkpoint.root),
            "entry_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&verified.entry)),
            "cosignatures": cosignatures}))?;
    } else {
        println!(
            "verified: entry {} is in {} at tree size {} (root {}), {} cosignature(s)",
            verified.index,
            untrusted(&verified.checkpoint.origin),
            verified.checkpoint.size,
            log::b64(&verified.checkpoint.root),
            cosignatures
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_log(args: AuditArgs, ui: &Ui) -> CliResult {
    let key = log_key(&args.log_key)?;
    let witnesses = witness_keys(&args.witness_keys)?;
    let signers = if args.signers.is_empty() {
        None
    } else {
        Some(Signers(args.signers.iter().map(|p| public_key(p)).collect::<CliResult<Vec<_>>>()?))
    };
    let src = source::open(&args.source);
    let options =
        audit::AuditOptions { signers, state: args.state.as_deref(), witnesses: &witnesses, quorum: args.quorum };
    let report = audit::audit(src.as_ref(), &key, &options)
        .map_err(|e| refused(e).context(format!("the log at `{}` is refused", args.source)))?;
    if ui.json {
        print_json(&serde_json::json!({"origin": report.checkpoint.origin, "size": report.checkpoint.size,
            "root": log::b64(&report.checkpoint.root), "entries_verified": report.entries,
            "tiles_checked": report.tiles_checked, "entry_bytes": report.entry_bytes,
            "cosignatures": report.cosignatures, "listed": report.listed,
            "previous_size": report.previous.as_ref().map(|p| p.size)}))?;
    } else {
        println!(
            "audited: {} entries of {} verified, {} tiles match, root {}",
            report.entries,
            untrusted(&report.checkpoint.origin),
            report.tiles_checked,
            log::b64(&report.checkpoint.root)
        );
        if let Some(prev) = &report.previous {
            println!("consistent with the checkpoint of {} entries seen before", prev.size);
        }
        if !witnesses.is_empty() {
            println!("{} of {} witness(es) cosigned (quorum {})", report.cosignatures, witnesses.len(), args.quorum);
        }
        if !report.listed {
            eprintln!("note: a website cannot be listed, so files beyond the tree's tiles were not looked for");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn witness(args: WitnessArgs, ui: &Ui) -> CliResult {
    let key = log_key(&args.log_key)?;
    let wkey = private_key(&args.witness_key)?;
    let time = match args.time.as_str() {
        // The user asked for the clock: a cosignature's time says when the witness checked the checkpoint.
        #[allow(clippy::disallowed_methods)]
        "now" => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        t => t.parse::<u64>().map_err(|_| Failure::usage("--time must be seconds since the epoch, or `now`"))?,
    };
    let vkey = NoteVerifier { name: args.name.clone(), key: wkey.verifying_key(), kind: KeyKind::Cosigner };
    cvmforge::publish::log::note::check_name(&args.name).map_err(|e| Failure::usage(format!("--name: {e}")))?;
    let src = source::open(&args.source);
    let done = audit::witness(src.as_ref(), &key, &args.name, &wkey, &args.state, time).map_err(refused)?;
    if ui.json {
        print_json(&serde_json::json!({"cosigned": true, "size": done.checkpoint.size,
            "root": log::b64(&done.checkpoint.root), "previous_size": done.previous.as_ref().map(|p| p.size),
            "witness_verifier_key": vkey.to_vkey(), "served": args.state.join("checkpoint").display().to_string()}))?;
    } else {
        match &done.previous {
            Some(p) => {
                eprintln!("witness: {} entries is consistent with the {} cosigned before", done.checkpoint.size, p.size)
            }
            None => eprintln!(
                "witness: first checkpoint of this log ({} entries); trusted on first use",
                done.checkpoint.size
            ),
        }
        eprintln!("witness: cosigned; served at `{}`", args.state.join("checkpoint").display());
        println!("{}", vkey.to_vkey());
    }
    Ok(ExitCode::SUCCESS)
}
