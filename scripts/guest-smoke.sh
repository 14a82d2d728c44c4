#!/usr/bin/env bash
# Boot smoke test of guest-init + summarize-server under QEMU (TCG, no KVM needed).
#
# usage: scripts/guest-smoke.sh KERNEL [MODULES_DIR]
#   KERNEL       a bzImage, e.g. .../boot/vmlinuz-6.1.0-56-amd64
#   MODULES_DIR  its modules, default: KERNEL/../../lib/modules/<version from the file name>
#
# Builds both programs (scripts/build-guest.sh), packs a hand-made initrd
# (/init, the payload, /etc/cvmforge/init.json, /dev/console and the virtio-pci +
# virtio-net module chain, dependencies read from each module's .modinfo), boots
# it with a user-mode virtio NIC, then checks:
#   0. a kernel command line with `cvm.net=` lacking `gw=` makes init power off;
#   1. the payload answers GET /healthz and POST /v1/summarize through the NIC;
#   2. Ctrl-Alt-Del (QEMU `sendkey`) reaches PID 1 as SIGINT, is forwarded, the
#      payload exits and init powers the VM off (QEMU exits by itself);
#   3. the console shows no request content.
# The lead will replace the hand-made initrd with `cvmforge build`.
# Env: SMOKE_PORT (host port, default 18080), SMOKE_TIMEOUT (seconds, default 180).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 KERNEL [MODULES_DIR]" >&2
    exit 2
fi
kernel=$(realpath "$1")
kver=$(basename "$kernel"); kver=${kver#vmlinuz-}
moddir=${2:-$(dirname "$kernel")/../lib/modules/$kver}
moddir=$(realpath "$moddir")
port=${SMOKE_PORT:-18080}
timeout_s=${SMOKE_TIMEOUT:-180}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
qemu_pid=
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid"; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- console ---" >&2; cat "$work/console.log" >&2 || true; exit 1; }

"$root/scripts/build-guest.sh" "$work/bin" >/dev/null

# --- module chain, dependencies first (from .modinfo `depends=`, like modprobe) ---
declare -A seen=()
order=()
find_module() { find "$moddir/kernel" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" | head -n1; }
add_module() {
    local name=$1 file deps dep
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    file=$(find_module "$name")
    if [ -z "$file" ]; then
        # Built into the kernel: nothing to load.
        grep -q "/$name.ko\$" "$moddir/modules.builtin" 2>/dev/null && return 0
        fail "module $name not found under $moddir"
    fi
    deps=$(readelf -p .modinfo "$file" | sed -n 's/.*depends=//p' | tr ',' ' ')
    for dep in $deps; do add_module "$dep"; done
    order+=("${file#"$moddir"/}")
}
add_module virtio_pci
add_module virtio_net

# --- initrd tree ---
r=$work/root
mkdir -p "$r/etc/cvmforge" "$r/usr/bin" "$r/dev" "$r/proc" "$r/sys" "$r/tmp" "$r/run"
install -m 0755 "$work/bin/guest-init" "$r/init"
install -m 0755 "$work/bin/summarize-server" "$r/usr/bin/summarize-server"
mknod -m 0600 "$r/dev/console" c 5 1
mods_json=
for m in "${order[@]}"; do
    mkdir -p "$(dirname "$r/lib/modules/$kver/$m")"
    cp "$moddir/$m" "$r/lib/modules/$kver/$m"
    mods_json+="${mods_json:+,}\"/lib/modules/$kver/$m\""
done
printf '{"schema":"cvmforge-init/v1","modules":[%s],"command":["/usr/bin/summarize-server","--listen","0.0.0.0:8080"],"env":{},"uid":65534,"gid":65534}\n' \
    "$mods_json" > "$r/etc/cvmforge/init.json"
(cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) | gzip -n -9 > "$work/initrd.gz"
echo "initrd: $(stat -c %s "$work/initrd.gz") bytes, modules: ${order[*]}"

# --- boot ---
start_vm() { # APPEND
    rm -f "$work/console.log" "$work/mon.sock"
    qemu-system-x86_64 -machine q35 -m 512 -no-reboot -display none -monitor "unix:$work/mon.sock,server,nowait" \
        -serial "file:$work/console.log" -kernel "$kernel" -initrd "$work/initrd.gz" \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device virtio-net-pci,netdev=n0 \
        -append "$1" </dev/null &
    qemu_pid=$!
}
wait_poweroff() { # SECONDS
    for _ in $(seq "$1"); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$qemu_pid" 2>/dev/null && fail "VM did not power off"
    wait "$qemu_pid" || fail "qemu exited with status $?"
    qemu_pid=
    grep -q "reboot: Power down" "$work/console.log" || fail "the kernel did not power down"
}

# 1. a bad cvm.net= is fatal: init powers off before starting anything.
start_vm "console=ttyS0 panic=-1 cvm.net=10.0.2.15/24"
wait_poweroff "$timeout_s"
grep -q 'cvmforge-init: fatal: kernel command line: `cvm.net=10.0.2.15/24`: missing `,gw=E.F.G.H`; powering off' \
    "$work/console.log" || fail "no fatal line for a cvm.net= without gw"
grep -q "started payload" "$work/console.log" && fail "payload started despite a bad cvm.net="
echo "bad cvm.net=: $(grep -a 'cvmforge-init: fatal' "$work/console.log" | tr -d '\r')"

# 2. the real boot.
start_vm "console=ttyS0 panic=-1 cvm.net=10.0.2.15/24,gw=10.0.2.2"
deadline=$((SECONDS + timeout_s))
until grep -q "no capabilities" "$work/console.log" 2>/dev/null; do
    grep -q "powering off" "$work/console.log" 2>/dev/null && fail "init powered off before the payload ran"
    kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited early"
    [ $SECONDS -lt $deadline ] || fail "timeout waiting for the payload"
    sleep 1
done
until curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz" >"$work/health" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "timeout waiting for /healthz"
    sleep 1
done
[ "$(cat "$work/health")" = ok ] || fail "/healthz answered $(cat "$work/health")"
# Sentence 2 is the only one sharing no word with the others, so it has the top TF-IDF score.
secret="Quokka-4521 appears only here."
body="{\"text\":\"The VM boots. The VM answers. $secret The VM stops.\",\"max_sentences\":1}"
answer=$(curl -fsS --max-time 30 -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/v1/summarize")
echo "summarize answer: $answer"
expected="{\"summary\":\"$secret\",\"sentences\":[2],\"method\":\"tfidf-extractive/v1\"}"
[ "$answer" = "$expected" ] || fail "unexpected answer, expected $expected"

# 3. Ctrl-Alt-Del -> SIGINT to PID 1 -> forwarded -> payload exits -> power off.
python3 - "$work/mon.sock" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.3)
s.sendall(b"sendkey ctrl-alt-delete\n"); time.sleep(0.5); s.close()
PY
wait_poweroff 60
grep -q "cvmforge-init: forwarding SIGINT" "$work/console.log" || fail "SIGINT was not forwarded"
grep -q "cvmforge-init: payload exited with signal SIGINT; powering off" "$work/console.log" || fail "no power-off line"
grep -q "Quokka" "$work/console.log" && fail "request content leaked to the console"
echo "--- init and payload lines ---"
grep -aE "cvmforge-init:|^(GET|POST|summarize-server)|reboot: Power down" "$work/console.log" | tr -d '\r'
echo "guest smoke test passed"
