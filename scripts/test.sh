#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, the Rust tests, and the end-to-end scripts (differential tests against
# the reference tools, reproducibility, a real QEMU boot, bounded fuzzing). It first runs scripts/setup.sh, so a fresh
# Debian machine with the Rust toolchain needs nothing else. CI (.ci/run) calls exactly this script.
#
# Each stage prints its result; the last line is `stages: N passed, N failed`, and the exit code is non-zero if any
# stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

passed=0
failed=0
failed_stages=()

stage() {
  local name=$1
  shift
  local start=$SECONDS
  echo "=== stage $name: $*"
  if "$@"; then
    passed=$((passed + 1))
    echo "=== stage $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failed_stages+=("$name")
    echo "=== stage $name: FAILED ($((SECONDS - start)) s)"
  fi
}

# Paths the tests take from the environment (set here so that a plain `cargo test` skips, saying why, instead).
export CVMFORGE_TEST_KERNEL_DIR=$root/build/kernel/root
export CVMFORGE_FIRMWARE_DIR=$root/build/firmware
export CVMFORGE_BIN=$root/target/release/cvmforge
export CVMFORGE_TEST_GUEST_INIT=$root/build/guest/guest-init
export CVMFORGE_TEST_SIGNATURE_ROOT=$root/build/signature-root
export SSM_VENV=$root/build/snp-diff-venv
export CVMFORGE_SNP_REFERENCE=$SSM_VENV/bin/sev-snp-measure
export CVMFORGE_SNP_CREATE_ID_BLOCK=$SSM_VENV/bin/snp-create-id-block

if ! scripts/setup.sh --test; then
  echo "stages: 0 passed, 1 failed"
  echo "setup failed; nothing else can run" >&2
  exit 1
fi
# The one vmlinuz of the fetched package (the tests that need a real bzImage take its path).
CVMFORGE_TEST_KERNEL=$(ls "$CVMFORGE_TEST_KERNEL_DIR"/boot/vmlinuz-*)
export CVMFORGE_TEST_KERNEL

stage fmt cargo fmt --all -- --check
stage clippy cargo clippy --workspace --all-targets --locked -- -D warnings
stage cargo-test cargo test --workspace --locked
for script in scripts/tests/*.sh; do
  [ -e "$script" ] || continue
  stage "$(basename "$script" .sh)" "$script"
done

if [ ${#failed_stages[@]} -gt 0 ]; then
  echo "failed stages: ${failed_stages[*]}"
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
