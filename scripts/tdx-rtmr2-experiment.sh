#!/usr/bin/env bash
# Ground-truth experiment for RTMR2 (and RTMR1's kernel event): boots a real kernel by QEMU direct kernel boot
# (-kernel/-initrd/-append) on Debian's generic OVMF 2026.08 (same edk2 as the TDX fixture) under TCG with a
# software TPM, reads the firmware's TCG2 event log from inside the guest, and checks that `cvmforge measure tdx`
# predicts the same SHA-384 event digests:
#   - PCR9  EV_EVENT_TAG "LOADED_IMAGE::LoadOptions"  = RTMR2 event 1 (the EFI stub logs the same events to RTMR2 on TDX)
#   - PCR9  EV_EVENT_TAG "Linux initrd"               = RTMR2 event 2
#   - PCR4  EV_EFI_BOOT_SERVICES_APPLICATION (kernel) = RTMR1 event 1, with the installed QEMU's header patching
# Without an initrd our /init cannot run, so that case boots to a kernel panic and the LoadOptions event is read
# from a dump of guest memory (the stub's copy of the event log) through the QEMU monitor.
#
# Usage: scripts/tdx-rtmr2-experiment.sh [KERNEL]      (or CVMFORGE_TEST_KERNEL=/boot/vmlinuz-...)
# Needs: qemu-system-x86_64, swtpm, cc with static glibc, cpio, python3, xz. Prints `N passed, N failed`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KERNEL=${1:-${CVMFORGE_TEST_KERNEL:-}}
if [[ -z "$KERNEL" || ! -f "$KERNEL" ]]; then
    echo "usage: $0 KERNEL (or set CVMFORGE_TEST_KERNEL); kernel \`$KERNEL\` not found" >&2
    exit 2
fi
WORK=$ROOT/build/tdx-rtmr2
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
mkdir -p "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

