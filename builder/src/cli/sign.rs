//! `cvmforge sign STATEMENT --key KEY -o ENVELOPE`: a DSSE envelope (payload type `application/vnd.in-toto+json`)
//! with one Ed25519 signature.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::{CliResult, Failure, Ui};
use cvmforge::publish::dsse;
use cvmforge::sys::regular_file::read_capped;

/// Arguments of `cvmforge sign`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cvmforge sign attest/launch.intoto.json --key release.key -o launch.dsse.json")]
pub(crate) struct Args {
    /// The statement (JSON) to sign.
    pub(crate) statement: PathBuf,
    /// The private key (PKCS#8 PEM, from `cvmforge keygen`).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: PathBuf,
    /// Where to write the envelope.
    #[arg(short = 'o', long = "output", value_name = "ENVELOPE")]
    pub(crate) output: PathBuf,
}

pub(crate) fn run(args: Args, _ui: &Ui) -> CliResult {
    for path in [&args.statement, &args.key] {
        if !path.exists() {
            return Err(Failure::usage(format!("`{}` does not exist", path.display())));
        }
    }
    let payload = read_capped(&args.statement, dsse::MAX_ENVELOPE)
        .with_context(|| format!("cannot read `{}`", args.statement.display()))?;
    serde_json::from_slice::<serde_json::Value>(&payload)
        .with_context(|| format!("`{}` is not JSON: only statements are signed", args.statement.display()))?;
    let key = super::keygen::private_key(&args.key)?;
    let envelope = dsse::sign(&payload, dsse::IN_TOTO_PAYLOAD_TYPE, &key);
    let mut bytes = serde_json::to_vec(&envelope).context("cannot encode the envelope")?;
    bytes.push(b'\n');
    super::attest::write_atomic(&args.output, &bytes, true)?;
    println!(
        "signed {} -> {} (key id {})",
        args.statement.display(),
        args.output.display(),
        envelope.signatures[0].keyid
    );
    Ok(ExitCode::SUCCESS)
}
