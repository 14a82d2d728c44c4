#!/usr/bin/env bash
# Dumps QEMU's fw_cfg ACPI blobs (`table-loader`, `rsdp`, `tables`) for one VM shape into a directory, the input of
# `cvmforge measure tdx --acpi-tables DIR`. The blobs depend on the QEMU version, machine type, RAM, vCPUs and
# devices (docs/specs/tdx-measurement.md, "RTMR0"), so dump them once per VM shape with the same QEMU.
#
# Usage: scripts/dump-acpi-tables.sh OUT_DIR KERNEL MODULES_DIR [MEMORY] [VCPUS] [-- EXTRA_QEMU_ARGS...]
#   KERNEL       a bzImage (e.g. /boot/vmlinuz-...)
#   MODULES_DIR  its /lib/modules/<version> (for qemu_fw_cfg.ko, when the driver is a module)
# The guest boots under TCG on q35 without TDX: pass the TD's device arguments after `--`. A TD's own QEMU command
# line (with `-object tdx-guest`) can differ in ways this cannot reproduce: compare the digests of these blobs with
# the RTMR0 events of a real TD's CCEL before relying on them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -lt 3 ]]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
OUT=$1 KERNEL=$2 MODULES=$3 MEMORY=${4:-2G} VCPUS=${5:-2}
shift $(( $# < 5 ? $# : 5 ))
[[ "${1:-}" == "--" ]] && shift
EXTRA=("$@")
WORK=$ROOT/build/dump-acpi
rm -rf "$WORK" && mkdir -p "$WORK/root"/{dev,proc,sys} "$OUT"
cc -static -Os -o "$WORK/root/init" "$ROOT/scripts/dump-acpi-init.c"
KO=$(find "$MODULES" -name 'qemu_fw_cfg.ko*' | head -1)
case "$KO" in
    *.ko) cp "$KO" "$WORK/root/qemu_fw_cfg.ko" ;;
    *.ko.xz) xz -dc "$KO" > "$WORK/root/qemu_fw_cfg.ko" ;;
    *.ko.zst) zstd -qdc "$KO" > "$WORK/root/qemu_fw_cfg.ko" ;;
    *) echo "note: no qemu_fw_cfg module under $MODULES (assuming it is built in)" >&2 ;;
esac
find "$WORK/root" -exec touch -h -d @0 {} +  # cpio records mtimes: make the initrd reproducible
(cd "$WORK/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) > "$WORK/initrd"
xz -dc "$ROOT/tests/fixtures/firmware/OVMF_CODE_4M.2026.08.fd.xz" > "$WORK/code.fd"
timeout 300 qemu-system-x86_64 -machine q35 -m "$MEMORY" -smp "$VCPUS" -display none -no-reboot -net none \
    -serial "file:$WORK/serial.log" -drive if=pflash,format=raw,unit=0,readonly=on,file="$WORK/code.fd" \
    -kernel "$KERNEL" -initrd "$WORK/initrd" -append "console=ttyS0 quiet" "${EXTRA[@]}"
python3 - "$WORK/serial.log" "$OUT" <<'PY'
import hashlib, os, sys
text = open(sys.argv[1], errors="replace").read()
for name in ("table-loader", "rsdp", "tables"):
    begin, end = f"CVMFORGE-BLOB-BEGIN {name}", f"CVMFORGE-BLOB-END {name}"
    if begin not in text or end not in text:
        sys.exit(f"no `{name}` blob in the guest output ({sys.argv[1]})")
    body = text.split(begin)[1].split(end)[0]
    if "MISSING" in body:
        sys.exit(f"the guest could not read etc/{name} from fw_cfg")
    data = bytes.fromhex("".join(c for c in body if c in "0123456789abcdef"))
    open(os.path.join(sys.argv[2], name), "wb").write(data)
    print(f"{name}: {len(data)} bytes, sha384 {hashlib.sha384(data).hexdigest()}")
PY
