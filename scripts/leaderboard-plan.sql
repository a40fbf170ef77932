-- The leaderboard query plan at 100,000 results, in a scratch database (lbbench, dropped at the
-- end): the index-ordered page, a single ORDER BY COALESCE(override, score) page, and the merged
-- page crates/core/src/db/results.rs::leaderboard runs. Run:
--   psql -h 127.0.0.1 -U postgres -f scripts/leaderboard-plan.sql | grep 'Execution Time'
DROP DATABASE IF EXISTS lbbench;
CREATE DATABASE lbbench;
\c lbbench
CREATE TABLE submissions (id uuid PRIMARY KEY, external_id text);
CREATE TABLE results (submission_id uuid, competition_id uuid, model_version text, score real, critique text);
CREATE TABLE overrides (submission_id uuid PRIMARY KEY, score real);
INSERT INTO submissions SELECT gen_random_uuid(), 'e' || g FROM generate_series(1,100000) g;
INSERT INTO results SELECT id, '00000000-0000-0000-0000-000000000001', 'v1', random()*99+1, repeat('x', 300) FROM submissions;
INSERT INTO overrides SELECT submission_id, 50 FROM results LIMIT 20;
CREATE INDEX results_leaderboard ON results (competition_id, model_version, score DESC, submission_id DESC);
ANALYZE;
EXPLAIN (ANALYZE, BUFFERS OFF, SUMMARY ON) SELECT r.submission_id, r.score FROM results r JOIN submissions s ON s.id = r.submission_id WHERE r.competition_id = '00000000-0000-0000-0000-000000000001' AND r.model_version = 'v1' ORDER BY r.score DESC, r.submission_id DESC LIMIT 51;
EXPLAIN (ANALYZE, BUFFERS OFF, SUMMARY ON) SELECT r.submission_id, COALESCE(o.score, r.score) FROM results r JOIN submissions s ON s.id = r.submission_id LEFT JOIN overrides o ON o.submission_id = r.submission_id WHERE r.competition_id = '00000000-0000-0000-0000-000000000001' AND r.model_version = 'v1' ORDER BY COALESCE(o.score, r.score) DESC, r.submission_id DESC LIMIT 51;
CREATE UNIQUE INDEX IF NOT EXISTS results_sub_version ON results (submission_id, model_version);
ANALYZE;
EXPLAIN (ANALYZE, SUMMARY ON) SELECT * FROM (
 (SELECT r.submission_id, r.score AS eff FROM results r
   WHERE r.competition_id = '00000000-0000-0000-0000-000000000001' AND r.model_version = 'v1'
     AND NOT EXISTS (SELECT 1 FROM overrides o WHERE o.submission_id = r.submission_id)
   ORDER BY r.score DESC, r.submission_id DESC LIMIT 51)
 UNION ALL
 (SELECT r.submission_id, o.score AS eff FROM overrides o JOIN results r ON r.submission_id = o.submission_id
   WHERE r.competition_id = '00000000-0000-0000-0000-000000000001' AND r.model_version = 'v1'
   ORDER BY o.score DESC, r.submission_id DESC LIMIT 51)
) page JOIN submissions s ON s.id = page.submission_id ORDER BY eff DESC, submission_id DESC LIMIT 51;
\c postgres
DROP DATABASE lbbench;
