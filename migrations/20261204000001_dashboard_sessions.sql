-- The dashboard's sign-in sessions: an API key typed into the sign-in page becomes a session
-- cookie. Only the SHA-256 of the cookie's token is stored. A session dies with its key
-- (revoked, expired or deleted: the lookup joins the live keys) and at `expires_at`.
CREATE TABLE dashboard_sessions (
    token_sha256 bytea       PRIMARY KEY CHECK (length(token_sha256) = 32),
    key_id       uuid        NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    -- The synchronizer token every form of this session carries.
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);
CREATE INDEX dashboard_sessions_key ON dashboard_sessions (key_id);
