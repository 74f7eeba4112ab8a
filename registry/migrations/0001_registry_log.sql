-- The registry's log and named blobs (bizcred-registry, PostgreSQL storage).
--
-- log_entries: the append-only log, one row per entry (its canonical JSON bytes), at indices
-- 0, 1, 2, ... without gaps. Rows are only ever inserted, under the append lock, at the
-- log's size; the primary key refuses a second entry at an index even if that lock were
-- bypassed.
CREATE TABLE log_entries (
    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
    body BYTEA NOT NULL
);

-- blobs: named values the registry keeps beside the log (the latest status list of each URI).
-- version is taken under the append lock from one increasing counter, so a reader that has
-- seen every version up to v misses nothing by asking for version > v.
CREATE TABLE blobs (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    version BIGINT NOT NULL UNIQUE CHECK (version > 0)
);
