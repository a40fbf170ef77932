-- A competition: the unit that submissions, the leaderboard, progress and exports belong to.
CREATE TABLE competitions (
    id             uuid        PRIMARY KEY,
    slug           text        NOT NULL UNIQUE,
    title          text        NOT NULL,
    -- Weights of the five rubric scores in the leaderboard score; NULL ranks by the model's
    -- overall score.
    rubric_weights jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
