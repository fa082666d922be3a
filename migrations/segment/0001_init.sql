-- Segment schema, version 1. A segment file holds a contiguous range of the ledger.
-- verify compares a segment's sqlite_master with the result of these statements exactly:
-- any extra table, index, trigger or view, or any changed definition, is reported.
-- Every stored value is either a hashed record (inside blocks.records), or cross-checked
-- against the records, the chain, or a neighbouring segment.

-- One row: where this segment sits in the log and how it links to the one before.
CREATE TABLE meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version  INTEGER NOT NULL,
    origin          TEXT    NOT NULL,
    log_id          BLOB    NOT NULL,
    segment_index   INTEGER NOT NULL,
    first_seq       INTEGER NOT NULL,
    prev_head       BLOB    NOT NULL,
    prev_file_hash  BLOB    NOT NULL,
    prev_seal       BLOB    NOT NULL
) STRICT;

-- Stream label sets of this segment, as the exact labels section of the records.
CREATE TABLE streams (
    id      INTEGER PRIMARY KEY,
    labels  BLOB NOT NULL UNIQUE
) STRICT;

-- The records, in blocks of consecutive sequence numbers. A block never spans two commits.
-- records: count x (u32 length, ENTRY_V1 bytes), in sequence order: the source of truth.
-- heads:   count x 32 bytes, the chain head after each record.
-- The other columns are derived from the records and checked by verify.
CREATE TABLE blocks (
    first_seq  INTEGER PRIMARY KEY,
    count      INTEGER NOT NULL,
    recv_ns    INTEGER NOT NULL,
    min_ts_ns  INTEGER NOT NULL,
    max_ts_ns  INTEGER NOT NULL,
    records    BLOB    NOT NULL,
    heads      BLOB    NOT NULL
) STRICT;

-- Which streams each block holds, with their count and time span: the index queries use
-- to find a stream's records in a time range. Derived from the records; verify checks it.
CREATE TABLE block_streams (
    first_seq  INTEGER NOT NULL,
    stream_id  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    min_ts_ns  INTEGER NOT NULL,
    max_ts_ns  INTEGER NOT NULL,
    PRIMARY KEY (first_seq, stream_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX block_streams_by_stream ON block_streams (stream_id, max_ts_ns);

-- Written once, in the transaction that closes the segment; never present in the open one.
CREATE TABLE close (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    count     INTEGER NOT NULL,
    end_head  BLOB    NOT NULL
) STRICT;
