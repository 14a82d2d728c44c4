#!/usr/bin/env bash
# Benchmark: `cvmforge check-evidence`'s library checks the real SEV-SNP report and the real TDX quote of
# tests/fixtures/evidence 1,000 times each in one process (release build), and times the signature work alone.
# See builder/benches/README.md. Usage: builder/benches/check-evidence.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "check-evidence bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --locked -q -p cvmforge --bench evidence -- --run
