//! `cvmforge id-block`: sign an SEV-SNP ID block for a launch digest and print the values QEMU's `sev-snp-guest`
//! object takes (`id-block`, `id-auth`, `author-key-enabled`), the key digests attestation reports will carry, and
//! the decoded guest policy.
//!
//! Spec: `docs/specs/snp-launch-digest.md` ("ID block"); the library side is `cvmforge_measure::snp::id_block`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cvmforge_measure::snp::id_block::{
    sign_id_block, IdBlock, IdBlockError, LaunchDigest, SignedIdBlock, SnpSigningKey, ID_LEN, LAUNCH_DIGEST_LEN,
};
use cvmforge_measure::snp::policy::{GuestPolicy, PolicyWarning};
use serde::Serialize;

use super::{CliResult, Failure, Ui};

/// Version of the `--json` document below; bumped on any incompatible change.
const SCHEMA_VERSION: u32 = 1;

const KEYGEN_HINT: &str =
    "ID and author keys must be unencrypted ECDSA P-384 keys in PEM, e.g. from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out id-key.pem`";

/// Arguments of `cvmforge id-block`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cvmforge id-block --measurement \"$(cat launch-digest.hex)\" --id-key id-key.pem
  cvmforge id-block --measurement <96 hex digits> --id-key id.pem --author-key author.pem \\
      --family-id 00112233445566778899aabbccddeeff --guest-svn 3 --policy 0x30000 --json

Pass the printed values to QEMU (policy equal to --policy):
  -object sev-snp-guest,policy=0x30000,id-block=B64,id-auth=B64,author-key-enabled=on
Signatures are deterministic (RFC 6979): the same inputs and keys always give the same output.")]
pub(crate) struct Args {
    /// The expected SEV-SNP launch digest (48 bytes), as 96 hex digits or base64.
    #[arg(long, value_name = "HEX|BASE64")]
    pub(crate) measurement: String,

    /// FAMILY_ID (16 bytes, 32 hex digits), copied into attestation reports.
    #[arg(long, value_name = "HEX", default_value = "00000000000000000000000000000000")]
    pub(crate) family_id: String,

    /// IMAGE_ID (16 bytes, 32 hex digits), copied into attestation reports.
    #[arg(long, value_name = "HEX", default_value = "00000000000000000000000000000000")]
    pub(crate) image_id: String,

    /// GUEST_SVN, the guest's security version number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) guest_svn: u32,

    /// The guest policy (hex with 0x, or decimal); must equal the policy QEMU launches the guest with.
    #[arg(long, value_name = "POLICY", default_value = "0x30000")]
    pub(crate) policy: String,

    /// The ID private key (ECDSA P-384, PEM: PKCS#8 or SEC1) that signs the ID block.
    #[arg(long, value_name = "PEM")]
    pub(crate) id_key: PathBuf,

    /// The author private key (ECDSA P-384, PEM) that certifies the ID key; omit for no author key.
    #[arg(long, value_name = "PEM")]
    pub(crate) author_key: Option<PathBuf>,
}

/// One policy warning in the JSON document.
#[derive(Debug, Serialize)]
struct WarningDoc {
    /// Stable kebab-case code.
    code: &'static str,
    /// `critical` (a debug guest: never a release) or `warning`.
    severity: &'static str,
    message: String,
}

/// The result of `cvmforge id-block`; `--json` prints it, the text output is rendered from it.
#[derive(Debug, Serialize)]
struct Report {
    schema_version: u32,
    r#type: &'static str,
    /// Base64 of the 96-byte ID block (QEMU `id-block`).
    id_block: String,
    /// Base64 of the 4096-byte ID auth structure (QEMU `id-auth`).
    id_auth: String,
    /// QEMU `author-key-enabled`.
    author_key_enabled: bool,
    /// SHA-384 of the ID public key structure: the report's ID_KEY_DIGEST.
    id_key_digest: String,
    /// SHA-384 of the author public key structure: the report's AUTHOR_KEY_DIGEST (null without author key).
    author_key_digest: Option<String>,
    launch_digest: String,
    family_id: String,
    image_id: String,
    guest_svn: u32,
    policy: PolicyDoc,
    warnings: Vec<WarningDoc>,
    /// How the signatures were made.
    signature_scheme: &'static str,
}

/// The decoded guest policy in the JSON document.
#[derive(Debug, Serialize)]
struct PolicyDoc {
    value: String,
    /// Every field of the ABI table by lower-case name (ordered by the JSON printer).
    fields: BTreeMap<String, u64>,
    /// The text table, as the human output prints it.
    #[serde(skip)]
    table: String,
}

