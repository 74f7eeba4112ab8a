-- The public business repository's records (bizcred-repository, PostgreSQL storage). Any
-- number of repository instances share one database; each keeps its own trust directory and
-- search index (derived data, rebuilt from these tables by `bizcred-repository reindex`).
--
-- Text keys are compared byte by byte (COLLATE "C"): listings come in the order the embedded
-- store gives them, whatever the server's locale. Status list indices and feed positions are
-- unsigned 64-bit numbers (NUMERIC(20, 0)).

-- Every public credential held, by its id (SHA-256 of its text, hex). body is the record as
-- the embedded store writes it (JSON); the columns beside it are written from the same record
-- in the same statement.
-- Every write of a record takes the next number of records_changed (writes are serialized
-- under an advisory lock, so numbers are in commit order): an instance follows the others'
-- writes (`changed > its cursor`) to keep its own search index current.
CREATE SEQUENCE records_changed;
CREATE TABLE records (
    id TEXT COLLATE "C" PRIMARY KEY,
    changed BIGINT NOT NULL DEFAULT nextval('records_changed'),
    subject TEXT COLLATE "C" NOT NULL,
    issued_at BIGINT NOT NULL,
    status_uri TEXT COLLATE "C" NOT NULL,
    status_idx NUMERIC(20, 0) NOT NULL CHECK (status_idx >= 0),
    body JSON NOT NULL
);
-- A business's credentials in time order, and every subject once (index only).
CREATE INDEX records_subject ON records (subject, issued_at, id);
-- What changed after an instance's cursor.
CREATE INDEX records_changed_at ON records (changed);
-- What a newer status list changes, in index order.
CREATE INDEX records_status ON records (status_uri, status_idx, id);

-- The last position taken from each issuer's public feed.
CREATE TABLE feed_cursors (
    feed TEXT COLLATE "C" PRIMARY KEY,
    position NUMERIC(20, 0) NOT NULL CHECK (position >= 0)
);

-- The iat of each status list as last applied (it only moves forward).
CREATE TABLE status_lists (
    uri TEXT COLLATE "C" PRIMARY KEY,
    iat BIGINT NOT NULL
);
