-- The model's assessment of a submission. One row per submission and model version: a
-- redelivered job never makes a second row.
CREATE TABLE results (
    id             uuid        PRIMARY KEY,
    submission_id  uuid        NOT NULL REFERENCES submissions (id),
    -- Copied from the submission so the leaderboard is one index scan.
    competition_id uuid        NOT NULL REFERENCES competitions (id),
    model_version  text        NOT NULL,
    -- The leaderboard score: the rubric-weighted mean, or the overall score without weights.
    score          real        NOT NULL CHECK (score BETWEEN 1 AND 100),
    overall        real        NOT NULL CHECK (overall BETWEEN 1 AND 100),
    originality    real        NOT NULL CHECK (originality BETWEEN 1 AND 100),
    color          real        NOT NULL CHECK (color BETWEEN 1 AND 100),
    texture        real        NOT NULL CHECK (texture BETWEEN 1 AND 100),
    composition    real        NOT NULL CHECK (composition BETWEEN 1 AND 100),
    content        real        NOT NULL CHECK (content BETWEEN 1 AND 100),
    critique       text        NOT NULL,
    new_tokens     integer     NOT NULL,
    -- Per-stage wall-clock times in milliseconds (fetch, decode, vision, head, generate, batch).
    timings        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (submission_id, model_version)
);

-- Leaderboard: keyset pagination by (score, submission_id) within a competition and model.
CREATE INDEX results_leaderboard ON results (competition_id, model_version, score DESC, submission_id DESC);
-- The newest model version that scored a competition.
CREATE INDEX results_competition_created ON results (competition_id, created_at DESC);
