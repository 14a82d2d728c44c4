#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, the Rust tests, and the end-to-end scripts (differential tests against
# the reference tools, reproducibility, real QEMU boots, bounded fuzzing). It first runs scripts/setup.sh, so a fresh
# Debian machine with the Rust toolchain needs nothing else. CI (.ci/run) calls exactly this script.
#
# Every stage prints how many cases it ran (`N passed, N failed`; for `cargo test`, its `test result:` lines). A stage
# fails if its command fails, if it reports no count, if nothing passed, or if fewer cases passed than it is known to
# have (EXPECTED below): a stage that can pass without running anything is a defect. CVMFORGE_REQUIRE_ALL=1 makes
# every gated test fail, naming its gate, when the gate (a tool, a file, an environment variable) is missing.
# The last line counts cases: `cases: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

stages_passed=0
stages_failed=0
cases_passed=0
cases_failed=0
failed_stages=()

# The fewest cases each stage must pass (what a full run has today; raise them as tests are added).
declare -A EXPECTED=(
  [fmt]=1 [clippy]=1 [cargo-test]=771 [boot]=25 [probe]=5 [fuzz]=15 [idblock-reference]=3
  [reprotest]=7 [snp-differential]=256 [tdx-rtmr1-pefile]=9 [tdx-rtmr2-swtpm]=11 [selftest]=9 [readme]=14 [publish-interop]=7
  [sealed-kernel]=13
)

# shellcheck source=scripts/stages.sh
. "$root/scripts/stages.sh"

# Paths the tests take from the environment (set here so that a plain `cargo test` skips, saying why, instead).
export CVMFORGE_TEST_KERNEL_DIR=$root/build/kernel/root
export CVMFORGE_FIRMWARE_DIR=$root/build/firmware
export CVMFORGE_BIN=$root/target/release/cvmforge
export CVMFORGE_TEST_GUEST_INIT=$root/build/guest/guest-init
export CVMFORGE_TEST_SIGNATURE_ROOT=$root/build/signature-root
export SSM_VENV=$root/build/snp-diff-venv
export CVMFORGE_SNP_REFERENCE=$SSM_VENV/bin/sev-snp-measure
export CVMFORGE_SNP_CREATE_ID_BLOCK=$SSM_VENV/bin/snp-create-id-block
# Every gated test must run here: a missing gate is a failure that names it, not a silent skip.
export CVMFORGE_REQUIRE_ALL=${CVMFORGE_REQUIRE_ALL:-1}

if ! scripts/setup.sh --test; then
  echo "setup failed; nothing else can run" >&2
  echo "cases: 0 passed, 1 failed"
  exit 1
fi
# The one vmlinuz of the fetched package (the tests that need a real bzImage take its path).
CVMFORGE_TEST_KERNEL=$(ls "$CVMFORGE_TEST_KERNEL_DIR"/boot/vmlinuz-*)
export CVMFORGE_TEST_KERNEL
# Which SEV-SNP page-digest path this CPU exercises (measurements/src/snp/page_digests/sha384_x8.rs).
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then
  echo "cpu: AVX-512 F/BW present: the 8-lane SHA-384 page digests are tested against sha2"
else
  echo "cpu: no AVX-512 F/BW: only the sha2 page-digest path is tested on this machine"
fi

stage fmt one_check cargo fmt --all -- --check
stage clippy one_check cargo clippy --workspace --all-targets --locked -- -D warnings
stage cargo-test cargo test --workspace --locked --no-fail-fast
for script in scripts/tests/*.sh; do
  [ -e "$script" ] || continue
  stage "$(basename "$script" .sh)" "$script"
done

if [ ${#failed_stages[@]} -gt 0 ]; then
  echo "failed stages: ${failed_stages[*]}"
fi
echo "stages: $stages_passed passed, $stages_failed failed"
echo "cases: $cases_passed passed, $cases_failed failed"
[ "$stages_failed" -eq 0 ] && [ "$stages_passed" -gt 0 ]
