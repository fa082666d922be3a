-- Segment schema, version 2: what the transaction that writes the close row adds. A closed v2
-- segment has exactly the objects of 0001 and 0002 plus these; an open one has none of them.
CREATE INDEX block_streams_by_stream ON block_streams (stream_id, max_ts_ns);
