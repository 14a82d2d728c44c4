#!/bin/sh
# Runs every cargo-fuzz target of fuzz/ for a bounded time each (default 20 s; FUZZ_SECONDS overrides).
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain, RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the
# nightly-only sanitizer flags. Seeds: fuzz/seeds/<target>/ (firmware_snp: a small image with a GUID table and
# ASEV metadata, the same as measurements/tests/data/svsm-synthetic.bin). A crash makes the script fail and leaves the input under fuzz/artifacts/.
set -eu
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
for target in $(cargo fuzz list); do
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "corpus/$target"
    # Committed seeds (fuzz/seeds/<target>/) are read as a second corpus; new inputs go to the ignored corpus/.
    seeds=""
    [ -d "seeds/$target" ] && seeds="seeds/$target"
    cargo fuzz run "$target" "corpus/$target" $seeds -- -max_total_time="$SECONDS_PER_TARGET" -max_len=131072 -rss_limit_mb=2048
done
