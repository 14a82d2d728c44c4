#!/usr/bin/env bash
# Builds the programs that go inside a cvmforge image, statically linked and
# reproducibly, and copies them to OUT_DIR:
#   OUT_DIR/guest-init        (the image's /init)
#   OUT_DIR/summarize-server  (the demo payload)
#   OUT_DIR/probe             (a hostile payload for scripts/tests/probe.sh; never in a release image)
#   OUT_DIR/make-weights      (a host tool: the demo model's term weights from examples/summarize-server/corpus)
#
# usage: scripts/build-guest.sh OUT_DIR
#
# Only the gnu target is installed, so static linking uses glibc's static libs
# (+crt-static). The explicit --target keeps RUSTFLAGS off build scripts and
# proc-macros (which must stay dynamic host programs). --remap-path-prefix drops
# the checkout path and CARGO_HOME (dependency sources) from panic messages, so
# the bytes do not depend on where the repository or the cargo cache live.
# Set CARGO_TARGET_DIR to build elsewhere.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=$1
root=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-unknown-linux-gnu
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd)

cd "$root"
RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$root=/build --remap-path-prefix=$cargo_home=/cargo" \
    cargo build --release --locked --target "$target" -p guest-init -p summarize-server -p cvmforge-probe

target_dir=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$out"
for bin in guest-init summarize-server probe make-weights; do
    src="$target_dir/$target/release/$bin"
    # rustc's +crt-static on gnu gives a static PIE: no PT_INTERP, no NEEDED libraries.
    if readelf -l "$src" | grep -q INTERP || readelf -d "$src" | grep -q NEEDED; then
        echo "error: $src is not statically linked:" >&2
        file "$src" >&2
        exit 1
    fi
    install -m 0755 "$src" "$out/$bin"
done
(cd "$out" && sha256sum guest-init summarize-server probe make-weights)
