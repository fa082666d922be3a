"""Writes tests/golden/alloy-push.bin: a push body built the way Grafana Alloy's loki.write
builds one (protobuf PushRequest, raw/block snappy, labels rendered sorted with Go's
strconv.Quote escaping), from the field numbers of Loki's push.proto alone, and
tests/golden/alloy-push.json: what the server must store from it.

Independent of daftari's own encoder. Regenerate with:
    python3 -m venv /tmp/v && /tmp/v/bin/pip install cramjam && /tmp/v/bin/python tests/spec/alloy_push.py
"""
import json
import pathlib

import cramjam


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def go_quote(s):
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def label_string(labels):
    return "{" + ", ".join(f"{k}={go_quote(v)}" for k, v in sorted(labels.items())) + "}"


STREAMS = [
    {
        "labels": {"job": "sshd", "host": "bastion-1", "unit": "ssh.service"},
        "entries": [
            (1754400000123456789, "Failed password for root from 203.0.113.9 port 52144 ssh2", {}),
            (1754400000000000001, "Accepted publickey for ops from 198.51.100.7 port 40022 ssh2",
             {"trace_id": "abc123", "src_ip": "198.51.100.7"}),
        ],
    },
    {
        "labels": {"job": "sudo", "host": "bastion-1", "note": 'quote " backslash \\ tab \t ünïcödé'},
        "entries": [
            (1754400001000000000, "ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/id", {}),
            (1754400001000000000, "multi\nline \u00e9 entry \u2603", {"level": "info"}),
        ],
    },
    {
        "labels": {"job": "auditd", "host": "db-2"},
        "entries": [
            (1754399000000000000, 'type=EXECVE msg=audit(1754399000.000:42): argc=2 a0="cat" a1="/etc/shadow"', {}),
        ],
    },
]


def entry(ts_ns, line, meta):
    ts = field(1, 0, varint(ts_ns // 1_000_000_000)) + field(2, 0, varint(ts_ns % 1_000_000_000))
    body = field(1, 2, ts) + field(2, 2, line.encode())
    for k, v in meta.items():
        body += field(3, 2, field(1, 2, k.encode()) + field(2, 2, v.encode()))
    return body


def main():
    req = b""
    expected = []
    for i, s in enumerate(STREAMS):
        labels = label_string(s["labels"])
        body = field(1, 2, labels.encode())
        for e in s["entries"]:
            body += field(2, 2, entry(*e))
        body += field(3, 0, varint(0x9E3779B97F4A7C15 + i))  # Loki's internal hash: ignored
        req += field(1, 2, body)
        for ts, line, meta in s["entries"]:
            expected.append({
                "labels": dict(sorted(s["labels"].items())),
                "ts_ns": ts,
                "line": line,
                "metadata": dict(sorted(meta.items())),
            })
    here = pathlib.Path(__file__).resolve().parent.parent / "golden"
    (here / "alloy-push.bin").write_bytes(bytes(cramjam.snappy.compress_raw(req)))
    (here / "alloy-push.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
