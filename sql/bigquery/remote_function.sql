-- =============================================================================
-- snowgate as a BigQuery remote function: BigQuery -> Cloud Run (snowgate) -> provider
-- =============================================================================
--
-- What this script sets up, in order:
--   1. (Google Cloud, outside BigQuery) snowgate on Cloud Run, invokable only
--      by principals holding roles/run.invoker.
--   2. A CLOUD_RESOURCE connection, whose service account BigQuery calls
--      Cloud Run as, and the Invoker role for that account.
--   3. The remote function resolve_location(id STRING) RETURNS JSON, with
--      the shared secret in its user_defined_context.
--   4. Who may call it, a smoke test, and examples.
--
-- Not run against a live Google Cloud project or BigQuery: every statement
-- and command here follows Google's documentation, and the gateway side is
-- tested in process (gateway/bigquery_test.go), but none of it has met the
-- real BigQuery. Check each step's output as you go.
--
-- Run the gcloud and bq commands as a user who may enable services, deploy
-- to Cloud Run, create service accounts, secrets and connections and grant
-- IAM roles in <project_id>; run the SQL in the BigQuery console (or
-- bq query) as a user who may create datasets and functions there and use
-- the connection (roles/bigquery.connectionAdmin on it, or project-wide).
--
-- Placeholders in angle brackets: replace every one before running.
--   <project_id>            the Google Cloud project
--   <region>                Cloud Run region, e.g. us-central1
--   <location>              BigQuery location of the connection and the
--                           dataset, e.g. US or us-central1; the datasets the
--                           queries read must be in it too
--   <dataset>               dataset that holds the function
--   <image_url>             the snowgate image (see the Dockerfile) pushed to
--                           an Artifact Registry repository of <project_id>
--   <max_instances>         most Cloud Run instances allowed
--   <rate_per_instance>     the provider's limit divided by <max_instances>
--   <shared_secret>         a long random string (openssl rand -hex 32)
--   <provider_host>         the location provider's host name
--   <provider_token>        the provider's bearer token (Secret Manager only)
--   <analyst>               who may call the function: user:name@example.com,
--                           group:team@example.com or serviceAccount:...
--   <known_id>              an ID the provider knows, for the smoke test
--   <source_table>          a table with an ID column, for the examples
-- Values you read along the way (steps 1 and 2), not before:
--   <cloud_run_url>         https URL of the snowgate Cloud Run service
--   <connection_sa>         the connection's service account (serviceAccountId)
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Step 1 (Google Cloud side, not SQL): snowgate on Cloud Run.
-- -----------------------------------------------------------------------------
-- a) The services: Cloud Run, BigQuery's connections, Secret Manager.
--
--      gcloud services enable run.googleapis.com bigqueryconnection.googleapis.com \
--          secretmanager.googleapis.com --project <project_id>
--
-- b) The secrets, and a service account for snowgate that may read them:
--
--      printf %s '<provider_token>' | gcloud secrets create snowgate-upstream-token \
--          --data-file=- --project <project_id>
--      printf %s '<shared_secret>' | gcloud secrets create snowgate-auth-secret \
--          --data-file=- --project <project_id>
--      gcloud iam service-accounts create snowgate-run --project <project_id>
--      gcloud secrets add-iam-policy-binding snowgate-upstream-token --project <project_id> \
--          --member serviceAccount:snowgate-run@<project_id>.iam.gserviceaccount.com \
--          --role roles/secretmanager.secretAccessor
--      gcloud secrets add-iam-policy-binding snowgate-auth-secret --project <project_id> \
--          --member serviceAccount:snowgate-run@<project_id>.iam.gserviceaccount.com \
--          --role roles/secretmanager.secretAccessor
--
-- c) Deploy. The image's default command is `snowgate serve` on :8080;
--    BigQuery's function is served at SNOWGATE_BIGQUERY_PATH (the default
--    of --bigquery-path, spelled out here). The '^|^' prefix makes | the
--    separator, because the upstream URL contains commas:
--
--      gcloud run deploy snowgate --project <project_id> --region <region> \
--          --image <image_url> --port 8080 \
--          --service-account snowgate-run@<project_id>.iam.gserviceaccount.com \
--          --ingress all --no-allow-unauthenticated \
--          --max-instances <max_instances> --timeout 60 \
--          --set-env-vars '^|^SNOWGATE_BIGQUERY_PATH=/bigquery/resolve_location|SNOWGATE_AUTH_HEADER=sf-custom-snowgate-secret|SNOWGATE_BATCH_TIMEOUT=25s|SNOWGATE_RATE=<rate_per_instance>|SNOWGATE_UPSTREAM_URL=https://<provider_host>/api/v2/entities/{id}?select=id,label,location' \
--          --set-secrets SNOWGATE_UPSTREAM_TOKEN=snowgate-upstream-token:latest,SNOWGATE_AUTH_SECRET=snowgate-auth-secret:latest
--      gcloud run services describe snowgate --project <project_id> --region <region> \
--          --format 'value(status.url)'            # prints <cloud_run_url>
--
--    --no-allow-unauthenticated is the guard: Cloud Run admits only callers
--    holding roles/run.invoker (step 2 grants it to the connection's
--    account alone); everyone else, /metrics included, gets 403. BigQuery
--    sends no custom headers, so the shared secret travels in the
--    function's user_defined_context under the --auth-header name (step 3),
--    a second check behind IAM.
--
--    Each instance has its own cache and its own --rate: the rate per
--    instance is the provider's limit divided by <max_instances>. Cloud
--    Run's --timeout (60 s) stays above snowgate's --batch-timeout (25 s).
--    A call not resolved within --batch-timeout answers null (the
--    --on-row-error default); with SNOWGATE_ON_ROW_ERROR=fail such a
--    request answers 503 instead, BigQuery retries it, and the retry finds
--    the IDs resolved meanwhile in the cache (but then one ID the provider
--    keeps failing fails the query after BigQuery's retries).


-- -----------------------------------------------------------------------------
-- Step 2 (bq and gcloud, not SQL): the connection, and its right to call.
-- -----------------------------------------------------------------------------
--      bq mk --connection --location=<location> --project_id=<project_id> \
--          --connection_type=CLOUD_RESOURCE snowgate_conn
--      bq show --connection <project_id>.<location>.snowgate_conn
--          # prints the connection; its serviceAccountId is <connection_sa>
--      gcloud run services add-iam-policy-binding snowgate --project <project_id> \
--          --region <region> --member serviceAccount:<connection_sa> \
--          --role roles/run.invoker
--
--    BigQuery calls the endpoint with an ID token of <connection_sa>; that
--    grant is what lets it through Cloud Run's IAM check. A new grant can
--    take a minute or two to apply: a 403 from the smoke test just after it
--    is that.


-- -----------------------------------------------------------------------------
-- Step 3: the dataset and the remote function.
-- -----------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS `<project_id>.<dataset>`
    OPTIONS (location = '<location>');

-- RETURNS JSON: every reply is the same JSON value Snowflake's VARIANT
-- gets, {"id": ..., "label": ..., "geo_label": ..., "street_address": ...,
-- "city_label": ..., "postal_code": ..., "country_label": ...,
-- "latitude": ..., "longitude": ...}, or null for a NULL, unknown, invalid
-- or (by default) failed ID. A STRING return type would not work: BigQuery
-- wants a JSON string per reply there, and snowgate replies objects; use
-- TO_JSON_STRING on the JSON result instead (step 4).
--
-- max_batching_rows caps the calls per request (BigQuery picks fewer as it
-- likes; observed, a request stops near 256 KiB of body). 2000 calls of new
-- IDs take 20 s at 100 provider requests/s, inside --batch-timeout; raise
-- it with the provider's rate. An answer over --max-response is refused
-- with the max_batching_rows that would fit.
--
-- user_defined_context is sent with every request. Its key is the name
-- given to --auth-header (SNOWGATE_AUTH_HEADER above), its value the
-- shared secret. Whoever may read the function's definition (DDL,
-- INFORMATION_SCHEMA.ROUTINES) sees the secret: IAM in step 2 remains the
-- guard that matters. To rotate it, roll the new SNOWGATE_AUTH_SECRET out
-- (gcloud run services update snowgate --update-secrets ...) and at once
-- re-run this statement with the new value; requests that meet the other
-- value in between get 401 and fail their query: re-run those queries.
CREATE OR REPLACE FUNCTION `<project_id>.<dataset>.resolve_location`(id STRING) RETURNS JSON
REMOTE WITH CONNECTION `<project_id>.<location>.snowgate_conn`
OPTIONS (
    endpoint = '<cloud_run_url>/bigquery/resolve_location',
    max_batching_rows = 2000,
    user_defined_context = [("sf-custom-snowgate-secret", "<shared_secret>")]
);


