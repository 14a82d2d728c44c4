#!/bin/sh
# initrd packing benchmark: GNU cpio | gzip -6, GNU cpio | pigz -6, cvmforge gzip -6 and cvmforge zstd, on the same
# deterministic payload (half random, half text-like) under build/bench-initrd. See builder/benches/README.md.
#
#   scripts/bench-initrd.sh                # 1 GiB payload
#   SIZE_MIB=256 scripts/bench-initrd.sh   # quick run
#
# Needs cpio, gzip, pigz, zstd and /usr/bin/time (Debian package `time`).
set -eu
cd "$(dirname "$0")/.."
for tool in cpio gzip pigz zstd /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: \`$tool\` is required" >&2; exit 1; }
done
exec cargo bench -p cvmforge --bench initrd
