#!/usr/bin/env bash
# cvmforge measure snp vs sev-snp-measure 0.0.13 on 256 seeded random configurations (scripts/snp-differential.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/snp-differential.sh
