-- Public credentials: bulk issuance of one public certificate per business from the
-- registry's extract (bizcred-issuer bulk). A business's current public credential, and the
-- feed of every public credential in the order issued (served at /public/credentials).
-- Feed positions are taken under the advisory lock PUBLIC_LOCK, in the recording transaction.
CREATE TABLE public_records (
    subject TEXT COLLATE "C" PRIMARY KEY,
    credential_id TEXT COLLATE "C" NOT NULL REFERENCES credentials (id),
    content_sha256 TEXT NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 1),
    issued_at BIGINT NOT NULL
);

CREATE TABLE public_feed (
    seq BIGINT PRIMARY KEY CHECK (seq >= 1),
    credential_id TEXT COLLATE "C" NOT NULL REFERENCES credentials (id),
    subject TEXT COLLATE "C" NOT NULL,
    credential TEXT NOT NULL
);
