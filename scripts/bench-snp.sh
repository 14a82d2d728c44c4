#!/bin/sh
# Benchmarks `cvmforge measure snp` against sev-snp-measure 0.0.13 as whole processes (median wall time).
#   1. typical direct boot: 4 MiB firmware (OVMF.amdsev.fd), 12 MiB kernel, 5 MiB initrd, 4 vCPUs;
#   2. 64 MiB initrd: cvmforge against the hashing floor, from `openssl speed -evp sha256/sha384` throughput over
#      the same bytes (single thread);
#   3. `--vcpus 1-64` table against a single digest.
# CVMFORGE_BIN defaults to target/release/cvmforge (built if missing); SSM to build/snp-diff-venv/bin/sev-snp-measure
# (scripts/snp-differential.py makes it). RUNS sets the repetitions (default 15).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${CVMFORGE_BIN:-}" ]; then
    cargo build --release -p cvmforge --bin cvmforge
    CVMFORGE_BIN="$PWD/target/release/cvmforge"
fi
SSM="${SSM:-$PWD/build/snp-diff-venv/bin/sev-snp-measure}"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
xz -dc tests/fixtures/firmware/OVMF.amdsev.fd.xz > "$W/OVMF.amdsev.fd"
head -c $((12 << 20)) /dev/urandom > "$W/kernel"
head -c $((5 << 20)) /dev/urandom > "$W/initrd"
head -c $((64 << 20)) /dev/urandom > "$W/initrd64"
export CVMFORGE_BIN SSM W RUNS="${RUNS:-15}"
python3 - <<'PY'
import os, re, statistics, subprocess, time
W, runs = os.environ["W"], int(os.environ["RUNS"])
ours, ssm = os.environ["CVMFORGE_BIN"], os.environ["SSM"]

CPU = {}

def timed(cmd):
    """Median wall time; the median CPU time (user+sys, from wait4) is kept in CPU for the report."""
    wall, cpu = [], []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=W, stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        wall.append(time.perf_counter() - t)
        assert os.waitstatus_to_exitcode(status) == 0, cmd
        cpu.append(ru.ru_utime + ru.ru_stime)
    CPU[tuple(cmd)] = statistics.median(cpu)
    return statistics.median(wall)

def cpu(cmd):
    return CPU[tuple(cmd)] * 1e3

print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {runs} runs each, medians")

common = ["--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--ovmf", "OVMF.amdsev.fd",
          "--kernel", "kernel", "--initrd", "initrd", "--append", "console=ttyS0"]
a = subprocess.run([ours, "measure", "snp"] + common, cwd=W, capture_output=True, text=True, check=True).stdout
b = subprocess.run([ssm] + common, cwd=W, capture_output=True, text=True, check=True).stdout
assert a == b, (a, b)
c_ours, c_ref = [ours, "measure", "snp"] + common, [ssm] + common
t_ours, t_ref = timed(c_ours), timed(c_ref)
print(f"typical (4 MiB fw, 12 MiB kernel, 5 MiB initrd, 4 vCPUs): wall cvmforge {t_ours*1e3:.1f} ms, "
      f"sev-snp-measure {t_ref*1e3:.1f} ms, speed-up {t_ref/t_ours:.1f}x; CPU cvmforge {cpu(c_ours):.1f} ms, "
      f"sev-snp-measure {cpu(c_ref):.1f} ms, {cpu(c_ref)/cpu(c_ours):.1f}x")

def openssl_rate(alg):
    out = subprocess.run(["openssl", "speed", "-evp", alg, "-bytes", "16384", "-seconds", "2"],
                         capture_output=True, text=True, check=True).stdout
    kbps = float(re.findall(r"([\d.]+)k\s*$", out.strip().splitlines()[-1])[0])
    return kbps * 1000  # bytes per second

r256, r384 = openssl_rate("sha256"), openssl_rate("sha384")
big = common[:-4] + ["--initrd", "initrd64", "--append", "console=ttyS0"]
c_big = [ours, "measure", "snp"] + big
t_big = timed(c_big)
floor = (12 << 20) / r256 + (64 << 20) / r256 + (4 << 20) / r384
print(f"64 MiB initrd: cvmforge {t_big*1e3:.1f} ms; openssl floor {floor*1e3:.1f} ms "
      f"(sha256 {r256/1e6:.0f} MB/s over 76 MiB, sha384 {r384/1e6:.0f} MB/s over 4 MiB); wall ratio {t_big/floor:.2f}x, "
      f"CPU {cpu(c_big):.1f} ms, CPU ratio {cpu(c_big)/1e3/floor:.2f}x")
t_ref_big = timed([ssm] + big)
print(f"64 MiB initrd: sev-snp-measure {t_ref_big*1e3:.1f} ms")

table = ["--mode", "snp", "--vcpu-type", "EPYC-Milan", "--ovmf", "OVMF.amdsev.fd"]
c_one, c_64 = [ours, "measure", "snp", "--vcpus", "4"] + table, [ours, "measure", "snp", "--vcpus", "1-64"] + table
t_one, t_64 = timed(c_one), timed(c_64)
print(f"vCPU table: single digest {t_one*1e3:.1f} ms, 1-64 table {t_64*1e3:.1f} ms, wall ratio {t_64/t_one:.2f}x; "
      f"CPU {cpu(c_one):.1f} vs {cpu(c_64):.1f} ms, ratio {cpu(c_64)/cpu(c_one):.2f}x")
PY
