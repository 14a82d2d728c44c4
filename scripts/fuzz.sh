#!/bin/sh
# Runs every cargo-fuzz target of fuzz/ for a bounded time each (default 20 s; FUZZ_SECONDS overrides), and fails
# unless every target listed in fuzz/Cargo.toml ran and executed inputs: a fuzz stage that fuzzes nothing is a defect.
#
# Stable toolchain: `--sanitizer none` needs no nightly-only flag (no RUSTC_BOOTSTRAP): libFuzzer's coverage
# instrumentation (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-*`) is stable, and a Rust panic or
# abort is the crash libFuzzer reports. What is given up is AddressSanitizer, which only matters for `unsafe` code.
# cargo-fuzz comes from scripts/setup.sh --test (build/tools/bin) or PATH.
# Seeds: fuzz/seeds/<target>/, read as a second corpus; new inputs go to the ignored fuzz/corpus/. A crash makes the
# script fail and leaves the input under fuzz/artifacts/. Prints `fuzz: N passed, N failed` (one case per target).
set -u
cd "$(dirname "$0")/../fuzz"
PATH="$PWD/../build/tools/bin:$PATH"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
passed=0
failed=0
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: FAIL: cargo-fuzz is not installed (scripts/setup.sh --test installs it into build/tools)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi
expected=$(grep -c '^\[\[bin\]\]' Cargo.toml)
targets=$(cargo fuzz list)
listed=$(echo "$targets" | grep -c .)
if [ "$listed" -ne "$expected" ] || [ "$expected" -eq 0 ]; then
    echo "fuzz: FAIL: cargo fuzz list names $listed target(s), fuzz/Cargo.toml declares $expected"
    failed=$((failed + 1))
fi
for target in $targets; do
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "corpus/$target"
    seeds=""
    [ -d "seeds/$target" ] && seeds="seeds/$target"
    log="corpus/$target.log"
    cargo fuzz run --sanitizer none -O "$target" "corpus/$target" $seeds -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=131072 -rss_limit_mb=2048 > "$log" 2>&1
    status=$?
    runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ] && [ -n "$runs" ] && [ "$runs" -gt 0 ]; then
        passed=$((passed + 1))
        echo "fuzz: ok:   $target: $runs inputs in ${SECONDS_PER_TARGET} s, no crash"
    else
        failed=$((failed + 1))
        echo "fuzz: FAIL: $target: exit $status, ${runs:-no} runs; log tail:"
        tail -n 20 "$log" | sed 's/^/    /'
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -eq "$expected" ]
