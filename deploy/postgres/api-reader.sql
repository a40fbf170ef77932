-- easel_api_reader: the role the api connects as (Secret easel-api-database, key url). The api
-- is the read side: with this role a fault or a break-in there cannot change submissions,
-- scores or keys. Idempotent; it sets the role's password each time it runs.
--
-- Applied after the migrations by the easel-migrate Job (deploy/k8s/base/migrate-job.yaml), as
-- the role of easel-database (the tables' owner), which needs CREATEROLE; or by hand:
--   EASEL_API_READER_PASSWORD=... psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/postgres/api-reader.sql
-- A write the api gains (beyond those below) must be granted here, column by column.

\getenv reader_password EASEL_API_READER_PASSWORD
\if :{?reader_password}
\else
\set reader_password ''
\endif
SELECT :'reader_password' = '' AS no_reader_password \gset
\if :no_reader_password
DO $$ BEGIN RAISE EXCEPTION 'EASEL_API_READER_PASSWORD is not set: the password of easel_api_reader'; END $$;
\endif

SELECT 'CREATE ROLE easel_api_reader'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'easel_api_reader') \gexec
ALTER ROLE easel_api_reader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'reader_password';

SELECT format('GRANT CONNECT ON DATABASE %I TO easel_api_reader', current_database()) \gexec
GRANT USAGE ON SCHEMA public TO easel_api_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO easel_api_reader;
-- Tables that later migrations create (as this same role) are readable at once.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO easel_api_reader;

-- The one write: when an API key was last used (at most once a minute per key; crates/core/src/auth).
SELECT 'GRANT UPDATE (last_used_at) ON api_keys TO easel_api_reader'
WHERE to_regclass('public.api_keys') IS NOT NULL \gexec

-- The dashboard's writes (services/api/src/dashboard): its sign-in sessions, and the scores
-- jurors give on its scoring page, each with its audit entry. Nothing else: no submission,
-- result, key, round or override.
SELECT 'GRANT INSERT, DELETE ON dashboard_sessions TO easel_api_reader'
WHERE to_regclass('public.dashboard_sessions') IS NOT NULL \gexec
SELECT 'GRANT INSERT, UPDATE (score, originality, color, texture, composition, content, note, conflict, updated_at) '
       'ON juror_scores TO easel_api_reader'
WHERE to_regclass('public.juror_scores') IS NOT NULL \gexec
SELECT 'GRANT INSERT ON audit_log TO easel_api_reader'
WHERE to_regclass('public.audit_log') IS NOT NULL \gexec
