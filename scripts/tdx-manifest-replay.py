#!/usr/bin/env python3
"""Replays the RTMR1-3 that a cvmforge manifest records, from the image's files, without cvmforge's code (issue 16).

Usage: tdx-manifest-replay.py OUTPUT_DIR
For each TDX shape of OUTPUT_DIR/manifest.json, recomputes the registers as the TCG event log defines them, with
Python's hashlib and pefile only: RTMR[i] starts at 48 zero bytes, and each event extends it,
RTMR = SHA-384(RTMR || digest).
  RTMR1: the kernel's PE Authenticode SHA-384 (pefile, scripts/tdx-authenticode-pefile.py; with QEMU <= 10.1's
         setup-header patch when the shape says QEMU patches it), then the EV_EFI_ACTION strings "Calling EFI
         Application from Boot Option", the EV_SEPARATOR (4 zero bytes), "Exit Boot Services Invocation" and "Exit
         Boot Services Returned with Success" (docs/specs/tdx-measurement.md).
  RTMR2: the LoadOptions, UTF-16LE with a terminating NUL, `initrd=initrd ` before (prefix layout) or ` initrd=initrd`
         after (suffix layout) the command line, then the SHA-384 of the initrd file.
  RTMR3: nothing (48 zero bytes).
Prints one line per register and `N passed, N failed`.
"""
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

ZERO = bytes(48)


def extend(digests):
    value = ZERO
    for d in digests:
        value = hashlib.sha384(value + d).digest()
    return value.hex()


def action(text):
    return hashlib.sha384(text.encode()).digest()


def main():
    out = Path(sys.argv[1])
    manifest = json.loads((out / "manifest.json").read_text())
    spec = importlib.util.spec_from_file_location("ac", Path(__file__).with_name("tdx-authenticode-pefile.py"))
    ac = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ac)
    kernel = (out / "kernel").read_bytes()
    initrd = (out / "initrd.img").read_bytes()
    cmdline = (out / "cmdline").read_text()
    passed = failed = 0
    shapes = manifest["measurements"]["tdx"]
    for shape in shapes:
        patched = shape["qemu_kernel_patching"] is True
        image = ac.patch(kernel, shape["memory_bytes"], len(initrd)) if patched else kernel
        rtmr1 = extend([
            bytes.fromhex(ac.authenticode(image)),
            action("Calling EFI Application from Boot Option"),
            hashlib.sha384(bytes(4)).digest(),
            action("Exit Boot Services Invocation"),
            action("Exit Boot Services Returned with Success"),
        ])
        options = f"initrd=initrd {cmdline}" if shape["cmdline_layout"] == "prefix" else f"{cmdline} initrd=initrd"
        rtmr2 = extend([
            hashlib.sha384((options + "\0").encode("utf-16-le")).digest(),
            hashlib.sha384(initrd).digest(),
        ])
        for name, ours in [("rtmr1", rtmr1), ("rtmr2", rtmr2), ("rtmr3", ZERO.hex())]:
            recorded = shape[name]
            if len(ours) == 96 and recorded == ours:
                passed += 1
                print(f"  ok   {shape['name']} {name} {ours}")
            else:
                failed += 1
                print(f"  FAIL {shape['name']} {name}: manifest {recorded}, replayed {ours}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
