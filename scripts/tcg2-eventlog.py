#!/usr/bin/env python3
"""Helper for scripts/tdx-rtmr2-experiment.sh: extract TCG2 (crypto-agile) events.

  tcg2-eventlog.py serial SERIAL_LOG        events of the hex-encoded log that tdx-eventlog-init printed
  tcg2-eventlog.py memory MEM_DUMP BANKS    LoadOptions events found in a raw guest-memory dump; BANKS is the
                                            algorithm list (id:size,...) printed by `serial` mode

Prints one JSON object: {"banks": "...", "events": [{"pcr", "type", "sha384", "data_hex"}]}.
Format: TCG PC Client Platform Firmware Profile, 10.2.1 (TCG_PCR_EVENT2) and 10.4.5.1 (Spec ID Event03).
"""
import json
import mmap
import struct
import sys

SHA384 = 0x000C
LOAD_OPTIONS_EVENT = b"\xed\x22\x3b\x8f\x1a\x00\x00\x00LOADED_IMAGE::LoadOptions\x00"
INITRD_EVENT = b"\xec\x22\x3b\x8f\x0d\x00\x00\x00Linux initrd\x00"


def parse_log(d):
    # The first event is a TCG_PCR_EVENT (SHA-1 format) holding the Spec ID event with the bank list.
    size = struct.unpack_from("<I", d, 28)[0]
    spec = d[32:32 + size]
    if not spec.startswith(b"Spec ID Event03"):
        raise SystemExit("not a crypto-agile TCG2 event log")
    n = struct.unpack_from("<I", spec, 24)[0]
    banks = [struct.unpack_from("<HH", spec, 28 + 4 * i) for i in range(n)]
    sizes = dict(banks)
    off, events = 32 + size, []
    while off + 12 <= len(d):
        pcr, etype, count = struct.unpack_from("<III", d, off)
        off += 12
        digests = {}
        for _ in range(count):
            alg = struct.unpack_from("<H", d, off)[0]
            off += 2
            digests[alg] = d[off:off + sizes[alg]]
            off += sizes[alg]
        esize = struct.unpack_from("<I", d, off)[0]
        off += 4
        data = d[off:off + esize]
        off += esize
        events.append({"pcr": pcr, "type": etype, "sha384": digests.get(SHA384, b"").hex(), "data_hex": data.hex()})
    return banks, events


def serial(path):
    text = open(path, errors="replace").read()
    if "CVMFORGE-EVENTLOG-BEGIN" not in text or "CVMFORGE-EVENTLOG-END" not in text:
        raise SystemExit("no event log markers in " + path)
    body = text.split("CVMFORGE-EVENTLOG-BEGIN")[1].split("CVMFORGE-EVENTLOG-END")[0]
    if "MISSING" in body:
        raise SystemExit("the guest found no event log (no TPM?)")
    raw = bytes.fromhex("".join(c for c in body if c in "0123456789abcdef"))
    banks, events = parse_log(raw)
    return {"banks": ",".join(f"{a}:{s}" for a, s in banks), "events": events}


def event_before(m, pos, tagged, banks, digests_len):
    start = pos - 4 - digests_len - 12
    if start < 0:
        return None
    pcr, etype, count = struct.unpack_from("<III", m, start)
    esize = struct.unpack_from("<I", m, pos - 4)[0]
    if (pcr, etype, count, esize) != (9, 6, len(banks), len(tagged)):
        return None
    off, digest = start + 12, None
    for alg, size in banks:
        if struct.unpack_from("<H", m, off)[0] != alg:
            return None
        if alg == SHA384:
            digest = m[off + 2:off + 2 + size].hex()
        off += 2 + size
    return {"pcr": 9, "type": 6, "sha384": digest, "data_hex": tagged.hex(), "at": start}


def memory(path, banks_arg):
    banks = [tuple(int(x) for x in b.split(":")) for b in banks_arg.split(",")]
    digests_len = sum(2 + s for _, s in banks)
    events = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        # The EFI stub's own table holds the same tag bytes, so only matches inside a well-formed TCG_PCR_EVENT2
        # (PCR 9, EV_EVENT_TAG, the log's bank list, the right event size) count.
        for tagged in (LOAD_OPTIONS_EVENT, INITRD_EVENT):
            pos = m.find(tagged)
            while pos >= 0:
                event = event_before(m, pos, tagged, banks, digests_len)
                if event:
                    events.append(event)
                pos = m.find(tagged, pos + 1)
    return {"banks": banks_arg, "events": events}


if __name__ == "__main__":
    if sys.argv[1] == "serial":
        print(json.dumps(serial(sys.argv[2])))
    else:
        print(json.dumps(memory(sys.argv[2], sys.argv[3])))
