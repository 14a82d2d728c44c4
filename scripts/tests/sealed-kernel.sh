#!/usr/bin/env bash
# Issue 15: the sealed guest kernel, built reproducibly from kernel-config/, boots the sealed demo with zero waivers.
#
#   1. scripts/kernel-repro.sh builds the kernel twice (different directories, different times): bzImage, config and
#      BUILDINFO are byte-identical (3 cases);
#   2. `cvmforge build recipes/demo-sealed.yaml --strict` passes, and the manifest's sealing report says `sealed`
#      with no violation and no waiver;
#   3. `cvmforge inspect` of the bundle says `sealing policy: sealed`;
#   4. the manifest holds the SEV-SNP launch digests and the TDX MRTD/RTMRs of the sealed image;
#   5. booted under QEMU/TCG (`cvmforge run`), the payload answers /healthz and makes a summary over TLS with the
#      attested key pinned;
#   6. guest-init's boot self-check on the console: /dev/mem absent, kexec_load and init_module refused (ENOSYS or
#      EPERM), lockdown `[confidentiality]`, no debugfs (5 cases);
#   7. the ACPI power button stops the payload and the VM powers off (`cvmforge run` exits 0).
# Prints `N passed, N failed`; exits non-zero on a failure. Needs scripts/setup.sh --test (the kernel build tools,
# QEMU, build/demo). CVMFORGE_BIN names the cvmforge binary (default target/release/cvmforge).
set -uo pipefail
cd "$(dirname "$0")/../.."

bin=${CVMFORGE_BIN:-target/release/cvmforge}
work=build/sealed-test
console=$work/console.log
monitor=$work/monitor.sock
passed=0
failed=0
run_pid=

