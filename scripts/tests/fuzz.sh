#!/usr/bin/env bash
# Every cargo-fuzz target for a bounded time (10 s each in CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_SECONDS=${FUZZ_SECONDS:-10} exec scripts/fuzz.sh
