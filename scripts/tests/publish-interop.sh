#!/usr/bin/env bash
# Issue 12: cvmforge's in-toto statements and DSSE envelopes against the reference Python libraries
# (securesystemslib and in-toto-attestation, pinned in build/publish-venv by scripts/setup.sh --test): they verify our
# envelopes and validate our statements, refuse a tampered one, and our verifier accepts an envelope they signed.
# Prints `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${CVMFORGE_BIN:-target/release/cvmforge}
venv=build/publish-venv
work=build/publish-interop
fail() { echo "publish-interop: FAIL: $*"; echo "publish-interop: 0 passed, 1 failed"; exit 1; }
[ -x "$bin" ] || fail "$bin is not built (run scripts/setup.sh)"
[ -x "$venv/bin/python" ] || fail "$venv is missing (run scripts/setup.sh --test)"
[ -f out/demo/manifest.json ] || "$bin" build recipes/demo.yaml -o out/demo --force > /dev/null || fail "cannot build the demo"
rm -rf "$work"
mkdir -p "$work"
"$bin" keygen -o "$work/key" > /dev/null || fail "keygen failed"
"$bin" attest out/demo -o "$work" > /dev/null || fail "attest failed"
for s in provenance launch; do
  "$bin" sign "$work/$s.intoto.json" --key "$work/key.key" -o "$work/$s.dsse.json" > /dev/null || fail "sign $s failed"
done
exec "$venv/bin/python" scripts/publish-interop.py "$work" "$bin"
