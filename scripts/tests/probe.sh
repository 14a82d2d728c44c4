#!/usr/bin/env bash
# Issue 17: the sealed guest holds against its own payload. Boots the demo image with examples/probe in place of
# the server (same recipe otherwise: same guest-init, kernel, modules, uid 65534) under QEMU/TCG, and reads what the
# probe reports on the console. Fails if any attack succeeded, if fewer attacks reported than expected, if a forged
# init line reached the console without init's `payload: ` prefix, or if the probe never ran.
# Prints `N passed, N failed`.
#
# Needs: scripts/setup.sh run first (build/demo, build/guest/probe). CVMFORGE_BIN names the cvmforge binary.
set -uo pipefail
cd "$(dirname "$0")/../.."

bin=${CVMFORGE_BIN:-target/release/cvmforge}
work=build/probe-test
# The attacks examples/probe/src/main.rs makes: 12 system-call attacks and 6 status fields.
expected_attacks=18
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "probe-stage: ok:   $*"; }
fail() { failed=$((failed + 1)); echo "probe-stage: FAIL: $*"; }
finish() {
  echo "probe-stage: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit
}

[ -x "$bin" ] || { fail "$bin is not built (run scripts/setup.sh)"; finish; }
[ -x build/guest/probe ] || { fail "build/guest/probe is not built (scripts/build-guest.sh build/guest)"; finish; }
rm -rf "$work"
mkdir -p "$work"

# The demo recipe with the probe as its payload, placed two levels below the repository.
sed -e 's|^root: \.\.  |root: ../..|' \
    -e 's|\.\./build/|../../build/|g' \
    -e 's|command: \["/usr/bin/summarize-server".*\]|command: ["/usr/bin/probe"]|' \
    -e 's|- {src: \.\./\.\./build/demo/summarize-server, dst: /usr/bin/summarize-server}|- {src: ../../build/guest/probe, dst: /usr/bin/probe}|' \
    recipes/demo.yaml > "$work/probe.yaml"
if ! grep -q 'command: \["/usr/bin/probe"\]' "$work/probe.yaml" || ! grep -q 'dst: /usr/bin/probe' "$work/probe.yaml"; then
  fail "could not derive the probe recipe from recipes/demo.yaml (did its command or files line change?)"
  finish
fi
if "$bin" build "$work/probe.yaml" -o "$work/out" > "$work/build.log" 2>&1; then
  pass "built the probe image"
else
  fail "cvmforge build of the probe image failed:"; sed 's/^/    /' "$work/build.log"; finish
fi

console=$work/console.log
"$bin" run "$work/out" --accel tcg --memory 1G --timeout 120s > "$work/run.out" 2> "$console"
status=$?
if [ "$status" = 0 ]; then
  pass "the probe ran and the VM powered off ($(cat "$work/run.out"))"
else
  fail "cvmforge run exited $status; console tail:"; tail -n 15 "$console" | sed 's/^/    /'
fi

# Each attack's line, relayed by init behind `payload: `.
ok=$(grep -c '^payload: probe: ok: ' "$console")
bad=$(grep '^payload: probe: FAIL: ' "$console")
grep -E '^payload: probe: (ok|FAIL): ' "$console" | sed 's/^/    /'
if [ -n "$bad" ]; then
  fail "attacks that succeeded:"; echo "$bad" | sed 's/^/    /'
fi
if [ "$ok" -eq "$expected_attacks" ] && [ -z "$bad" ]; then
  pass "all $expected_attacks attacks were blocked"
else
  fail "$ok of $expected_attacks attacks reported blocked"
fi
summary=$(grep '^payload: probe: [0-9]* passed, [0-9]* failed' "$console")
if [ "$summary" = "payload: probe: $expected_attacks passed, 0 failed" ]; then
  pass "probe summary: ${summary#payload: }"
else
  fail "probe summary is \"${summary:-missing}\", expected \"probe: $expected_attacks passed, 0 failed\""
fi
# Forged init lines must appear only behind the relay's prefix, never as a console line of their own.
if grep -q 'FORGED-BY-PROBE' "$console" && ! grep -q '^cvmforge-init: FORGED-BY-PROBE' "$console" \
  && ! grep -qP '\rcvmforge-init: FORGED' "$console"; then
  pass "forged init lines appear only as relayed payload output: $(grep -c 'FORGED-BY-PROBE' "$console") line(s)"
else
  fail "a forged init line reached the console unprefixed (or the probe printed none)"
fi
finish
