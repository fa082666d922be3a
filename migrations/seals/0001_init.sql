-- The seal chain, version 1. Append-only and never pruned: one row per seal, in order.
-- body: the SEAL_V1 bytes (see VERIFY.md); sig: the Ed25519 signature by the epoch's key.
-- epoch and kind repeat what body says, for lookups; verify checks them against body.
CREATE TABLE seals (
    n      INTEGER PRIMARY KEY,
    epoch  INTEGER NOT NULL,
    kind   INTEGER NOT NULL,
    body   BLOB    NOT NULL,
    sig    BLOB    NOT NULL
) STRICT;

CREATE UNIQUE INDEX seals_by_epoch ON seals (epoch);
