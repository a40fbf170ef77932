-- How many times a worker has taken the submission into a batch (claimed it). Jobs handed back
-- unstarted (prefetched by a worker that was drained, stopped or lost its connection) do not
-- count, unlike RabbitMQ's delivery count; `worker.max_attempts` is checked against this.
ALTER TABLE submissions ADD COLUMN attempts integer NOT NULL DEFAULT 0;
