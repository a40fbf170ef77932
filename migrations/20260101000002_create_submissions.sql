-- One painting entered in a competition.
CREATE TABLE submissions (
    id             uuid        PRIMARY KEY,
    competition_id uuid        NOT NULL REFERENCES competitions (id),
    -- The competition's own entry id; repeating it returns the existing submission.
    external_id    text,
    -- Content-addressed object key (sha256 of the bytes) in the images bucket.
    image_key      text        NOT NULL,
    image_sha256   text        NOT NULL,
    image_format   text        NOT NULL,
    image_bytes    bigint      NOT NULL,
    width          integer     NOT NULL,
    height         integer     NOT NULL,
    description    text,
    status         text        NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'processing', 'done', 'failed')),
    failure_code   text,
    failure_reason text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (competition_id, external_id)
);

-- Progress counts per competition and status.
CREATE INDEX submissions_competition_status ON submissions (competition_id, status);
-- Exports walk a competition's submissions in creation order.
CREATE INDEX submissions_competition_created ON submissions (competition_id, created_at, id);
