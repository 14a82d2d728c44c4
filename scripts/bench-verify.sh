#!/bin/sh
# Benchmarks `cvmforge verify BUNDLE` against a plain `cvmforge build` of the same recipe (median wall time of whole
# processes, release binary). Target: verify <= 1.2x build (verify = hash the inputs, rebuild, compare, and nothing else).
#
# Recipe: recipes/demo.yaml when it and build/demo/ exist (scripts/setup.sh makes them); otherwise a synthetic recipe
# in a temporary tree: a fake 8 MiB bzImage, a static-pie ELF (/sbin/ldconfig) as init and payload, a 50 MiB payload
# file (half random, half text) and the SNP firmware fixture.
# CVMFORGE_BIN defaults to target/release/cvmforge (built if missing); RUNS sets the repetitions (default 5).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${CVMFORGE_BIN:-}" ]; then
    cargo build --release -p cvmforge --bin cvmforge
    CVMFORGE_BIN="$PWD/target/release/cvmforge"
fi
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
if [ -f recipes/demo.yaml ] && [ -d build/demo ]; then
    RECIPE="$PWD/recipes/demo.yaml"
    KIND="demo recipe (recipes/demo.yaml)"
else
    mkdir -p "$W/tree/inputs"
    xz -dc tests/fixtures/firmware/OVMF.amdsev.fd.xz > "$W/tree/inputs/OVMF.amdsev.fd"
    cp /sbin/ldconfig "$W/tree/inputs/init"
    cp /sbin/ldconfig "$W/tree/inputs/server"
    python3 - "$W/tree/inputs" <<'PY'
import os, random, sys
d = sys.argv[1]
k = bytearray(0x400) + os.urandom(8 << 20)
k[0x1fe:0x200] = b"\x55\xaa"
k[0x202:0x206] = b"HdrS"
k[0x206:0x208] = (0x020F).to_bytes(2, "little")
open(os.path.join(d, "vmlinuz"), "wb").write(k)
rng = random.Random(1)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
text = bytearray()
while len(text) < (25 << 20):
    text += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
open(os.path.join(d, "model.bin"), "wb").write(os.urandom(25 << 20) + bytes(text[: 25 << 20]))
PY
    cat > "$W/tree/bench.yaml" <<'YAML'
name: bench
version: 0.1.0
source_date_epoch: 1767225600
kernel: {path: inputs/vmlinuz, cmdline: "console=ttyS0 panic=-1"}
initrd:
  init: inputs/init
  command: ["/usr/bin/server"]
  user: 65534
  files:
    - {src: inputs/server, dst: /usr/bin/server}
    - {src: inputs/model.bin, dst: /srv/model.bin}
firmware: {snp: inputs/OVMF.amdsev.fd}
YAML
    RECIPE="$W/tree/bench.yaml"
    KIND="synthetic recipe (50 MiB payload, 8 MiB kernel, 4 MiB firmware)"
fi
export CVMFORGE_BIN RECIPE W KIND RUNS="${RUNS:-5}"
python3 - <<'PY'
import glob, os, shutil, statistics, subprocess, time
bin_, recipe, w, runs = os.environ["CVMFORGE_BIN"], os.environ["RECIPE"], os.environ["W"], int(os.environ["RUNS"])

def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start

out = os.path.join(w, "out")
builds, verifies = [], []
subprocess.run([bin_, "build", recipe, "-o", out], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
bundle = os.path.join(w, "published.cvm.tar")
shutil.copy(glob.glob(os.path.join(out, "*.cvm.tar"))[0], bundle)
# Interleaved, so that load from other processes affects both alike.
for _ in range(runs):
    shutil.rmtree(out, ignore_errors=True)
    builds.append(timed([bin_, "build", recipe, "-o", out]))
    verifies.append(timed([bin_, "verify", bundle, "--recipe", recipe]))
b, v = statistics.median(builds), statistics.median(verifies)
print(f"{os.environ['KIND']}, {os.cpu_count()} CPUs, median of {runs}:")
print(f"  cvmforge build : {b:.2f} s")
print(f"  cvmforge verify: {v:.2f} s  ({v / b:.2f}x build; target <= 1.20x)")
PY