-- -----------------------------------------------------------------------------
-- Step 4: who may call it, a smoke test, examples.
-- -----------------------------------------------------------------------------
-- Calling a function needs bigquery.routines.get on its dataset
-- (roles/bigquery.dataViewer has it); the caller needs no right on the
-- connection or on Cloud Run: BigQuery calls as the connection's account.
GRANT `roles/bigquery.dataViewer` ON SCHEMA `<project_id>.<dataset>` TO "<analyst>";

-- Smoke test: one call, the record as JSON.
SELECT `<project_id>.<dataset>.resolve_location`('<known_id>') AS location;

-- Fields: JSON_VALUE for strings, LAX_FLOAT64 for numbers. An INT64 ID
-- column is passed as CAST(id AS STRING): the same decimal text the
-- provider is asked for. A STRING column of the whole record:
-- TO_JSON_STRING(loc).
SELECT
    id,
    JSON_VALUE(loc, '$.label')          AS label,
    JSON_VALUE(loc, '$.city_label')     AS city_label,
    JSON_VALUE(loc, '$.postal_code')    AS postal_code,
    JSON_VALUE(loc, '$.country_label')  AS country_label,
    LAX_FLOAT64(loc.latitude)           AS latitude,
    LAX_FLOAT64(loc.longitude)          AS longitude,
    TO_JSON_STRING(loc)                 AS location_text
