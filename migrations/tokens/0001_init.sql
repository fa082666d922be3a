-- The token database: <data-dir>/tokens.sqlite, mode 0600.
-- Secrets are never stored; `hash` is blake3 keyed with <data-dir>/token.key.

CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('push', 'read')),
    hash          BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
    -- JSON object of label pairs forced onto every stream the token pushes.
    labels        TEXT    NOT NULL,
    -- When set, requests with this token must come over TLS with a client certificate
    -- whose common name or a DNS name equals it.
    cert_identity TEXT,
    created_ns    INTEGER NOT NULL,
    revoked_ns    INTEGER,
    last_used_ns  INTEGER
) STRICT;

-- A name belongs to one live token at a time; revoked tokens keep their rows.
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_ns IS NULL;

-- Token changes waiting to be appended to the ledger's {__daftari__="admin"} stream by the
-- running server; `seq` is set once the entry is durable there.
CREATE TABLE admin_events (
    id     INTEGER PRIMARY KEY,
    ts_ns  INTEGER NOT NULL,
    line   TEXT    NOT NULL,
    seq    INTEGER
) STRICT;
