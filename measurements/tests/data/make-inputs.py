#!/usr/bin/env python3
"""Writes the deterministic inputs of the SNP known-answer tests into the directory given as argv[1].

The Rust tests build the same bytes (measurements/tests/snp_kat.rs, `kernel()`, `initrd()`); svsm-synthetic.bin is
committed beside this script and was written by `make-inputs.py measurements/tests/data --svsm`.
"""
import struct
import sys
import uuid
from pathlib import Path

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
(out / "kernel").write_bytes(b"cvmforge-test-kernel\n" * 50000)
(out / "initrd").write_bytes(b"initrd" * 1000)


def guid(text):
    return uuid.UUID(text).bytes_le


size = 0x4000
items = [(0x7fff0000, 0x2000, 1), (0x7fff2000, 0x1000, 2), (0x7fff3000, 0x1000, 3), (0x7fff4000, 0x1000, 4)]
meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(items), 1, len(items))
meta += b"".join(struct.pack("<III", *it) for it in items)
body = b""
for g, data in [("a789a612-0597-4c4b-a49f-cbb1fe9d1ddd", struct.pack("<I", 0x1234)),
                ("dc886566-984a-4798-a75e-5585a7bf67cc", struct.pack("<I", size - 0x100))]:
    body += data + struct.pack("<H", len(data) + 18) + guid(g)
tail = body + struct.pack("<H", len(body) + 18) + guid("96b582de-1fb2-45f7-baea-a366c55a082d") + bytes(32)
img = bytearray(size - len(tail)) + tail
img[0x100:0x100 + len(meta)] = meta
img[0x1000:0x1010] = b"svsm entry here!"
if len(sys.argv) > 2 and sys.argv[2] == "--svsm":
    (out / "svsm-synthetic.bin").write_bytes(bytes(img))
