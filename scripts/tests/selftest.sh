#!/usr/bin/env bash
# Issue 16: the checks of this suite fail when what they check is missing. Each case runs a check against an input
# that must fail, or with a gate removed, and asserts that it does fail:
#   1-4. the stage runner (scripts/stages.sh) fails a stage that prints no count, passes nothing, fails a case, or
#        passes fewer cases than expected, and passes a good one;
#   5.   scripts/tdx-rtmr1-check.sh on a random 100 kB "kernel" (both tools fail: no digest to compare) exits non-zero;
#   6.   scripts/snp-differential.py with no random configurations fails (too few accepted per mode);
#   7.   a gated Rust test with its gate removed (CVMFORGE_TEST_KERNEL unset) fails under CVMFORGE_REQUIRE_ALL=1,
#        naming the gate, and is skipped (visibly) without it.
# Prints `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "selftest: ok:   $*"; }
bad() { failed=$((failed + 1)); echo "selftest: FAIL: $*"; }
work=$(mktemp -d "$root/build/selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the stage runner --------------------------------------------------------------------------------------------
runner() { # NAME EXPECTED COMMAND... -> prints the runner's verdict line
  (
    declare -A EXPECTED=([$1]=$2)
    stages_passed=0 stages_failed=0 cases_passed=0 cases_failed=0 failed_stages=()
    # shellcheck source=scripts/stages.sh
    . "$root/scripts/stages.sh"
    name=$1
    shift 2
    stage "$name" "$@" | grep "^=== stage $name: \(ok\|FAILED\)"
  )
}
for case in "silent:true:printed no" "nothing:echo 0 passed, 0 failed:fewer than" \
  "failing:echo 3 passed, 1 failed:case(s) failed" "short:echo 2 passed, 0 failed:fewer than"; do
  IFS=: read -r name cmd want <<< "$case"
  verdict=$(runner "$name" 3 bash -c "$cmd")
  if [[ "$verdict" == *FAILED*"$want"* ]]; then ok "the runner fails a stage that $name: ${verdict#=== }"
  else bad "the runner did not fail the $name stage: ${verdict:-no verdict}"; fi
done
verdict=$(runner good 3 bash -c 'echo "test result: ok. 2 passed; 0 failed"; echo "test result: ok. 1 passed; 0 failed"')
if [[ "$verdict" == *"ok, 3 passed, 0 failed"* ]]; then ok "the runner sums cargo's test results: ${verdict#=== }"
else bad "the runner did not pass a good stage: ${verdict:-no verdict}"; fi

# --- tdx-rtmr1-check.sh on a kernel neither tool can read ----------------------------------------------------------
head -c 100000 /dev/urandom > "$work/random-kernel"
if scripts/tdx-rtmr1-check.sh "$work/random-kernel" > "$work/rtmr1.log" 2>&1; then
  bad "tdx-rtmr1-check.sh passed on a random file: $(tail -n 1 "$work/rtmr1.log")"
else
  ok "tdx-rtmr1-check.sh fails on a random file: $(tail -n 1 "$work/rtmr1.log")"
fi

# --- the SNP differential on (almost) nothing ----------------------------------------------------------------------
# With no random configurations only the fixed edge cases run, and some modes then have fewer accepted
# configurations than the differential requires: it must fail rather than pass on refusals.
if [ -x "${CVMFORGE_SNP_REFERENCE:-}" ] && [ -x "${CVMFORGE_BIN:-}" ]; then
  if python3 scripts/snp-differential.py "$CVMFORGE_BIN" --count 0 > "$work/diff.log" 2>&1; then
    bad "snp-differential.py passed with no random configurations: $(tail -n 1 "$work/diff.log")"
  elif grep -q "configuration(s) of mode .* were accepted" "$work/diff.log"; then
    ok "snp-differential.py fails when too few configurations were measured: $(grep -m1 'were accepted' "$work/diff.log")"
  else
    bad "snp-differential.py failed for another reason:"; tail -n 5 "$work/diff.log" | sed 's/^/    /'
  fi
else
  bad "the SNP differential self-check needs CVMFORGE_SNP_REFERENCE and CVMFORGE_BIN (scripts/test.sh sets them)"
fi

# --- a gate removed under CVMFORGE_REQUIRE_ALL=1 -------------------------------------------------------------------
gated=(cargo test --locked -q -p cvmforge --test it -- --exact build::real_kernel_is_accepted_when_provided)
if env -u CVMFORGE_TEST_KERNEL CVMFORGE_REQUIRE_ALL=1 "${gated[@]}" > "$work/gate.log" 2>&1; then
  bad "with CVMFORGE_TEST_KERNEL unset and CVMFORGE_REQUIRE_ALL=1 the gated test passed"
elif grep -q "CVMFORGE_REQUIRE_ALL=1 and a gate is missing: set CVMFORGE_TEST_KERNEL" "$work/gate.log"; then
  ok "a missing gate fails the test under CVMFORGE_REQUIRE_ALL=1, naming CVMFORGE_TEST_KERNEL"
else
  bad "the gated test failed without naming its gate:"; tail -n 5 "$work/gate.log" | sed 's/^/    /'
fi
if env -u CVMFORGE_TEST_KERNEL CVMFORGE_REQUIRE_ALL=0 "${gated[@]}" --nocapture > "$work/skip.log" 2>&1 \
  && grep -q "^skipped: set CVMFORGE_TEST_KERNEL" "$work/skip.log"; then
  ok "without CVMFORGE_REQUIRE_ALL the same test is skipped and says so"
else
  bad "without CVMFORGE_REQUIRE_ALL the gated test did not skip visibly"; tail -n 5 "$work/skip.log" | sed 's/^/    /'
fi

echo "selftest: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
