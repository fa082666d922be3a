-- Version 2: segment-close and prune seals are looked up by kind when the sealer starts
-- (which segments are sealed, which were pruned); the chain itself is unchanged.
CREATE INDEX seals_by_kind ON seals (kind, n);
