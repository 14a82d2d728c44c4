#!/usr/bin/env bash
# Benchmark: the transparency log at scale (issue 12).
#   1. append 100,000 signed DSSE envelopes of about 1 KiB, in batches of 1,000 (each checked against the log's signer,
#      as `cvmforge log append` does);
#   2. append 1,000,000 hashes-only entries (32 bytes each), in batches of 1,000;
#   3. an inclusion proof for a random entry of the 1,000,000-entry log: time and tiles read;
#   4. `cvmforge log audit` of the 100,000-entry log (release build, under /usr/bin/time), against the machine's
#      SHA-256 throughput (`openssl speed -evp sha256`, 1 KiB blocks, one process).
# Entries per second, bytes on disk and the resident set after every tenth of each append are printed.
#
# Usage: builder/benches/log.sh       (about 10 minutes on 2 cores; logs under build/bench-log, BENCH_DIR moves them)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_DIR:-$ROOT/build/bench-log}
cd "$ROOT"
for tool in openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "log bench: FAIL: $tool is not installed" >&2; exit 1; }
done
bench_bin=$(cargo bench --locked -p cvmforge --bench log --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)
[ -x "$bench_bin" ] || { echo "log bench: FAIL: could not build benches/log.rs" >&2; exit 1; }
cargo build -q --release --locked -p cvmforge
mkdir -p "$WORK"
echo "log bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== 1. 100,000 signed envelopes of ~1 KiB, batches of 1,000"
"$bench_bin" append "$WORK/signed" 100000 1000 1024 signed
echo "== 2. 1,000,000 hashes-only entries (32 bytes), batches of 1,000"
"$bench_bin" append "$WORK/hashes" 1000000 1000 32
echo "== 3. inclusion proofs in the 1,000,000-entry log"
for index in 0 123457 654321 999999 $((RANDOM * 30 % 1000000)); do
  "$bench_bin" prove "$WORK/hashes" "$index"
done
echo "== 4. audit of the 100,000-entry log"
key=$WORK/log.pub
# The bench log's key is fixed (seed 0x01 x 32): its public half, as SPKI PEM, from the PKCS#8 DER of that seed.
python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex("302e020100300506032b657004220420" + "01" * 32))' \
  | openssl pkey -inform DER -pubout > "$key"
/usr/bin/time -v target/release/cvmforge --json log audit "$WORK/signed" --log-key "$key" > "$WORK/audit.json" 2> "$WORK/audit.time"
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$WORK/audit.time")
rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$WORK/audit.time")
entries=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["entries_verified"], d["entry_bytes"], d["tiles_checked"])' "$WORK/audit.json")
read -r n bytes tiles <<< "$entries"
sha=$(openssl speed -evp sha256 -bytes 1024 -seconds 3 2>/dev/null | awk '/^sha256/ {v = $NF; sub(/k$/, "", v); print v * 1000}')
python3 - "$n" "$bytes" "$tiles" "$wall" "$rss" "$sha" <<'PY'
import sys
n, nbytes, tiles, wall, rss, sha = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], float(sys.argv[6])
print(f"audit: {n} entries ({nbytes / 2**20:.1f} MiB), {tiles} tiles, {wall:.2f} s = {n / wall:.0f} entries/s, "
      f"{nbytes / wall / 1e6:.1f} MB/s of entries; peak RSS {rss} MiB")
# Every entry is hashed as a leaf and its envelope's PAE is hashed again by Ed25519 (SHA-512): at least 2x its bytes.
floor = sha / 1024
print(f"sha256 (openssl, 1 KiB blocks, one process): {sha / 1e6:.1f} MB/s = {floor:.0f} 1-KiB blocks/s; "
      f"the audit runs at {n / floor:.4f}x of the hashing floor per entry (each entry also has an Ed25519 check)")
PY
