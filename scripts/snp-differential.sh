#!/bin/sh
# Differential test of `cvmforge measure snp` against sev-snp-measure 0.0.13 (see scripts/snp-differential.py).
# Builds cvmforge in release mode unless CVMFORGE_BIN is set; the script makes its own venv under build/.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${CVMFORGE_BIN:-}" ]; then
    cargo build --release -p cvmforge --bin cvmforge
    CVMFORGE_BIN="$PWD/target/release/cvmforge"
fi
exec python3 scripts/snp-differential.py "$CVMFORGE_BIN" "$@"
