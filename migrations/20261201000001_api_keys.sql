-- API keys: a random 256-bit token shown once; only its SHA-256 is kept. A token is looked up
-- by its hash (the hash of a high-entropy secret reveals nothing useful, so no slow hash is
-- needed). Scopes: `admin`, or `competition:<slug>:submit|read|judge`.
CREATE TABLE api_keys (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_sha256  bytea       NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    scopes        text[]      NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 64),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    -- Updated at most once a minute per key, so reads do not turn into a write per request.
    last_used_at  timestamptz,
    -- The key that created it (NULL: `easel keys create`).
    created_by    uuid        REFERENCES api_keys (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Public results are opt-in: without it, reading a competition needs a key.
ALTER TABLE competitions ADD COLUMN public_results boolean NOT NULL DEFAULT false;
