#!/bin/sh
# Regenerates the expected values of measurements/tests/snp_kat.rs and the VMSA dumps in measurements/tests/data/vmsa/
# by running the reference sev-snp-measure 0.0.13 (SSM, default build/snp-diff-venv/bin/sev-snp-measure, which
# scripts/snp-differential.py creates). Prints `<digest>  <command>` lines.
set -eu
cd "$(dirname "$0")/.."
SSM="${SSM:-$PWD/build/snp-diff-venv/bin/sev-snp-measure}"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
xz -dc tests/fixtures/firmware/OVMF.amdsev.fd.xz > "$W/OVMF.amdsev.fd"
xz -dc tests/fixtures/firmware/OVMF.fd.xz > "$W/OVMF.fd"
python3 measurements/tests/data/make-inputs.py "$W"
cp measurements/tests/data/svsm-synthetic.bin "$W/"
cd "$W"
run() { printf '%s  sev-snp-measure %s\n' "$("$SSM" "$@" 2>&1 | tail -1)" "$*"; }
run --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
run --mode snp --vcpus 1 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
run --mode snp --vcpus 64 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
run --mode snp --vcpus 512 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
run --mode snp --vcpus 2 --vcpu-type EPYC-Milan --ovmf OVMF.amdsev.fd --kernel kernel --initrd initrd --append "console=ttyS0 é "
run --mode snp --vcpus 2 --vmm-type ec2 --ovmf OVMF.amdsev.fd --kernel kernel
run --mode snp --vcpus 3 --vmm-type gce --guest-features 0x21 --ovmf OVMF.amdsev.fd --kernel kernel --initrd initrd
run --mode snp --vcpus 2 --vcpu-sig 0xa10f10 --vmm-type ec2 --ovmf OVMF.fd
run --mode snp:ovmf-hash --ovmf OVMF.amdsev.fd
run --mode snp:ovmf-hash --ovmf OVMF.fd
run --mode sev --ovmf OVMF.amdsev.fd --kernel kernel --initrd initrd --append x
run --mode sev --ovmf OVMF.fd
run --mode seves --vcpus 2 --vcpu-type EPYC-Rome --ovmf OVMF.amdsev.fd --kernel kernel
run --mode snp:svsm --vcpus 2 --vcpu-type EPYC-Genoa --ovmf OVMF.amdsev.fd --svsm svsm-synthetic.bin --vars-size 540672
run --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.fd --kernel kernel
run --mode sev --ovmf OVMF.fd --kernel kernel
# VMSA dumps (BSP and first AP) for each VMM and mode.
dump() { name="$1"; shift; rm -f vmsa*.bin; "$SSM" "$@" --dump-vmsa > /dev/null; for f in vmsa0.bin vmsa1.bin; do cp "$f" "$OLDPWD/measurements/tests/data/vmsa/$name-$f"; done; echo "dumped $name: sev-snp-measure $* --dump-vmsa"; }
mkdir -p "$OLDPWD/measurements/tests/data/vmsa"
dump snp-qemu --mode snp --vcpus 2 --vcpu-type EPYC-Milan --ovmf OVMF.amdsev.fd
dump snp-ec2 --mode snp --vcpus 2 --vmm-type ec2 --guest-features 0x21 --ovmf OVMF.amdsev.fd
dump snp-gce --mode snp --vcpus 2 --vmm-type gce --ovmf OVMF.amdsev.fd
dump seves-qemu --mode seves --vcpus 2 --vcpu-sig 0x800f12 --ovmf OVMF.amdsev.fd
dump svsm-qemu --mode snp:svsm --vcpus 2 --vcpu-type EPYC-Genoa --ovmf OVMF.amdsev.fd --svsm svsm-synthetic.bin --vars-size 540672
