-- Juries: human jurors score a competition's entries in rounds, beside the model; organisers
-- override scores; every such change is written to an append-only audit log.
-- Existing competitions are untouched: they simply have no jurors, rounds or overrides.

-- A juror (or a study's rater). `key_id` is the juror's own `competition:<slug>:judge` key;
-- NULL for a juror known only from an imported score sheet.
CREATE TABLE jurors (
    id             uuid        PRIMARY KEY,
    competition_id uuid        NOT NULL REFERENCES competitions (id),
    name           text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key_id         uuid        UNIQUE REFERENCES api_keys (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (competition_id, name)
);

-- A round of judging on its own integer scale. A shortlist round holds the top N of an earlier
-- round, by the model's score or the panel's.
CREATE TABLE rounds (
    id                       uuid        PRIMARY KEY,
    competition_id           uuid        NOT NULL REFERENCES competitions (id),
    name                     text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scale_min                integer     NOT NULL,
    scale_max                integer     NOT NULL,
    blind                    boolean     NOT NULL,
    shortlist_from           uuid        REFERENCES rounds (id),
    shortlist_by             text        CHECK (shortlist_by IN ('model', 'panel')),
    shortlist_top            integer     CHECK (shortlist_top > 0),
    -- The model version whose scores made a model shortlist.
    shortlist_model_version  text,
    closed_at                timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (competition_id, name),
    CHECK (scale_min < scale_max AND scale_max - scale_min <= 1000),
    CHECK ((shortlist_from IS NULL) = (shortlist_by IS NULL) AND (shortlist_by IS NULL) = (shortlist_top IS NULL))
);

-- The entries a round holds, fixed when it is created.
CREATE TABLE round_entries (
    round_id      uuid NOT NULL REFERENCES rounds (id),
    submission_id uuid NOT NULL REFERENCES submissions (id),
    PRIMARY KEY (round_id, submission_id)
);

-- One juror's score of one entry in one round (the latest; changes are in audit_log). A
-- declared conflict of interest may come without a score and is left out of every figure.
CREATE TABLE juror_scores (
    round_id      uuid             NOT NULL,
    submission_id uuid             NOT NULL,
    juror_id      uuid             NOT NULL REFERENCES jurors (id),
    score         double precision,
    originality   double precision,
    color         double precision,
    texture       double precision,
    composition   double precision,
    content       double precision,
    note          text             CHECK (length(note) <= 4000),
    conflict      boolean          NOT NULL DEFAULT false,
    updated_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, submission_id, juror_id),
    FOREIGN KEY (round_id, submission_id) REFERENCES round_entries (round_id, submission_id),
    CHECK (conflict OR score IS NOT NULL),
    CHECK ((originality IS NULL) = (color IS NULL) AND (color IS NULL) = (texture IS NULL)
           AND (texture IS NULL) = (composition IS NULL) AND (composition IS NULL) = (content IS NULL))
);

CREATE INDEX juror_scores_juror ON juror_scores (juror_id, round_id);

-- An organiser's score for an entry, on the model's 1–100 scale, in place of the model's.
CREATE TABLE overrides (
    submission_id uuid        PRIMARY KEY REFERENCES submissions (id),
    score         real        NOT NULL CHECK (score BETWEEN 1 AND 100),
    reason        text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    key_id        uuid        REFERENCES api_keys (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Who changed what, when, from what to what, and why. Append-only: the trigger below refuses
-- every UPDATE, DELETE and TRUNCATE, whoever asks.
CREATE TABLE audit_log (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    competition_id uuid        NOT NULL REFERENCES competitions (id),
    at             timestamptz NOT NULL DEFAULT now(),
    key_id         uuid        REFERENCES api_keys (id),
    key_name       text,
    action         text        NOT NULL,
    subject        jsonb       NOT NULL,
    old            jsonb,
    new            jsonb,
    reason         text
);

CREATE INDEX audit_log_competition ON audit_log (competition_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
