-- Segment schema, version 2: compressed blocks with one head each, derived columns and a
-- token filter. Applied on top of version 1; block_streams, streams, meta and close are
-- unchanged. VERIFY.md gives every field byte for byte.
DROP TABLE blocks;

-- No index by stream while the segment is open: each commit would rewrite one index page per
-- stream it touches, which cost five times the bytes the records themselves take to write
-- (BENCHMARKS.md). The index is built once, in the transaction that closes the segment
-- (0002_close.sql). Until then queries find blocks by time: a commit's rows land at the end of
-- this index, one or two pages, and recent ranges (alerts, live dashboards) read only theirs.
DROP INDEX block_streams_by_stream;
CREATE INDEX block_streams_by_time ON block_streams (max_ts_ns);

-- The records, in blocks of consecutive sequence numbers. A block never spans two commits.
-- records:   one zstd frame (with its content checksum) of count x (u32 length, ENTRY_V1
--            bytes), in sequence order: the source of truth, exactly v1's records once
--            decompressed; raw_bytes is that decompressed length.
-- end_head:  the chain head after the block's last record; the heads before it are
--            recomputed from the records.
-- summary:   the records summed by stream and detected level (counts and line bytes), with
--            the block's level dictionary and metadata names; raw, a few hundred bytes, so
--            that a query counting a block that lies inside one of its steps reads no more.
-- columns:   one zstd frame of per-record columns (timestamps, stream ids, line lengths,
--            detected levels) that queries read instead of the records.
-- tokens:    a bloom filter over the words of the lines and metadata values.
-- Every column but records is derived from the records and checked by verify. The small
-- ones come first so that reading them never walks the records' overflow pages.
CREATE TABLE blocks (
    first_seq  INTEGER PRIMARY KEY,
    count      INTEGER NOT NULL,
    recv_ns    INTEGER NOT NULL,
    min_ts_ns  INTEGER NOT NULL,
    max_ts_ns  INTEGER NOT NULL,
    raw_bytes  INTEGER NOT NULL,
    end_head   BLOB    NOT NULL,
    summary    BLOB    NOT NULL,
    columns    BLOB    NOT NULL,
    tokens     BLOB    NOT NULL,
    records    BLOB    NOT NULL
) STRICT;
