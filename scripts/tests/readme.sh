#!/usr/bin/env bash
# Issue 11, item 16: every command that README.md shows runs, as written, and exits as documented.
#
# Reads the ```sh blocks of README.md. In the quick-start block, `scripts/demo.sh` runs (it sets up and builds the
# demo) and `scripts/test.sh` is exempt: it is the suite this stage is part of, which CI runs. Every line of the other
# blocks runs in one shell, in order, from the repository root; each must exit 0, or the status its trailing comment
# names (`... exit 1`). Prints one line per command and `readme: N passed, N failed`; fails on zero commands.
set -uo pipefail
cd "$(dirname "$0")/../.."
work=build/readme-test
rm -rf "$work"
mkdir -p "$work"

python3 - README.md "$work/commands.sh" <<'PY'
import re, shlex, sys
readme, out = sys.argv[1], sys.argv[2]
blocks = re.findall(r"^```sh\n(.*?)^```", open(readme).read(), re.S | re.M)
lines = ["set -u", "passed=0; failed=0",
         'check() { if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "readme: ok:   exit $2: $1";'
         ' else failed=$((failed + 1)); echo "readme: FAIL: exit $2, expected $3: $1"; fi; }']
count = 0
for block in blocks:
    for raw in block.splitlines():
        command = raw.strip()
        if not command or command.startswith("#"):
            continue
        if command.startswith("scripts/test.sh"):
            print(f"readme: exempt: {command} (the suite this stage belongs to; CI runs it)")
            continue
        code, comment = command, ""
        if " #" in command:
            code, comment = command.split(" #", 1)
        expected = re.search(r"exit (\d+)\s*$", comment)
        expected = expected.group(1) if expected else "0"
        count += 1
        lines.append(f"{code.strip()} > {out}.{count}.log 2>&1")
        lines.append(f"check {shlex.quote(code.strip())} $? {expected}")
lines.append('echo "readme: $passed passed, $failed failed"')
lines.append(f'[ "$failed" -eq 0 ] && [ "$passed" -eq {count} ] && [ "$passed" -gt 0 ]')
open(out, "w").write("\n".join(lines) + "\n")
print(f"readme: {count} commands from {len(blocks)} blocks")
PY
bash "$work/commands.sh"
status=$?
if [ "$status" -ne 0 ]; then
  for log in "$work"/commands.sh.*.log; do echo "--- $log"; tail -n 5 "$log"; done
fi
exit "$status"
