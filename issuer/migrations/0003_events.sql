-- The issuer's event log (served signed at GET /events for other agencies to poll): every
-- credential issued, suspended, revoked or reinstated, with identifiers of the business only.
-- An event is inserted in the transaction that records its issuance or status change; its
-- position is taken under the advisory lock EVENT_LOCK (max(seq) + 1, held to the commit), so
-- positions run from 1 without gaps, in commit order, across every instance. The body is the
-- JSON bytes the embedded store writes.
CREATE TABLE events (
    seq BIGINT PRIMARY KEY CHECK (seq >= 1),
    credential_id TEXT COLLATE "C" NOT NULL REFERENCES credentials (id),
    kind TEXT NOT NULL,
    body BYTEA NOT NULL
);