CVMFORGE=${CVMFORGE_BIN:-$ROOT/target/debug/cvmforge}
if [[ -z "${CVMFORGE_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build -q -p cvmforge)
fi

fixture() { # name sha256
    local out=$WORK/$1
    if [[ ! -f "$out" ]]; then xz -dc "$ROOT/tests/fixtures/firmware/$1.xz" > "$out.tmp" && mv "$out.tmp" "$out"; fi
    echo "$2  $out" | sha256sum -c --quiet
}
fixture OVMF_CODE_4M.2026.08.fd 7e34e3b83224968bb0714c0ebc88f75c5c37b4cc892c902e511ccc7a7c107f94
fixture OVMF_VARS_4M.2026.08.fd 5d2ac383371b408398accee7ec27c8c09ea5b74a0de0ceea6513388b15be5d1e
fixture OVMF.inteltdx.ms.fd a265075b4147a096109e501e76196df1ec8a18659c26f7401492c597ec88f312

# The initrd: one static /init that prints the event log and powers off.
rm -rf "$WORK/initrd-root" && mkdir -p "$WORK/initrd-root"/{dev,proc,sys}
cc -static -Os -o "$WORK/initrd-root/init" "$ROOT/scripts/tdx-eventlog-init.c"
find "$WORK/initrd-root" -exec touch -h -d @0 {} +  # cpio records mtimes: make the initrd reproducible
(cd "$WORK/initrd-root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) > "$WORK/initrd.cpio"

QEMU_VERSION=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\(\.[0-9]*\)\?\).*/\1/p')
echo "kernel: $KERNEL"
echo "QEMU $QEMU_VERSION, firmware OVMF_CODE_4M.2026.08.fd (prefix layout expected)"

PASSED=0
FAILED=0
check() { # name expected actual
    if [[ "$2" == "$3" && -n "$2" ]] || [[ "$2" == none && -z "$3" ]]; then
        echo "  ok   $1 ${2:0:16}…"
        PASSED=$((PASSED + 1))
    else
        echo "  FAIL $1: expected \`$2\`, the guest measured \`$3\`"
        FAILED=$((FAILED + 1))
    fi
}

# boot NAME MEMORY APPEND WITH_INITRD → writes $WORK/NAME/{serial.log,events.json}
boot() {
    local dir=$WORK/$1 mem=$2 append=$3 with_initrd=$4
    rm -rf "$dir" && mkdir -p "$dir/tpm"
    cp "$WORK/OVMF_VARS_4M.2026.08.fd" "$dir/vars.fd"
    swtpm socket --tpm2 --tpmstate dir="$dir/tpm" --ctrl type=unixio,path="$dir/tpm/sock" &
    local swtpm=$!
    PIDS+=("$swtpm")
    for _ in $(seq 50); do [[ -S "$dir/tpm/sock" ]] && break; sleep 0.1; done
    local extra=()
    if [[ "$with_initrd" == yes ]]; then
        extra=(-initrd "$WORK/initrd.cpio")
    else
        extra=(-monitor "unix:$dir/monitor,server,nowait")
    fi
    timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -machine q35 -m "$mem" -smp 1 -display none -no-reboot -net none \
        -serial "file:$dir/serial.log" \
        -drive if=pflash,format=raw,unit=0,readonly=on,file="$WORK/OVMF_CODE_4M.2026.08.fd" \
        -drive if=pflash,format=raw,unit=1,file="$dir/vars.fd" \
        -chardev socket,id=chrtpm,path="$dir/tpm/sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-tis,tpmdev=tpm0 -kernel "$KERNEL" -append "$append" "${extra[@]}" &
    local qemu=$!
    PIDS+=("$qemu")
    if [[ "$with_initrd" == yes ]]; then
        wait "$qemu" || echo "  (QEMU exited with status $?)"
        python3 "$ROOT/scripts/tcg2-eventlog.py" serial "$dir/serial.log" > "$dir/events.json" || true
        BANKS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["banks"])' "$dir/events.json" 2>/dev/null || true)
    else
        for _ in $(seq "$BOOT_TIMEOUT"); do
            grep -q "Kernel panic" "$dir/serial.log" 2>/dev/null && break
            sleep 1
        done
        python3 - "$dir/monitor" "$dir/mem.bin" "$mem" <<'PY' || true
import os, socket, sys, time
# HMP parses `/` in an unquoted argument as division: quote the file name.
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
size = int(sys.argv[3].rstrip("G")) << 30
s.sendall(f'pmemsave 0 {size} "{sys.argv[2]}"\n'.encode())
for _ in range(600):
    time.sleep(0.5)
    if os.path.exists(sys.argv[2]) and os.path.getsize(sys.argv[2]) == size:
        break
time.sleep(1)
s.sendall(b"quit\n")
time.sleep(0.5)
PY
        wait "$qemu" 2>/dev/null || true
        python3 "$ROOT/scripts/tcg2-eventlog.py" memory "$dir/mem.bin" "$BANKS" > "$dir/events.json" || true
        rm -f "$dir/mem.bin"
    fi
    kill "$swtpm" 2>/dev/null || true
    wait "$swtpm" 2>/dev/null || true
}

# guest_digest NAME PCR TYPE DATA_PREFIX_HEX → the sha384 of the first matching event (empty if none)
guest_digest() {
    python3 - "$WORK/$1/events.json" "$2" "$3" "$4" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for e in d["events"]:
    if e["pcr"] == int(sys.argv[2]) and e["type"] == int(sys.argv[3], 0) and e["data_hex"].startswith(sys.argv[4]):
        print(e["sha384"]); break
PY
}

# predicted NAME MEMORY APPEND WITH_INITRD RTMR INDEX → the digest cvmforge predicts for that event.
# This guest is not confidential, so every QEMU version patches the setup header (QEMU ≥ 10.2 stops only for
# confidential guests): model it with `--qemu-version 10.1`, whose patch is the one `x86_load_linux` applies.
predicted() {
    local initrd=()
    [[ "$4" == yes ]] && initrd=(--initrd "$WORK/initrd.cpio")
    "$CVMFORGE" --json measure tdx --firmware "$WORK/OVMF.inteltdx.ms.fd" --kernel "$KERNEL" "${initrd[@]}" \
        --append "$3" --qemu-version 10.1 --memory "$2" --explain \
        | python3 -c 'import json,sys; ev=[e for e in json.load(sys.stdin)["events"] if e["rtmr"]==int(sys.argv[1])]; print(ev[int(sys.argv[2])]["digest"] if len(ev)>int(sys.argv[2]) else "")' "$5" "$6"
}

LOAD_OPTIONS_TAG=ed223b8f
INITRD_TAG=ec223b8f

run_case() { # NAME MEMORY APPEND WITH_INITRD
    echo "case $1: -m $2, -append '$3', initrd: $4"
    boot "$@"
    check "PCR9 LoadOptions = RTMR2[0]" "$(predicted "$@" 2 0)" "$(guest_digest "$1" 9 6 $LOAD_OPTIONS_TAG)"
    if [[ "$4" == yes ]]; then
        check "PCR9 initrd = RTMR2[1]" "$(predicted "$@" 2 1)" "$(guest_digest "$1" 9 6 $INITRD_TAG)"
        check "PCR4 kernel (QEMU $QEMU_VERSION patched, $2) = RTMR1[0]" "$(predicted "$@" 1 0)" \
            "$(guest_digest "$1" 4 0x80000003 '')"
    else
        # "No initrd event" means something only if the event log was read from guest memory at all: its
        # LoadOptions event must be there (issue 16).
        if [[ -z "$(guest_digest "$1" 9 6 $LOAD_OPTIONS_TAG)" ]]; then
            echo "  FAIL no PCR9 initrd event: nothing was read from guest memory (no LoadOptions event either)"
            FAILED=$((FAILED + 1))
        else
            check "no PCR9 initrd event in guest memory, no RTMR2[1]" "none" \
                "$(guest_digest "$1" 9 6 $INITRD_TAG)$(predicted "$@" 2 1)" 2>/dev/null || true
        fi
    fi
}

BANKS=""
run_case ascii-initrd 1G "console=ttyS0" yes
run_case non-ascii-initrd 2G "console=ttyS0 cvmforge.test=π→ü" yes
run_case empty-initrd 3G "" yes
if [[ -n "$BANKS" ]]; then
    run_case ascii-no-initrd 1G "console=ttyS0 panic=0" no
else
    echo "case ascii-no-initrd: skipped (no TPM bank list from the earlier cases)"
    FAILED=$((FAILED + 1))
fi

echo "$PASSED passed, $FAILED failed"
[[ "$FAILED" == 0 && "$PASSED" -gt 0 ]]
