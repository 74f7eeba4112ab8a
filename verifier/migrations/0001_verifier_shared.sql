-- What the instances of a verifier service share (bizcred-verifier, PostgreSQL storage).
-- Give the verifier a database of its own: the schema check refuses a database migrated for
-- another service.

-- pending_requests: requests waiting for the wallet's answer. A row is created under the
-- transaction-scoped advisory lock that bounds the count (max_pending across instances),
-- expired rows being deleted first. answering_at is set by the one conditional UPDATE that
-- takes the request for its answer (once, across instances); the row is deleted in the
-- transaction that keeps the outcome, or swept when it expires.
CREATE TABLE pending_requests (
    state TEXT PRIMARY KEY CHECK (length(state) BETWEEN 1 AND 64),
    nonce TEXT NOT NULL,
    client_id TEXT NOT NULL,
    response_uri TEXT NOT NULL,
    policy TEXT,
    expires_at BIGINT NOT NULL,
    answering_at BIGINT
);
CREATE INDEX pending_requests_expiry ON pending_requests (expires_at);

-- receipts: every signed receipt (digests, no personal data), the history. id is AT-STATE,
-- as the data directory names its receipt files; the history pages by (at, state).
CREATE TABLE receipts (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    state TEXT NOT NULL UNIQUE,
    policy TEXT NOT NULL,
    verdict TEXT NOT NULL,
    receipt TEXT NOT NULL
);
CREATE INDEX receipts_history ON receipts (at DESC, state DESC);

-- outcomes: the full report of a transaction (it holds the disclosed claims), readable by
-- every instance; at most max_results rows, the oldest (lowest seq) deleted first.
CREATE TABLE outcomes (
    seq BIGSERIAL PRIMARY KEY,
    state TEXT NOT NULL UNIQUE REFERENCES receipts (state) ON DELETE CASCADE,
    report TEXT NOT NULL
);
