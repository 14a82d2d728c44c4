#!/usr/bin/env bash
# RTMR1's kernel event (PE Authenticode SHA-384) on the real Debian bzImage vs Python pefile, unmodified and with
# QEMU <= 10.1's header patch at several memory sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/tdx-rtmr1-check.sh "$CVMFORGE_TEST_KERNEL"