/// Runs `cvmforge id-block`.
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let policy = parse_policy(&args.policy)?;
    let block = IdBlock {
        launch_digest: parse_digest(&args.measurement)?,
        family_id: parse_id(&args.family_id, "--family-id")?,
        image_id: parse_id(&args.image_id, "--image-id")?,
        guest_svn: args.guest_svn,
        policy,
    };
    let id_key = load_key(&args.id_key, "ID key")?;
    let author_key = args.author_key.as_deref().map(|p| load_key(p, "author key")).transpose()?;
    let signed = sign_id_block(block, &id_key, author_key.as_ref());
    // Self-check before printing: a structure the firmware would reject must never reach the user.
    signed.id_auth.verify(&signed.id_block_bytes()).context("internal error (a bug): the ID auth does not verify")?;
    let report = report(&signed);
    print_warnings(&policy);
    if ui.json {
        super::print_json(&report)?;
    } else {
        print!("{}", render_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_policy(text: &str) -> CliResult<GuestPolicy> {
    let policy: GuestPolicy = text.parse().context("invalid --policy")?;
    policy.validate().map_err(|e| {
        hinted(e, "the default `0x30000` allows SMT and sets the must-be-one bit 17; bits 63:26 must be zero")
            .context(format!("--policy `{text}` would be rejected by the SEV-SNP firmware"))
    })?;
    Ok(policy)
}

/// Accepts 96 hex digits (optionally `0x`-prefixed) or base64 (as `sev-snp-measure` prints and takes).
fn parse_digest(text: &str) -> CliResult<LaunchDigest> {
    let trimmed = text.trim();
    let hex_digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    let candidates = [hex::decode(hex_digits).ok(), BASE64.decode(trimmed).ok()];
    let decoded: Vec<&Vec<u8>> = candidates.iter().flatten().collect();
    if let Some(bytes) = decoded.iter().find(|b| b.len() == LAUNCH_DIGEST_LEN) {
        return Ok(LaunchDigest::from_slice(bytes)?);
    }
    let err = match decoded.first() {
        Some(bytes) => anyhow::Error::new(IdBlockError::DigestLength { found: bytes.len() }),
        None => anyhow::anyhow!("`{trimmed}` is neither hex nor base64"),
    };
    Err(hinted(err, "give the 48-byte SEV-SNP launch digest as 96 hex digits or as base64 (64 characters)")
        .context("invalid --measurement"))
}

fn parse_id(text: &str, flag: &'static str) -> anyhow::Result<[u8; ID_LEN]> {
    let bytes = hex::decode(text.trim()).with_context(|| format!("{flag} `{text}` is not hex"))?;
    <[u8; ID_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("{flag} `{text}` is {} bytes, expected {ID_LEN} (32 hex digits)", bytes.len()))
}

fn load_key(path: &Path, what: &str) -> CliResult<SnpSigningKey> {
    let text = fs_err::read_to_string(path).with_context(|| format!("cannot read {what} `{}`", path.display()))?;
    SnpSigningKey::from_pem(&text)
        .map_err(|e| hinted(e, KEYGEN_HINT).context(format!("cannot load {what} `{}`", path.display())))
}

/// `cause` (printed as `caused by:` under the context added to it) with `hint`.
fn hinted(cause: impl std::fmt::Display, hint: &str) -> Failure {
    Failure::hinted(anyhow::anyhow!("{cause}"), hint)
}

fn warning_doc(w: PolicyWarning) -> WarningDoc {
    let (code, severity) = match w {
        PolicyWarning::DebugAllowed => ("debug-allowed", "critical"),
        PolicyWarning::MigrationAgentAllowed => ("migrate-ma-allowed", "warning"),
        // PolicyWarning is non_exhaustive: a new variant is shown with a generic code until it gets its own.
        _ => ("policy-warning", "warning"),
    };
    WarningDoc { code, severity, message: w.to_string() }
}

/// Warnings always go to stderr (also with `--json`), the debug one framed so that it cannot be missed.
fn print_warnings(policy: &GuestPolicy) {
    for w in policy.warnings() {
        if w.is_loud() {
            eprintln!("{}", "!".repeat(78));
            eprintln!("WARNING: {w}");
            eprintln!("{}", "!".repeat(78));
        } else {
            eprintln!("warning: {w}");
        }
    }
}

fn report(signed: &SignedIdBlock) -> Report {
    let block = &signed.id_block;
    let policy = block.policy;
    Report {
        schema_version: SCHEMA_VERSION,
        r#type: "id-block",
        id_block: BASE64.encode(signed.id_block_bytes()),
        id_auth: BASE64.encode(signed.id_auth_bytes()),
        author_key_enabled: signed.author_key_digest().is_some(),
        id_key_digest: hex::encode(signed.id_key_digest()),
        author_key_digest: signed.author_key_digest().map(hex::encode),
        launch_digest: hex::encode(block.launch_digest.0),
        family_id: hex::encode(block.family_id),
        image_id: hex::encode(block.image_id),
        guest_svn: block.guest_svn,
        policy: PolicyDoc {
            value: format!("{:#x}", policy.bits()),
            fields: policy.fields().map(|(f, v)| (f.name.to_ascii_lowercase(), v)).collect(),
            table: policy.to_string(),
        },
        warnings: policy.warnings().into_iter().map(warning_doc).collect(),
        signature_scheme: "ecdsa-p384-sha384-rfc6979",
    }
}

fn render_text(r: &Report) -> String {
    let on_off = if r.author_key_enabled { "on" } else { "off" };
    let author = r.author_key_digest.as_deref().unwrap_or("none (no author key)");
    let mut out = format!("id-block={}\nid-auth={}\nauthor-key-enabled={on_off}\n\n", r.id_block, r.id_auth);
    out += &format!("id key digest:     {}\nauthor key digest: {author}\n", r.id_key_digest);
    out += &format!("launch digest:     {}\nfamily id:         {}\n", r.launch_digest, r.family_id);
    out += &format!("image id:          {}\nguest svn:         {}\n\n", r.image_id, r.guest_svn);
    out += &r.policy.table;
    out.push('\n');
    out
}
