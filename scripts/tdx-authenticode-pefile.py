#!/usr/bin/env python3
"""Independent Authenticode SHA-384 of a PE image using `pefile`'s parser (for scripts/tdx-rtmr1-check.sh).

Usage: tdx-authenticode-pefile.py KERNEL [MEMORY_BYTES INITRD_SIZE]
With MEMORY_BYTES and INITRD_SIZE, first applies QEMU <= 10.1's setup-header patch as docs/specs/tdx-measurement.md
describes it (the dstack-mr model), to cross-check cvmforge's `--qemu-version 10.1 --memory`.
"""
import hashlib
import struct
import sys

import pefile


def patch(data, memory, initrd_size):
    data = bytearray(data)
    low_mem = memory if memory < 0xB0000000 else 0x80000000
    data[0x210] = 0xB0
    data[0x211] |= 0x80
    struct.pack_into("<H", data, 0x224, 0xFE00)
    struct.pack_into("<I", data, 0x228, 0x20000)
    if initrd_size:
        struct.pack_into("<I", data, 0x21C, initrd_size)
        struct.pack_into("<I", data, 0x218, (low_mem - 0x28000 - 1 - initrd_size) & ~0xFFF)
    return bytes(data)


def authenticode(data):
    pe = pefile.PE(data=data, fast_load=True)
    checksum = pe.OPTIONAL_HEADER.get_field_absolute_offset("CheckSum")
    security = pe.OPTIONAL_HEADER.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]]
    sec_entry = security.get_file_offset()
    headers = pe.OPTIONAL_HEADER.SizeOfHeaders
    h = hashlib.sha384()
    h.update(data[:checksum])
    h.update(data[checksum + 4:sec_entry])
    h.update(data[sec_entry + 8:headers])
    hashed = headers
    for s in sorted(pe.sections, key=lambda s: s.PointerToRawData):
        if s.SizeOfRawData:
            h.update(data[s.PointerToRawData:s.PointerToRawData + s.SizeOfRawData])
            hashed += s.SizeOfRawData
    end = len(data) - security.Size
    if end > hashed:
        h.update(data[hashed:end])
    return h.hexdigest()


if __name__ == "__main__":
    data = open(sys.argv[1], "rb").read()
    if len(sys.argv) == 4:
        data = patch(data, int(sys.argv[2]), int(sys.argv[3]))
    print(authenticode(data))
