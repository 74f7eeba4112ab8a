-- The issuer's records (bizcred-issuer, PostgreSQL storage). Any number of issuer instances
-- share one database; every rule that keeps them one issuer is a constraint here or a
-- conditional statement in issuer/src/store/pg.rs.
--
-- Text keys are compared byte by byte (COLLATE "C"): listings come in the order the embedded
-- store gives them, whatever the server's locale. Records whose fields no statement tests are
-- kept whole as the JSON bytes the embedded store writes (body); columns beside a body are
-- written from the same record in the same statement.

-- Named values: the DID and its log, key numbers, markers.
CREATE TABLE meta (
    key TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Applications. version grows with every write: a compare-and-swap updates the row only at the
-- version it read. Applications awaiting a presentation are found by creation time (sweep).
CREATE TABLE applications (
    id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT NOT NULL,
    created BIGINT NOT NULL,
    version BIGINT NOT NULL CHECK (version > 0),
    body BYTEA NOT NULL
);
CREATE INDEX applications_pending ON applications (created, id)
    WHERE status = 'awaiting_prerequisites';

-- Credential offers with their pre-authorized codes (SHA-256, hex). A code is redeemed by one
-- conditional UPDATE (NOT used AND not expired): once, across every instance.
CREATE TABLE offers (
    id TEXT COLLATE "C" PRIMARY KEY,
    application_id TEXT NOT NULL,
    configuration_id TEXT NOT NULL,
    code_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    tx_hash TEXT NOT NULL,
    expires BIGINT NOT NULL,
    attempts BIGINT NOT NULL CHECK (attempts >= 0),
    used BOOLEAN NOT NULL,
    offer BYTEA NOT NULL
);
CREATE INDEX offers_expires ON offers (expires);
CREATE INDEX offers_used ON offers (id) WHERE used;

-- Access tokens (SHA-256 of the token, hex). Used for one issuance by one conditional UPDATE.
CREATE TABLE access_tokens (
    hash TEXT COLLATE "C" PRIMARY KEY,
    application_id TEXT NOT NULL,
    configuration_id TEXT NOT NULL,
    expires BIGINT NOT NULL,
    used BOOLEAN NOT NULL,
    credential_id TEXT,
    reissues BIGINT NOT NULL CHECK (reissues >= 0)
);
CREATE INDEX access_tokens_expires ON access_tokens (expires);

-- c_nonces, each taken once by DELETE ... RETURNING.
CREATE TABLE nonces (
    nonce TEXT COLLATE "C" PRIMARY KEY,
    expires BIGINT NOT NULL
);
CREATE INDEX nonces_expires ON nonces (expires);

-- Status lists: size and allocation count (changed in the issuance's transaction).
CREATE TABLE status_lists (
    list BIGINT PRIMARY KEY CHECK (list >= 1 AND list <= 4294967295),
    size BIGINT NOT NULL CHECK (size > 0),
    allocated BIGINT NOT NULL CHECK (allocated >= 0 AND allocated <= size)
);

-- The list new indices are drawn in (one row).
CREATE TABLE status_open (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    list BIGINT NOT NULL REFERENCES status_lists (list)
);

-- Each list's packed 2-bit entries, changed in the transaction that changes a status (the
-- row is locked meanwhile); version grows with every change.
CREATE TABLE status_bits (
    list BIGINT PRIMARY KEY REFERENCES status_lists (list),
    version BIGINT NOT NULL CHECK (version >= 0),
    bits BYTEA NOT NULL
);

-- Each list's newest signed token: replaced only by one with a larger iat.
CREATE TABLE status_signed (
    list BIGINT PRIMARY KEY REFERENCES status_lists (list),
    iat BIGINT NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 0),
    kid TEXT NOT NULL,
    token TEXT NOT NULL
);

-- Issued credentials. The unique (status_list, status_idx) is the index allocation: an index
-- is never given to two credentials, whichever instance issues them.
CREATE TABLE credentials (
    id TEXT COLLATE "C" PRIMARY KEY,
    application_id TEXT NOT NULL,
    status_list BIGINT NOT NULL REFERENCES status_lists (list),
    status_idx BIGINT NOT NULL CHECK (status_idx >= 0),
    status TEXT NOT NULL,
    body BYTEA NOT NULL,
    UNIQUE (status_list, status_idx)
);

-- The hash-chained audit log: entries at 0, 1, 2, ... appended under one transaction-scoped
-- advisory lock (the issuer's AUDIT_LOCK) after reading the last entry's hash in the same
-- transaction; the primary key refuses a second entry at a sequence number.
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY CHECK (seq >= 0),
    hash TEXT NOT NULL,
    entry BYTEA NOT NULL
);
