#!/usr/bin/env python3
"""Audit a daftari ledger from VERIFY.md's rules alone: a second implementation of verify.

Usage: audit.py DATA_DIR [--pubkey B64] [--retention SECONDS] [--vkey VKEY --anchors FILE]

Checks the records, blocks and their derived columns (with recompute.py's helpers), the links
between segments, close rows, closed files' hashes and Merkle roots; with --pubkey, the seal
chain (Ed25519 through PyNaCl, that is libsodium, not the library daftari uses), every
segment-close and prune seal, and the retention policy; with --vkey and --anchors, the
checkpoints exported off the box. Prints `intact records <next_seq> head <hex> seals <n>` and
exits 0, or prints the first disagreement and exits 1. It reads files, never daftari's code.
"""
import base64
import hashlib
import os
import re
import sqlite3
import struct
import sys
import time

import nacl.exceptions
import nacl.signing

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recompute import blocks, bstr, derive, fail, open_segment  # noqa: E402

SEAL_PREFIX = b"daftari v1 seal"


def leaf(canon):
    return derive("daftari v1 entry leaf", canon)


def merkle_root(leaves):
    """RFC 6962's tree shape over blake3 (VERIFY.md, "The segment Merkle tree")."""
    if not leaves:
        return derive("daftari v1 merkle empty", b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return derive("daftari v1 merkle node", merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def walk_segments(data):
    """Every present segment checked and linked; returns (segments, heads, next_seq, head).

    segments: index -> {first_seq, count, end_head, root, file_hash (closed only), meta};
    heads: size -> the head after record size-1, for every size the present files cover.
    """
    seg_dir = os.path.join(data, "segments")
    names = sorted(n for n in os.listdir(seg_dir) if re.fullmatch(r"seg-\d{12}\.sqlite", n))
    if not names:
        return {}, {}, 0, None
    segments, heads = {}, {}
    head, next_seq, prev = None, None, None
    for pos, name in enumerate(names):
        index = int(name[4:16])
        if pos > 0 and index != prev["index"] + 1:
            fail(f"segment_missing: segment {prev['index'] + 1}")
        path = os.path.join(seg_dir, name)
        db, (origin, log_id, meta_index, first_seq, prev_head, prev_file_hash) = open_segment(
            seg_dir, name
        )
        if meta_index != index:
            fail(f"segment_replaced: {name} holds segment {meta_index}")
        if pos == 0:
            genesis = derive("daftari v1 genesis", bstr(origin.encode()), log_id)
            if index == 0 and (first_seq != 0 or prev_head != genesis):
                fail(f"modified: {name} does not start the log")
            head, next_seq = prev_head, first_seq
        elif first_seq != next_seq or prev_head != head:
            fail(f"modified: {name} meta does not continue the log")
        if prev is not None and prev["file_hash"] != prev_file_hash:
            fail(f"modified: {name} prev_file_hash does not match the previous file")
        heads[next_seq] = head
        leaves = []
        for block_first, records, stored_heads, end_head in blocks(name, db):
            for i, canon in enumerate(records):
                seq = struct.unpack_from(">Q", canon, 1)[0]
                if canon[0] != 1 or seq != next_seq or seq != block_first + i:
                    fail(f"modified: {name} record {seq} out of place (expected {next_seq})")
                lf = leaf(canon)
                leaves.append(lf)
                head = derive("daftari v1 chain", head, lf)
                if stored_heads is not None and stored_heads[32 * i : 32 * i + 32] != head:
                    fail(f"modified: {name} stored head of seq {seq}")
                next_seq += 1
                heads[next_seq] = head
            if end_head is not None and end_head != head:
                fail(f"modified: {name} block {block_first} end head")
        close = db.execute("SELECT count, end_head FROM close").fetchone()
        db.close()
        seg = {"index": index, "first_seq": first_seq, "count": len(leaves), "end_head": head,
               "root": merkle_root(leaves), "meta": (first_seq, prev_head, prev_file_hash),
               "file_hash": None}
        if close is not None:
            if close[0] != len(leaves) or close[1] != head:
                fail(f"modified: {name} close row does not match the records")
            with open(path, "rb") as f:
                seg["file_hash"] = derive("daftari v1 segment file", f.read())
        elif pos != len(names) - 1:
            fail(f"deleted: {name} is not the newest and has no close row")
        segments[index] = seg
        prev = seg
    return segments, heads, next_seq, head


class Cur:
    def __init__(self, b):
        self.b, self.pos = b, 0

    def take(self, n):
        if self.pos + n > len(self.b):
            raise ValueError("truncated seal")
        self.pos += n
        return self.b[self.pos - n : self.pos]

    def u(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]


def decode_seal(body):
    c = Cur(body)
    if c.u(">B") != 1:
        raise ValueError("seal version")
    kind = c.u(">B")
    origin = c.take(c.u(">I")).decode()
    s = {"kind": kind, "origin": origin, "epoch": c.u(">Q"), "first_seq": c.u(">Q"),
         "count": c.u(">Q"), "head": c.take(32), "prev": c.take(32), "wall_ns": c.u(">q"),
         "next_pk": c.take(32)}
    if kind == 1:
        s["close"] = {"index": c.u(">Q"), "first_seq": c.u(">Q"), "count": c.u(">Q"),
                      "end_head": c.take(32), "root": c.take(32), "file_hash": c.take(32)}
    elif kind == 2:
        s["pruned"] = [(c.u(">Q"), c.take(32)) for _ in range(c.u(">I"))]
    elif kind not in (0, 3):
        raise ValueError("seal kind")
    if c.pos != len(body):
        raise ValueError("bytes after the seal")
    return s


def read_seals(data):
    path = os.path.join(data, "seals.sqlite")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute("SELECT n, epoch, kind, body, sig FROM seals ORDER BY n").fetchall()
    db.close()
    return rows


def check_seals(rows, pk0, heads, next_seq):
    """The chain of seals under the pinned key; returns (seals decoded, digest by epoch)."""
    pk, prev, first, out, digests = pk0, b"\0" * 32, 0, [], {}
    for want_n, (n, epoch, kind, body, sig) in enumerate(rows, start=1):
        try:
            s = decode_seal(body)
        except ValueError as e:
            fail(f"seal_chain: seal row {n}: {e}")
        if n != want_n or s["epoch"] != want_n - 1 or epoch != s["epoch"] or kind != s["kind"]:
            fail(f"seal_chain: seal row {n} is not epoch {want_n - 1}")
        try:
            nacl.signing.VerifyKey(pk).verify(SEAL_PREFIX + body, sig)
        except (nacl.exceptions.BadSignatureError, ValueError):
            fail(f"seal_chain: epoch {s['epoch']}: signature")
        if s["prev"] != prev or s["first_seq"] != first:
            fail(f"seal_chain: epoch {s['epoch']}: link or range")
        end = s["first_seq"] + s["count"]
        if end > next_seq:
            fail(f"seal_chain: epoch {s['epoch']} seals records the ledger no longer has")
        if end in heads and heads[end] != s["head"]:
            fail(f"seal_chain: epoch {s['epoch']}: sealed head differs from the ledger's")
        prev = derive("daftari v1 seal digest", body, sig)
        digests[s["epoch"]] = prev
        pk, first = s["next_pk"], end
        out.append((s, prev))
    return out, digests


def check_closes(seals, segments, retention_s, now_ns):
    closes = {}
    for s, digest in seals:
        if "close" in s:
            c = s["close"]
            if c["index"] in closes or (closes and c["index"] != max(closes) + 1):
                fail(f"seal_chain: close seal of segment {c['index']} out of order")
            closes[c["index"]] = (c, digest, s["wall_ns"])
            seg = segments.get(c["index"])
            if seg is not None:
                want = (seg["first_seq"], seg["count"], seg["end_head"], seg["root"],
                        seg["file_hash"])
                got = (c["first_seq"], c["count"], c["end_head"], c["root"], c["file_hash"])
                if want != got:
                    fail(f"seal_chain: segment {c['index']} differs from its close seal")
    pruned = []
    for s, _ in seals:
        for index, close_digest in s.get("pruned", []):
            if index not in closes or closes[index][1] != close_digest:
                fail(f"seal_chain: prune seal names segment {index} without its close seal")
            kept_ns = min(s["wall_ns"], now_ns) - closes[index][2]
            if retention_s is not None and kept_ns < retention_s * 10**9:
                fail(f"segment_missing: segment {index} removed before the retention period")
            pruned.append(index)
    oldest = min(segments) if segments else 0
    if pruned != list(range(len(pruned))) or oldest != len(pruned):
        fail(f"segment_missing: segments before {oldest} are not all under prune seals")
    if pruned and segments:
        c = closes[pruned[-1]][0]
        want = (c["first_seq"] + c["count"], c["end_head"], c["file_hash"])
        if segments[oldest]["meta"] != want:
            fail(f"modified: segment {oldest} does not continue the last removed one")
    return pruned


def parse_vkey(vkey):
    name, key_id, key = vkey.split("+", 2)
    raw = base64.b64decode(key)
    if len(raw) != 33 or raw[0] != 1:
        fail("cannot run: not an Ed25519 verifier key")
    pk = raw[1:]
    want = hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]
    if bytes.fromhex(key_id) != want:
        fail("cannot run: the key id does not match the key")
    return name, want, pk


def notes_in(text):
    notes, cur = [], []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == "daftari-checkpoint/v1" and cur:
            notes.append("".join(cur))
            cur = []
        cur.append(line)
    if "".join(cur).strip():
        notes.append("".join(cur))
    return notes


def check_anchors(vkey, files, rows, heads, next_seq):
    name, key_id, pk = parse_vkey(vkey)
    digests = {epoch: derive("daftari v1 seal digest", body, sig)
               for _, epoch, _, body, sig in rows}
    count = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            for note in notes_in(f.read()):
                body, _, sigs = note.partition("\n\n")
                body += "\n"
                lines = body.split("\n")
                sig = next((base64.b64decode(line.split(" ", 2)[2]) for line in sigs.splitlines()
                            if line.startswith(f"\u2014 {name} ")), None)
                if sig is None or sig[:4] != key_id:
                    fail("anchor: a note without a signature by the verifier key")
                try:
                    nacl.signing.VerifyKey(pk).verify(body.encode(), sig[4:])
                except nacl.exceptions.BadSignatureError:
                    fail("anchor: a note whose signature does not verify")
                size, head = int(lines[2]), base64.b64decode(lines[3])
                epoch, seal = int(lines[4].split(" ")[1]), base64.b64decode(lines[5].split(" ")[1])
                if size > next_seq:
                    fail(f"anchor: ledger size (truncated): an anchor saw {size}")
                if size in heads and heads[size] != head:
                    fail(f"anchor: head at anchored size {size}")
                if digests.get(epoch) != seal:
                    fail(f"anchor: seal of anchored epoch {epoch}")
                count += 1
    return count


def main(argv):
    data, opts = argv[0], dict(zip(argv[1::2], argv[2::2]))
    segments, heads, next_seq, head = walk_segments(data)
    rows = read_seals(data)
    if not segments and rows:
        fail("segment_missing: no segment file is left under the seals")
    if not segments:
        print("cannot run: no segments")
        sys.exit(2)
    if "--pubkey" in opts:
        seals, _ = check_seals(rows, base64.b64decode(opts["--pubkey"]), heads, next_seq)
        retention = opts.get("--retention")
        now_ns = time.time_ns()
        check_closes(seals, segments, int(retention) if retention else None, now_ns)
    elif min(segments) != 0:
        if any(kind == 2 for _, _, kind, _, _ in rows):
            print("inconclusive: segments removed under prune seals; pass --pubkey")
            sys.exit(2)
        fail("segment_missing: segment 0")
    anchors = 0
    if "--vkey" in opts:
        anchors = check_anchors(opts["--vkey"], [opts["--anchors"]], rows, heads, next_seq)
    print(f"intact records {next_seq} head {head.hex()} seals {len(rows)} anchors {anchors}")


if __name__ == "__main__":
    main(sys.argv[1:])