pass() { passed=$((passed + 1)); echo "sealed-kernel: ok:   $*"; }
fail() { failed=$((failed + 1)); echo "sealed-kernel: FAIL: $*"; }
finish() {
  echo "sealed-kernel: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}
cleanup() {
  [ -n "$run_pid" ] || return 0
  if kill -0 "$run_pid" 2>/dev/null; then
    local children
    children=$(pgrep -P "$run_pid" || true)
    kill -TERM "$run_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$run_pid" 2>/dev/null
    for pid in $children; do kill -KILL "$pid" 2>/dev/null; done
  fi
  run_pid=
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

[ -x "$bin" ] || { fail "$bin is not built (run scripts/setup.sh)"; finish; }
rm -rf "$work"
mkdir -p "$work"

# --- 1. two kernel builds --------------------------------------------------------------------------------------------
start=$SECONDS
if scripts/kernel-repro.sh build/kernel-repro > "$work/kernel-repro.log" 2>&1; then :; fi
for f in bzImage config BUILDINFO; do
  line=$(grep "^kernel-repro: $f " "$work/kernel-repro.log")
  if [[ "$line" == "kernel-repro: $f identical: "* ]]; then
    pass "$f identical in two builds ($((SECONDS - start)) s for both): ${line##* }"
  else
    fail "$f: ${line:-no result}; log tail:"
    tail -n 30 "$work/kernel-repro.log" | sed 's/^/    /'
  fi
done
[ -f build/kernel-sealed/bzImage ] || { fail "no kernel was built"; finish; }

# --- 2.-4. the strict build ------------------------------------------------------------------------------------------
if "$bin" build recipes/demo-sealed.yaml --strict -o "$work/out" --force > "$work/build.log" 2>&1; then
  verdict=$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
s = m["sealing"]
print(s["verdict"], len(s["violations"]), len(s["waivers_applied"]), len(m["measurements"]["snp"]), len(m["measurements"]["tdx"]))
' "$work/out/manifest.json")
  read -r v violations waivers snp tdx <<< "$verdict"
  if [ "$v $violations $waivers" = "sealed 0 0" ]; then
    pass "cvmforge build --strict: sealing verdict sealed, 0 violations, 0 waivers"
  else
    fail "sealing report: verdict $v, $violations violations, $waivers waivers"
  fi
else
  fail "cvmforge build recipes/demo-sealed.yaml --strict failed:"
  sed 's/^/    /' "$work/build.log"
  finish
fi
bundle=$(ls "$work"/out/*.cvm.tar)
if "$bin" inspect "$bundle" > "$work/inspect.log" 2>&1 && grep -qx 'sealing policy: sealed' "$work/inspect.log"; then
  pass "cvmforge inspect: sealing policy: sealed"
else
  fail "cvmforge inspect does not say \`sealing policy: sealed\`:"
  sed 's/^/    /' "$work/inspect.log"
fi
if python3 - "$work/out/manifest.json" <<'EOF'
import json, re, sys
m = json.load(open(sys.argv[1]))["measurements"]
snp = [e for e in m["snp"] if re.fullmatch(r"[0-9a-f]{96}", e.get("digest", ""))]
tdx = [e for e in m["tdx"] if re.fullmatch(r"[0-9a-f]{96}", e.get("mrtd", "")) and re.fullmatch(r"[0-9a-f]{96}", e.get("rtmr1", ""))]
if not snp or not tdx:
    sys.exit(f"snp entries with a digest: {len(snp)}, tdx entries with MRTD and RTMR1: {len(tdx)}")
print(f"{len(snp)} SNP launch digests, {len(tdx)} TDX shape(s) with MRTD and RTMRs")
EOF
then
  pass "the manifest holds the sealed image's SNP and TDX measurements"
else
  fail "the manifest lacks SNP or TDX measurements of the sealed image"
fi

# --- 5. boot and serve -----------------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
tls_port=$(free_port)
boot_start=$SECONDS
"$bin" run "$work/out" --accel tcg --forward "$port:8080" --forward "$tls_port:8443" --memory 1G --timeout 180s \
  --monitor "$monitor" > "$work/run.out" 2> "$console" &
run_pid=$!
healthy=
deadline=$((SECONDS + 150))
while [ $SECONDS -lt $deadline ] && kill -0 "$run_pid" 2>/dev/null; do
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=3)' "$port" 2>/dev/null; then
    healthy=1
    break
  fi
  sleep 1
done
text='Confidential virtual machines encrypt guest memory with keys the host never sees. The cafeteria served soup on Tuesday. Attestation reports let a client check the launch measurement before it sends any data.'
body=$(python3 -c 'import json, sys; print(json.dumps({"text": sys.argv[1], "max_sentences": 1}))' "$text")
client=${ATTEST_CLIENT:-target/x86_64-unknown-linux-gnu/release/attest-client}
if [ -n "$healthy" ] && summary=$("$client" "127.0.0.1:$port" "127.0.0.1:$tls_port" "$body" 2> "$work/client.err") \
  && [[ "$summary" == *'"summary":'* ]]; then
  pass "the sealed image serves: /healthz after $((SECONDS - boot_start)) s, a summary over TLS: ${summary:0:120}"
else
  fail "the sealed image did not serve (healthy: ${healthy:-no}; client: $(head -c 300 "$work/client.err")); console tail:"
  tail -n 20 "$console" | sed 's/^/    /'
fi

# --- 6. the self-check -----------------------------------------------------------------------------------------------
for expected in \
  'selfcheck: /dev/mem: absent: ok' \
  'selfcheck: kexec_load: fails with (Function not implemented|Operation not permitted): ok' \
  'selfcheck: init_module: fails with (Function not implemented|Operation not permitted): ok' \
  'selfcheck: lockdown: .*\[confidentiality\].*: ok' \
  'selfcheck: debugfs: not in this kernel: ok'; do
  line=$(grep -aE "^cvmforge-init: $expected\$" "$console" | head -1)
  if [ -n "$line" ]; then
    pass "console: ${line#cvmforge-init: }"
  else
    fail "console lacks a line matching \`$expected\`; its self-check lines: $(grep -a 'selfcheck:' "$console" | tr '\n' '|')"
  fi
done

# --- 7. the power button ---------------------------------------------------------------------------------------------
python3 - "$monitor" <<'EOF' || fail "could not press the power button"
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.recv(4096)
s.sendall(b"system_powerdown\n")
time.sleep(0.5)
s.close()
EOF
status=
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
  if ! kill -0 "$run_pid" 2>/dev/null; then wait "$run_pid"; status=$?; run_pid=; break; fi
  sleep 0.5
done
if [ "$status" = 0 ] && grep -aq '^cvmforge-init: payload exited with signal SIGTERM; powering off' "$console"; then
  pass "power button: the payload stopped (SIGTERM) and the VM powered off ($(cat "$work/run.out"))"
else
  fail "power button: cvmforge run status ${status:-still running}; console tail:"
  tail -n 10 "$console" | sed 's/^/    /'
fi
cleanup
finish
