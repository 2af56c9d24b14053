-- Roles and databases of a team install (docker/compose.yaml). The postgres image runs this
-- once, as the superuser, when it initialises an empty data volume (/docker-entrypoint-initdb.d);
-- it does not run again on an existing volume. Passwords come from the container's environment
-- through psql's \getenv (PostgreSQL 15), never from this file.
--
--   ttscale         owns database ttscale: migrations (`ttscale db upgrade`), sweeps, workers
--   ttscale_reader  read-only on ttscale (the dashboard, analysts): docs/store.md, "Read-only access"
--   prefect         owns database prefect (the Prefect server's state)
--   mlflow          owns database mlflow (the MLflow tracking server's runs and metrics)
\set ON_ERROR_STOP on
\getenv ttscale_password DB_TTSCALE_PASSWORD
\getenv reader_password DB_READER_PASSWORD
\getenv prefect_password DB_PREFECT_PASSWORD
\getenv mlflow_password DB_MLFLOW_PASSWORD

CREATE ROLE ttscale LOGIN PASSWORD :'ttscale_password';
CREATE DATABASE ttscale OWNER ttscale;
CREATE ROLE prefect LOGIN PASSWORD :'prefect_password';
CREATE DATABASE prefect OWNER prefect;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
-- Each role reaches its own database only (PUBLIC may connect to every database by default).
REVOKE CONNECT, TEMPORARY ON DATABASE ttscale, prefect, mlflow FROM PUBLIC;

-- Prefect's migrations create pg_trgm (trusted, so its owner could too); done here once.
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The read-only role of docs/store.md. The statements are the same; run here as the superuser,
-- the default privileges name the role that runs the migrations (FOR ROLE ttscale), so every
-- table a later migration creates is readable too.
\connect ttscale
CREATE ROLE ttscale_reader LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE ttscale TO ttscale_reader;
GRANT USAGE ON SCHEMA public TO ttscale_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO ttscale_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE ttscale IN SCHEMA public GRANT SELECT ON TABLES TO ttscale_reader;
ALTER ROLE ttscale_reader SET default_transaction_read_only = on;