FROM (
    SELECT id, `<project_id>.<dataset>.resolve_location`(CAST(id AS STRING)) AS loc
    FROM `<project_id>.<dataset>.<source_table>`
);

-- The whole table at once, in the columns of the Snowflake backfill's
-- STANDARDIZED_LOCATIONS. Repeated IDs cost one provider call (the cache),
-- and so does a request BigQuery sends again.
CREATE OR REPLACE TABLE `<project_id>.<dataset>.standardized_locations` AS
SELECT
    id,
    JSON_VALUE(loc, '$.label')           AS label,
    JSON_VALUE(loc, '$.geo_label')       AS geo_label,
    JSON_VALUE(loc, '$.city_label')      AS city_label,
    JSON_VALUE(loc, '$.postal_code')     AS postal_code,
    JSON_VALUE(loc, '$.country_label')   AS country_label,
    LAX_FLOAT64(loc.latitude)            AS latitude,
    LAX_FLOAT64(loc.longitude)           AS longitude,
    JSON_VALUE(loc, '$.street_address')  AS street_address
FROM (
    SELECT id, `<project_id>.<dataset>.resolve_location`(CAST(id AS STRING)) AS loc
    FROM `<project_id>.<dataset>.<source_table>`
);

-- Incremental: only new IDs. The function is called in the USING query,
-- not in a WHEN clause: inside WHEN (and inside CASE or IF) BigQuery sends
-- one call per request, which snowgate answers but at one round trip per
-- row.
MERGE `<project_id>.<dataset>.standardized_locations` AS t
USING (
    SELECT id, `<project_id>.<dataset>.resolve_location`(CAST(id AS STRING)) AS loc
    FROM `<project_id>.<dataset>.<source_table>` AS s
    WHERE NOT EXISTS (
        SELECT 1 FROM `<project_id>.<dataset>.standardized_locations` AS d WHERE d.id = s.id)
) AS n
ON t.id = n.id
WHEN NOT MATCHED THEN INSERT (id, label, geo_label, city_label, postal_code, country_label,
                              latitude, longitude, street_address)
VALUES (n.id, JSON_VALUE(n.loc, '$.label'), JSON_VALUE(n.loc, '$.geo_label'),
        JSON_VALUE(n.loc, '$.city_label'), JSON_VALUE(n.loc, '$.postal_code'),
        JSON_VALUE(n.loc, '$.country_label'), LAX_FLOAT64(n.loc.latitude),
        LAX_FLOAT64(n.loc.longitude), JSON_VALUE(n.loc, '$.street_address'));
