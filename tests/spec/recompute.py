#!/usr/bin/env python3
"""Recompute a daftari ledger's hash chain from VERIFY.md alone.

Usage: recompute.py DATA_DIR

Reads every segment with Python's sqlite3 (read-only) and the `blake3` package, checks the
chain, the stored heads, the links between segments and the closed files' hashes, and prints
`records <next_seq> head <hex>`. Exits 1 with a message at the first disagreement.
"""
import os
import re
import sqlite3
import struct
import sys

import blake3


def derive(context, *parts):
    h = blake3.blake3(derive_key_context=context)
    for p in parts:
        h.update(p)
    return h.digest()


def bstr(b):
    return struct.pack(">I", len(b)) + b


def fail(msg):
    print(msg)
    sys.exit(1)


def split_records(blob, count):
    out, pos = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from(">I", blob, pos)
        out.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    if pos != len(blob):
        fail("records blob has trailing bytes")
    return out


def main(data):
    seg_dir = os.path.join(data, "segments")
    names = sorted(n for n in os.listdir(seg_dir) if re.fullmatch(r"seg-\d{12}\.sqlite", n))
    head, next_seq, prev = None, 0, None
    for expected_index, name in enumerate(names):
        if int(name[4:16]) != expected_index:
            fail(f"segment {expected_index} missing")
        path = os.path.join(seg_dir, name)
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        origin, log_id, index, first_seq, prev_head, prev_file_hash = db.execute(
            "SELECT origin, log_id, segment_index, first_seq, prev_head, prev_file_hash FROM meta"
        ).fetchone()
        if index != expected_index or first_seq != next_seq:
            fail(f"{name}: meta does not continue the log")
        if head is None:
            head = derive("daftari v1 genesis", bstr(origin.encode()), log_id)
        if prev_head != head:
            fail(f"{name}: prev_head does not continue the chain")
        if prev is not None:
            with open(prev, "rb") as f:
                if derive("daftari v1 segment file", f.read()) != prev_file_hash:
                    fail(f"{name}: prev_file_hash does not match the previous file")
        rows = db.execute("SELECT first_seq, count, records, heads FROM blocks ORDER BY first_seq")
        walked = 0
        for block_first, count, records, heads in rows:
            for i, canon in enumerate(split_records(records, count)):
                seq = struct.unpack_from(">Q", canon, 1)[0]
                if canon[0] != 1 or seq != next_seq or seq != block_first + i:
                    fail(f"{name}: record {seq} out of place (expected {next_seq})")
                head = derive("daftari v1 chain", head, derive("daftari v1 entry leaf", canon))
                if heads[32 * i : 32 * i + 32] != head:
                    fail(f"{name}: stored head of seq {seq} differs")
                next_seq += 1
                walked += 1
        close = db.execute("SELECT count, end_head FROM close").fetchone()
        db.close()
        if close is not None:
            if close[0] != walked or close[1] != head:
                fail(f"{name}: close row does not match the records")
            prev = path
        else:
            prev = None
    print(f"records {next_seq} head {head.hex()}")


if __name__ == "__main__":
    main(sys.argv[1])
