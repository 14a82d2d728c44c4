//! `cvmforge keygen -o NAME`: a new Ed25519 key pair for signing release statements (and, later, the log):
//! `NAME.key` (PKCS#8 PEM, mode 0600) and `NAME.pub` (SPKI PEM). Existing files are never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;

use super::{print_json, CliResult, Failure, Ui};
use cvmforge::publish::keys;

/// Arguments of `cvmforge keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Writes NAME.key (private, PKCS#8 PEM, mode 0600) and NAME.pub (public, SPKI PEM), and prints \
the public key and its C2SP verifier-key string.\n\nExample:\n  cvmforge keygen -o release-2026")]
pub(crate) struct Args {
    /// Path prefix of the two files.
    #[arg(short = 'o', long = "output", value_name = "NAME")]
    pub(crate) output: PathBuf,
    /// The key's name in its C2SP verifier-key string (default: the file name of NAME).
    #[arg(long)]
    pub(crate) name: Option<String>,
}

#[derive(serde::Serialize)]
struct Output {
    private_key: String,
    public_key_file: String,
    public_key: String,
    verifier_key: String,
    keyid: String,
}

pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let private_path = with_suffix(&args.output, "key");
    let public_path = with_suffix(&args.output, "pub");
    for path in [&private_path, &public_path] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Failure::usage(format!("`{}` exists: keygen never overwrites a key", path.display())));
        }
    }
    let default_name = args.output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = args.name.clone().unwrap_or(default_name);
    let key = keys::generate()?;
    let verifying = key.verifying_key();
    let vkey = keys::verifier_key(&name, &verifying).map_err(|e| Failure::usage(e.to_string()))?;
    write_new(&private_path, keys::private_pem(&key)?.as_bytes(), 0o600)?;
    write_new(&public_path, keys::public_pem(&verifying)?.as_bytes(), 0o644)?;
    let out = Output {
        private_key: private_path.display().to_string(),
        public_key_file: public_path.display().to_string(),
        public_key: base64::engine::general_purpose::STANDARD.encode(verifying.as_bytes()),
        verifier_key: vkey,
        keyid: cvmforge::publish::dsse::keyid(&verifying),
    };
    if ui.json {
        print_json(&out)?;
    } else {
        println!("private key   {} (mode 0600: keep it secret)", out.private_key);
        println!("public key    {}", out.public_key_file);
        println!("ed25519       {}", out.public_key);
        println!("verifier key  {}", out.verifier_key);
        println!("DSSE key id   {}", out.keyid);
    }
    Ok(ExitCode::SUCCESS)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// Creates `path` (never replacing anything) with `mode`, and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("cannot write `{}`", path.display()))
}

/// Reads a small file named on the command line (a key, a verifier key): at most 64 KiB; a missing file is a usage
/// error.
pub(crate) fn read_small(path: &Path) -> CliResult<Vec<u8>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(Failure::usage(format!("`{}` does not exist", path.display())));
    }
    Ok(cvmforge::sys::regular_file::read_capped(path, 64 * 1024)
        .with_context(|| format!("cannot read `{}`", path.display()))?)
}

/// Reads a PKCS#8 PEM private key file (`sign`, `log`).
pub(crate) fn private_key(path: &Path) -> CliResult<ed25519_dalek::SigningKey> {
    let pem = read_small(path)?;
    keys::read_private(&String::from_utf8_lossy(&pem))
        .with_context(|| format!("`{}` is not a private key", path.display()))
        .map_err(Failure::from)
}

/// Reads a public key file: SPKI PEM, or the private key it belongs to (`verify-statement`, `log`).
pub(crate) fn public_key(path: &Path) -> CliResult<ed25519_dalek::VerifyingKey> {
    let pem = read_small(path)?;
    keys::read_public(&String::from_utf8_lossy(&pem))
        .with_context(|| format!("`{}` is not a public key", path.display()))
        .map_err(Failure::from)
}
