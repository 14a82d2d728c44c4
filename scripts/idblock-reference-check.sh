#!/usr/bin/env bash
# Cross-checks `cvmforge id-block` against the reference `snp-create-id-block` (sev-snp-measure 0.0.13) and verifies
# cvmforge's ECDSA signatures with an independent implementation (Python `cryptography`, i.e. OpenSSL).
#
# Usage: SSM_VENV=/path/to/venv-with-sev-snp-measure scripts/idblock-reference-check.sh
#   SSM_VENV     virtualenv where `pip install sev-snp-measure==0.0.13` was run (provides snp-create-id-block and
#                the `cryptography` package)
#   CVMFORGE_BIN cvmforge binary (default: builds it with `cargo build -p cvmforge` and uses target/debug/cvmforge)
#
# What must hold (the reference signs with a random nonce, so its signature bytes differ on every run):
#   - id-block bytes identical;
#   - id-auth bytes identical except R and S of ID_BLOCK_SIG (0x40..0xD0) and ID_KEY_SIG (0x680..0x710);
#   - ID key digest and author key digest identical;
#   - cvmforge's ID_BLOCK_SIG verifies over the id-block with the ID key, and its ID_KEY_SIG over the 1028-byte
#     ID_KEY structure with the author key, using OpenSSL via `cryptography`.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${SSM_VENV:?set SSM_VENV to a virtualenv with sev-snp-measure 0.0.13 installed}"
REF="$SSM_VENV/bin/snp-create-id-block"
PY="$SSM_VENV/bin/python"
[ -x "$REF" ] || { echo "error: $REF not found (pip install sev-snp-measure==0.0.13 into SSM_VENV)" >&2; exit 1; }
if [ -z "${CVMFORGE_BIN:-}" ]; then
    cargo build -q -p cvmforge
    CVMFORGE_BIN=target/debug/cvmforge
fi

KEYS=tests/fixtures/keys
passed=0
failed=0
for digest_seed in 0 1 2; do
    MEAS=$("$PY" -c "import base64,hashlib;print(base64.b64encode(hashlib.sha384(b'seed-$digest_seed').digest()).decode())")
    REF_OUT=$("$REF" --measurement "$MEAS" --idkey "$KEYS/id-key-p384.pem" --authorkey "$KEYS/author-key-p384-sec1.pem")
    OURS=$("$CVMFORGE_BIN" id-block --json --measurement "$MEAS" \
        --id-key "$KEYS/id-key-p384.pem" --author-key "$KEYS/author-key-p384-sec1.pem")
    if REF_OUT="$REF_OUT" OURS="$OURS" "$PY" - <<'PYEOF'; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
import base64, json, os, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

ref = {}
for part in os.environ["REF_OUT"].replace(",", "\n").splitlines():
    if "=" in part:
        k, v = part.split("=", 1)
    else:
        k, v = part.split(": ", 1)
    ref[k.strip()] = base64.b64decode(v.strip())
ours = json.loads(os.environ["OURS"])
blk, auth = base64.b64decode(ours["id_block"]), base64.b64decode(ours["id_auth"])

def masked(a):
    a = bytearray(a)
    for at in (0x40, 0x680):
        a[at:at + 144] = bytes(144)
    return bytes(a)

def pub(struct):
    assert int.from_bytes(struct[0:4], "little") == 2, "curve is not P-384"
    x = int.from_bytes(struct[4:76], "little")
    y = int.from_bytes(struct[76:148], "little")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP384R1()).public_key()

def verify(key, sig, msg, what):
    r = int.from_bytes(sig[0:72], "little")
    s = int.from_bytes(sig[72:144], "little")
    try:
        key.verify(utils.encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        sys.exit(f"FAIL: {what} does not verify (OpenSSL)")

fails = []
if blk != ref["id-block"]: fails.append("id-block differs")
if len(auth) != 4096: fails.append(f"id-auth is {len(auth)} bytes")
if masked(auth) != masked(ref["id-auth"]): fails.append("id-auth differs outside the signatures")
if bytes.fromhex(ours["id_key_digest"]) != ref["id_key_hash"]: fails.append("id key digest differs")
if bytes.fromhex(ours["author_key_digest"]) != ref["author_key"]: fails.append("author key digest differs")
if fails: sys.exit("FAIL: " + "; ".join(fails))
verify(pub(auth[0x240:0x644]), auth[0x40:0x240], blk, "cvmforge ID_BLOCK_SIG")
verify(pub(auth[0x880:0xC84]), auth[0x680:0x880], auth[0x240:0x644], "cvmforge ID_KEY_SIG")
# And the reference's own signatures verify with the same code (checks this script's R/S decoding).
verify(pub(ref["id-auth"][0x240:0x644]), ref["id-auth"][0x40:0x240], ref["id-block"], "reference ID_BLOCK_SIG")
print(f"ok: id-block, id-auth (except signatures), key digests identical; signatures verify ({ours['id_key_digest'][:16]}...)")
PYEOF
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -eq 3 ]
