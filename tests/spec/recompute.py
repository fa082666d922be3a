#!/usr/bin/env python3
"""Recompute a daftari ledger's hash chain from VERIFY.md alone.

Usage: recompute.py DATA_DIR

Reads every segment with Python's sqlite3 (read-only), the `blake3` package and, for v2
segments, the `zstandard` package; checks the chain, the stored heads (v1) or end heads (v2),
the v2 columns and token filters, the links between segments and the closed files' hashes,
and prints `records <next_seq> head <hex>`. Exits 1 with a message at the first disagreement.
"""
import os
import re
import sqlite3
import struct
import sys

import blake3
import zstandard


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


def parse(canon):
    """The fields of an ENTRY_V1 record the v2 columns derive from."""
    pos = 1 + 8
    recv_ns, ts_ns = struct.unpack_from(">qq", canon, pos)
    pos += 16

    def take():
        nonlocal pos
        (n,) = struct.unpack_from(">I", canon, pos)
        pos += 4 + n
        return canon[pos - n : pos]

    def pairs():
        nonlocal pos
        (n,) = struct.unpack_from(">I", canon, pos)
        pos += 4
        return [(take(), take()) for _ in range(n)]

    take(), take()
    labels_start = pos
    pairs()
    labels = canon[labels_start:pos]
    metadata = pairs()
    line = take()
    return recv_ns, ts_ns, labels, metadata, line


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zigzag(v):
    return ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF


def columns(records, streams, min_ts):
    """The summary and the (uncompressed) columns of a v2 block."""
    ts, ids, lens, idx, levels, names = [], [], [], [], [], []
    for canon in records:
        _, t, labels, metadata, line = parse(canon)
        for k, _ in metadata:
            if k == b"detected_level" or names is None or k in names:
                continue
            if len(names) < 32 and len(k) <= 64:
                names.append(k)
            else:
                names = None
        ts.append(t)
        ids.append(streams[labels])
        lens.append(len(line))
        level = next((v for k, v in metadata if k == b"detected_level"), None)
        if level is None:
            idx.append(0)
        elif level in levels:
            idx.append(levels.index(level) + 1)
        elif len(levels) < 32 and len(level) <= 32:
            levels.append(level)
            idx.append(len(levels))
        else:
            idx.append(33)
    out = bytearray(varint(len(records)))
    out += varint(len(levels))
    for level in levels:
        out += varint(len(level)) + level
    if names is None:
        out += varint(33)
    else:
        out += varint(len(names))
        for name in names:
            out += varint(len(name)) + name
    groups = {}
    for stream, level, length in zip(ids, idx, lens):
        count, size = groups.get((stream, level), (0, 0))
        groups[(stream, level)] = (count + 1, size + length)
    out += varint(len(groups))
    for (stream, level), (count, size) in groups.items():
        out += varint(stream) + varint(level) + varint(count) + varint(size)
    summary = bytes(out)
    out = bytearray()
    prev = min_ts
    for t in ts:
        delta = (t - prev + 2**63) % 2**64 - 2**63
        out += varint(zigzag(delta))
        prev = t
    for v in ids + lens + idx:
        out += varint(v)
    return summary, bytes(out)


def fnv_splitmix(token):
    mask = 0xFFFFFFFFFFFFFFFF
    h = 0xCBF29CE484222325
    for b in token:
        h = ((h ^ b) * 0x100000001B3) & mask
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
    return h ^ (h >> 31)


def tokens(records):
    hashes = set()
    for canon in records:
        _, _, _, metadata, line = parse(canon)
        for text in [line] + [v for _, v in metadata]:
            for t in re.findall(rb"[0-9A-Za-z_\x80-\xff]+", text):
                hashes.add(fnv_splitmix(t))
    size = -(-len(hashes) * 10 // 8)
    size = -(-size // 8) * 8
    bits = bytearray(size)
    m = size * 8
    for h in hashes:
        lo, hi = h & 0xFFFFFFFF, (h >> 32) | 1
        for i in range(7):
            p = (lo + i * hi) % m
            bits[p // 8] |= 1 << (p % 8)
    return bytes(bits)


def v2_block(name, row, streams):
    """The raw records of a v2 block, after checking its derived columns."""
    block_first, count, min_ts, raw_bytes, end_head, summ, cols, toks, frame = row
    raw = zstandard.ZstdDecompressor().decompress(frame)
    if len(raw) != raw_bytes:
        fail(f"{name}: block {block_first} decompresses to {len(raw)}, not raw_bytes")
    records = split_records(raw, count)
    want_summary, want_columns = columns(records, streams, min_ts)
    if summ != want_summary:
        fail(f"{name}: block {block_first} summary differs from its records")
    if zstandard.ZstdDecompressor().decompress(cols) != want_columns:
        fail(f"{name}: block {block_first} columns differ from its records")
    if toks != tokens(records):
        fail(f"{name}: block {block_first} token filter differs from its records")
    return records, None, end_head


def blocks(name, db):
    """(records, heads or None, end head or None) of each block, in order."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 1:
        rows = db.execute("SELECT first_seq, count, records, heads FROM blocks ORDER BY first_seq")
        for block_first, count, records, heads in rows:
            yield block_first, split_records(records, count), heads, None
        return
    streams = dict(db.execute("SELECT labels, id FROM streams"))
    rows = db.execute(
        "SELECT first_seq, count, min_ts_ns, raw_bytes, end_head, summary, columns, tokens, records "
        "FROM blocks ORDER BY first_seq"
    )
    for row in rows:
        records, heads, end_head = v2_block(name, row, streams)
        yield row[0], records, heads, end_head


def open_segment(seg_dir, name):
    """A segment read-only, with its meta row: (db, (origin, log_id, segment_index,
    first_seq, prev_head, prev_file_hash))."""
    path = os.path.join(seg_dir, name)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    meta = db.execute(
        "SELECT origin, log_id, segment_index, first_seq, prev_head, prev_file_hash FROM meta"
    ).fetchone()
    return db, meta


def main(data):
    seg_dir = os.path.join(data, "segments")
    names = sorted(n for n in os.listdir(seg_dir) if re.fullmatch(r"seg-\d{12}\.sqlite", n))
    head, next_seq, prev = None, 0, None
    for expected_index, name in enumerate(names):
        if int(name[4:16]) != expected_index:
            fail(f"segment {expected_index} missing")
        path = os.path.join(seg_dir, name)
        db, (origin, log_id, index, first_seq, prev_head, prev_file_hash) = open_segment(
            seg_dir, name
        )
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
        walked = 0
        for block_first, records, heads, end_head in blocks(name, db):
            for i, canon in enumerate(records):
                seq = struct.unpack_from(">Q", canon, 1)[0]
                if canon[0] != 1 or seq != next_seq or seq != block_first + i:
                    fail(f"{name}: record {seq} out of place (expected {next_seq})")
                head = derive("daftari v1 chain", head, derive("daftari v1 entry leaf", canon))
                if heads is not None and heads[32 * i : 32 * i + 32] != head:
                    fail(f"{name}: stored head of seq {seq} differs")
                next_seq += 1
                walked += 1
            if end_head is not None and end_head != head:
                fail(f"{name}: block {block_first} does not chain to its end head")
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
