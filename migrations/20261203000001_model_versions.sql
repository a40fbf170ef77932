-- Model versions side by side: a competition pins the version its reads default to, workers
-- say which versions they serve, a rescore re-queues a competition for a new version (the old
-- results stay: results are unique per submission and model version; the audit log records
-- who asked), and a shadow checkpoint's results are kept apart. Near-duplicate entries: a
-- perceptual hash per submission. Additive only.

-- The model version every read of the competition defaults to (`PATCH /v1/competitions/{slug}`);
-- NULL: the newest version that scored it (shadow results never count).
ALTER TABLE competitions ADD COLUMN model_version text;

-- A result of a worker's shadow checkpoint (`worker.shadow`): stored under its own version, never
-- the default of a read, never what marks a submission done. A primary result of the same
-- submission and version later turns it into a normal one (same image, version and settings give
-- the same scores).
ALTER TABLE results ADD COLUMN shadow boolean NOT NULL DEFAULT false;

-- Which model versions the workers serve: each worker writes its row when it starts and every
-- `worker.heartbeat_seconds`; a rescore targets the version that the workers seen lately serve.
CREATE TABLE workers (
    name           text        PRIMARY KEY,
    model_version  text        NOT NULL,
    shadow_version text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    seen_at        timestamptz NOT NULL DEFAULT now()
);

-- The perceptual hash of the decoded image (`easel_imaging::phash`, near-duplicate entries; NULL
-- for submissions made before it existed).
ALTER TABLE submissions ADD COLUMN phash bytea;
