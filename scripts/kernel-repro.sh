#!/usr/bin/env bash
# Shows that the sealed guest kernel builds reproducibly: two builds by scripts/build-kernel.sh, in two different
# directories (so every absolute path differs) and at two different times, must give byte-identical bzImage, config
# and BUILDINFO. Prints the sha256 values; exits 1 on any difference.
#
#   scripts/kernel-repro.sh [DIR]        (default DIR: build/kernel-repro; about 2 x 5 minutes on 2 cores)
#
# The first build is the one recipes/demo-sealed.yaml uses (build/kernel-sealed); the second goes to DIR/b, built in
# DIR/second/source/tree.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/kernel-repro}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
scripts/build-kernel.sh build/kernel-sealed
mkdir -p "$dir/a"
cp build/kernel-sealed/bzImage build/kernel-sealed/config build/kernel-sealed/BUILDINFO build/kernel-sealed/build.log "$dir/a/"
# A different source path, a later start time.
scripts/build-kernel.sh --work "$dir/second/source/tree" "$dir/b"
status=0
for f in bzImage config BUILDINFO; do
  a=$(sha256sum "$dir/a/$f" | cut -d' ' -f1)
  b=$(sha256sum "$dir/b/$f" | cut -d' ' -f1)
  if [ "$a" = "$b" ]; then
    echo "kernel-repro: $f identical: $a"
  else
    echo "kernel-repro: $f DIFFERS: $a vs $b" >&2
    status=1
  fi
done
grep -h elapsed_seconds "$dir/a/build.log" "$dir/b/build.log" | sed 's/^/kernel-repro: build time: /'
exit $status
