-- Transactional outbox: a job is written in the same transaction as its submission, and a relay
-- publishes it to RabbitMQ (with publisher confirms) and deletes it. A crash between the commit
-- and the publish leaves the row here, so it is published later; a crash between the publish and
-- the delete publishes it twice, which the worker absorbs (results are unique per submission and
-- model version).
CREATE TABLE outbox (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    submission_id uuid        NOT NULL REFERENCES submissions (id),
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
