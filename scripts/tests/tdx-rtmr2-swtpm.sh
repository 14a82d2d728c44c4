#!/usr/bin/env bash
# The ground-truth experiment for RTMR2: boots the generic OVMF of the same edk2 with swtpm and direct kernel boot, and
# checks cvmforge's LoadOptions and initrd digests against the guest's TCG event log (ASCII, non-ASCII, no initrd).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/tdx-rtmr2-experiment.sh "$CVMFORGE_TEST_KERNEL"
