//! `cvmforge verify-statement ENVELOPE --key PUB`: checks a DSSE envelope's signature and prints its statement's
//! predicate (or, with `--json`, the statement).
//!
//! Exit codes: 0 verified; 1 refused (the reason is printed); 2 usage errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::{print_json, CliResult, Failure, Ui};
use cvmforge::publish::{dsse, statement};
use cvmforge::sys::regular_file::read_capped;

/// Arguments of `cvmforge verify-statement`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cvmforge verify-statement launch.dsse.json --key release.pub \
--predicate-type https://cvmforge.dev/launch-measurements/v1")]
pub(crate) struct Args {
    /// The DSSE envelope.
    pub(crate) envelope: PathBuf,
    /// The signer's public key (SPKI PEM, from `cvmforge keygen`).
    #[arg(long, value_name = "PUB")]
    pub(crate) key: PathBuf,
    /// Require this predicate type.
    #[arg(long, value_name = "URI")]
    pub(crate) predicate_type: Option<String>,
}

pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    for path in [&args.envelope, &args.key] {
        if !path.exists() {
            return Err(Failure::usage(format!("`{}` does not exist", path.display())));
        }
    }
    let key = super::keygen::public_key(&args.key)?;
    let bytes = read_capped(&args.envelope, dsse::MAX_ENVELOPE)
        .with_context(|| format!("cannot read `{}`", args.envelope.display()))?;
    let shown = args.envelope.display().to_string();
    let envelope = dsse::parse(&bytes).with_context(|| format!("`{shown}` is refused"))?;
    let payload =
        dsse::verify(&envelope, &key, dsse::IN_TOTO_PAYLOAD_TYPE).with_context(|| format!("`{shown}` is refused"))?;
    let statement: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|e| anyhow::anyhow!("`{shown}`: the signed payload is not JSON: {e}"))?;
    if statement.get("_type").and_then(|t| t.as_str()) != Some(statement::STATEMENT_TYPE) {
        return Err(anyhow::anyhow!("`{shown}`: the signed payload is not an in-toto Statement v1").into());
    }
    let found = statement.get("predicateType").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    if let Some(required) = &args.predicate_type {
        if &found != required {
            return Err(anyhow::anyhow!(
                "`{shown}`: predicate type `{}`, required `{required}`",
                cvmforge::display::untrusted(&found)
            )
            .into());
        }
    }
    if ui.json {
        print_json(&statement)?;
    } else {
        eprintln!(
            "verified: {} signed by key {}, predicate type {}",
            shown,
            dsse::keyid(&key),
            cvmforge::display::untrusted(&found)
        );
        let predicate = statement.get("predicate").cloned().unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&predicate).unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
