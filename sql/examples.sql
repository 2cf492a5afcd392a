-- =============================================================================
-- snowgate: using resolve_location from SQL
-- =============================================================================
--
-- These examples work with the function from any of the deployment scripts
-- (aws/, azure/, gcp/ or spcs/): resolve_location(id VARCHAR) RETURNS VARIANT.
--
-- What the function answers for one ID:
--   * found: an object
--       {"id": ..., "label": ..., "geo_label": ..., "street_address": ...,
--        "city_label": ..., "postal_code": ..., "country_label": ...,
--        "latitude": ..., "longitude": ...}
--     (any field but id may be null);
--   * not found, or found without a location: NULL by default; with the
--     gateway flag --not-found object, {"found": false, "id": ...,
--     "status": "not_found" | "no_location"};
--   * the provider failed even after retries: NULL by default; with
--     --on-row-error error, {"error": "<short reason>"}; with
--     --on-row-error fail, the whole batch fails and Snowflake retries it;
--   * a NULL ID: NULL, without a call.
-- With the defaults a NULL result means "no location now, for whatever
-- reason".
--
-- The examples sort answers by their keys, which works whether a null answer
-- arrives as SQL NULL or as a JSON null inside the VARIANT:
--   found:   loc:id IS NOT NULL AND loc:found IS NULL AND loc:error IS NULL
--   miss:    loc:found::BOOLEAN = FALSE       (then loc:status says which)
--   failed:  loc:error IS NOT NULL
--   null:    loc:id IS NULL AND loc:error IS NULL
-- Example 3b files misses and failures separately and needs the gateway
-- started with --not-found object --on-row-error error
-- (SNOWGATE_NOT_FOUND=object, SNOWGATE_ON_ROW_ERROR=error). Every other
-- example works with either setting: it stores found rows only, and asks
-- again for the rest on its next run.
--
-- Placeholders in angle brackets: replace them before running.
--   <database>, <schema>   where the function and tables live
--   <warehouse>            the warehouse to run on
--   <known_id>             an ID the provider knows
--
-- Tables as in tables.sql: MASTER_TABLE(ID) is the source;
-- STANDARDIZED_LOCATIONS, ..._MISSES and ..._FAILURES hold results.
--
-- Cost model, to keep in mind for every example: each distinct ID that no
-- snowgate replica has cached costs one provider request, and the provider's
-- rate limit (the sum of the replicas' --rate) bounds how fast a query can
-- go. Resolve each distinct ID once (SELECT DISTINCT before the call) and
-- keep the answers in a table rather than calling the function again.
-- =============================================================================

USE DATABASE <database>;
USE SCHEMA <schema>;
USE WAREHOUSE <warehouse>;


-- -----------------------------------------------------------------------------
-- 1. Enrichment in a SELECT.
-- -----------------------------------------------------------------------------
-- One ID:
SELECT resolve_location('<known_id>') AS location;

-- A sample of the source, with the raw VARIANT. TO_VARCHAR also covers a
-- numeric ID column (the function takes VARCHAR).
SELECT m.ID, resolve_location(TO_VARCHAR(m.ID)) AS location
FROM MASTER_TABLE m
WHERE m.ID IS NOT NULL
LIMIT 100;


-- -----------------------------------------------------------------------------
-- 2. Flattening the VARIANT into columns.
-- -----------------------------------------------------------------------------
-- Call the function once per distinct ID in a subquery, then take the
-- fields out with the path syntax and a cast. A key that is absent or JSON
-- null becomes SQL NULL, so not-found objects and NULLs give all-NULL
-- columns. found_location tells a real location from the other answers.
SELECT
    r.ID,
    r.loc:label::VARCHAR          AS label,
    r.loc:geo_label::VARCHAR      AS geo_label,
    r.loc:street_address::VARCHAR AS street_address,
    r.loc:city_label::VARCHAR     AS city_label,
    r.loc:postal_code::VARCHAR    AS postal_code,
    r.loc:country_label::VARCHAR  AS country_label,
    r.loc:latitude::FLOAT         AS latitude,
    r.loc:longitude::FLOAT        AS longitude,
    (r.loc:id IS NOT NULL AND r.loc:found IS NULL AND r.loc:error IS NULL) AS found_location,
    r.loc:status::VARCHAR         AS miss_status,   -- with --not-found object
    r.loc:error::VARCHAR          AS error_reason   -- with --on-row-error error
FROM (
    SELECT d.ID, resolve_location(d.ID) AS loc
    FROM (SELECT DISTINCT TO_VARCHAR(ID) AS ID FROM MASTER_TABLE WHERE ID IS NOT NULL) d
    LIMIT 1000
) r;


-- -----------------------------------------------------------------------------
-- 3a. Incremental MERGE: resolve only the IDs not yet in the target.
-- -----------------------------------------------------------------------------
-- Safe to run again and again (for example from a TASK after each load of
-- MASTER_TABLE): IDs already in the target, or already known as misses, are
-- never sent; new IDs are resolved once each; found locations are inserted.
-- Anything else (NULL, not found, failed) is left out and asked again next
-- run; example 3b records those too. The source side holds each ID once, so
-- the MERGE is deterministic.
MERGE INTO STANDARDIZED_LOCATIONS t
USING (
    SELECT r.ID, r.loc
    FROM (
        SELECT p.ID, resolve_location(p.ID) AS loc
        FROM (
            SELECT DISTINCT TO_VARCHAR(m.ID) AS ID
            FROM MASTER_TABLE m
            WHERE m.ID IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM STANDARDIZED_LOCATIONS sl
                              WHERE sl.ID = TO_VARCHAR(m.ID))
              AND NOT EXISTS (SELECT 1 FROM STANDARDIZED_LOCATIONS_MISSES sm
                              WHERE sm.ID = TO_VARCHAR(m.ID))
        ) p
    ) r
    WHERE r.loc:id IS NOT NULL AND r.loc:found IS NULL AND r.loc:error IS NULL
) s
ON t.ID = s.ID
WHEN NOT MATCHED THEN INSERT
    (ID, LABEL, GEO_LABEL, CITY_LABEL, POSTAL_CODE, COUNTRY_LABEL,
     LATITUDE, LONGITUDE, STREET_ADDRESS, RESOLVED_AT)
VALUES
    (s.ID, s.loc:label::VARCHAR, s.loc:geo_label::VARCHAR, s.loc:city_label::VARCHAR,
     s.loc:postal_code::VARCHAR, s.loc:country_label::VARCHAR,
     s.loc:latitude::FLOAT, s.loc:longitude::FLOAT, s.loc:street_address::VARCHAR,
     SYSDATE());


-- -----------------------------------------------------------------------------
-- 3b. Incremental, with misses and failures recorded (as `snowgate backfill`
--     does).
-- -----------------------------------------------------------------------------
-- The function is called once per pending ID, into a temporary table; three
-- MERGEs then file every answer in one transaction. Not-found and
-- no-location IDs go to the misses table and are not asked again; failed IDs
-- go to the failures table with their reason and an attempt count, are
-- asked again on the next run, and leave that table once they succeed. Needs --not-found object and
-- --on-row-error error on the gateway to tell the cases apart; with the
-- defaults only found rows are filed and the rest are asked again.
CREATE OR REPLACE TEMPORARY TABLE RESOLVE_RUN AS
SELECT p.ID, resolve_location(p.ID) AS loc, SYSDATE() AS resolved_at
FROM (
    SELECT DISTINCT TO_VARCHAR(m.ID) AS ID
    FROM MASTER_TABLE m
    WHERE m.ID IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM STANDARDIZED_LOCATIONS sl WHERE sl.ID = TO_VARCHAR(m.ID))
      AND NOT EXISTS (SELECT 1 FROM STANDARDIZED_LOCATIONS_MISSES sm WHERE sm.ID = TO_VARCHAR(m.ID))
) p;

-- BEGIN TRANSACTION, not a bare BEGIN: in Snowsight and other Snowflake
-- Scripting contexts BEGIN opens a script block instead of a transaction.
BEGIN TRANSACTION;

MERGE INTO STANDARDIZED_LOCATIONS t
USING (SELECT * FROM RESOLVE_RUN
       WHERE loc:id IS NOT NULL AND loc:found IS NULL AND loc:error IS NULL) s
ON t.ID = s.ID
WHEN MATCHED THEN UPDATE SET
    LABEL = s.loc:label::VARCHAR, GEO_LABEL = s.loc:geo_label::VARCHAR,
    CITY_LABEL = s.loc:city_label::VARCHAR, POSTAL_CODE = s.loc:postal_code::VARCHAR,
    COUNTRY_LABEL = s.loc:country_label::VARCHAR, LATITUDE = s.loc:latitude::FLOAT,
    LONGITUDE = s.loc:longitude::FLOAT, STREET_ADDRESS = s.loc:street_address::VARCHAR,
    RESOLVED_AT = s.resolved_at
WHEN NOT MATCHED THEN INSERT
    (ID, LABEL, GEO_LABEL, CITY_LABEL, POSTAL_CODE, COUNTRY_LABEL,
     LATITUDE, LONGITUDE, STREET_ADDRESS, RESOLVED_AT)
VALUES
    (s.ID, s.loc:label::VARCHAR, s.loc:geo_label::VARCHAR, s.loc:city_label::VARCHAR,
     s.loc:postal_code::VARCHAR, s.loc:country_label::VARCHAR,
     s.loc:latitude::FLOAT, s.loc:longitude::FLOAT, s.loc:street_address::VARCHAR,
     s.resolved_at);

-- The function's miss object carries no label, so LABEL stays NULL here
-- (`snowgate backfill` fills it for no-location IDs).
MERGE INTO STANDARDIZED_LOCATIONS_MISSES t
USING (SELECT * FROM RESOLVE_RUN WHERE loc:found::BOOLEAN = FALSE) s
ON t.ID = s.ID
WHEN MATCHED THEN UPDATE SET OUTCOME = s.loc:status::VARCHAR, RESOLVED_AT = s.resolved_at
WHEN NOT MATCHED THEN INSERT (ID, OUTCOME, LABEL, RESOLVED_AT)
    VALUES (s.ID, s.loc:status::VARCHAR, NULL, s.resolved_at);

MERGE INTO STANDARDIZED_LOCATIONS_FAILURES t
USING (SELECT * FROM RESOLVE_RUN WHERE loc:error IS NOT NULL) s
ON t.ID = s.ID
WHEN MATCHED THEN UPDATE SET
    REASON = s.loc:error::VARCHAR, ATTEMPTS = t.ATTEMPTS + 1, FAILED_AT = s.resolved_at
WHEN NOT MATCHED THEN INSERT (ID, REASON, ATTEMPTS, FAILED_AT)
    VALUES (s.ID, s.loc:error::VARCHAR, 1, s.resolved_at);

-- An ID that succeeded or got an answer this time is no longer a failure.
DELETE FROM STANDARDIZED_LOCATIONS_FAILURES
WHERE ID IN (SELECT ID FROM RESOLVE_RUN WHERE loc:id IS NOT NULL);

COMMIT;

-- What this run did:
SELECT
    COUNT(*)                                                                 AS asked,
    COUNT_IF(loc:id IS NOT NULL AND loc:found IS NULL AND loc:error IS NULL) AS found,
    COUNT_IF(loc:found::BOOLEAN = FALSE)                                     AS misses,
    COUNT_IF(loc:error IS NOT NULL)                                          AS failed,
    COUNT_IF(loc:id IS NULL AND loc:error IS NULL)                           AS null_answers
FROM RESOLVE_RUN;


-- -----------------------------------------------------------------------------
-- 4. The whole backfill as one SQL statement.
-- -----------------------------------------------------------------------------
-- One INSERT ... SELECT resolves every distinct source ID not yet in the
-- target. Snowflake cuts the IDs into batches (at most MAX_BATCH_ROWS rows
-- each) and sends many batches at once, spread over the gateway's replicas
-- by the proxy's load balancer (or over the service's instances in SPCS);
-- the warehouse size decides how many batches are in flight.
--
-- How long it takes is set by the provider, not by Snowflake:
--   time ~= distinct uncached IDs / (sum of the replicas' --rate)
--   e.g. 1,000,000 IDs at 4 replicas x 500 req/s = 2,000 req/s -> ~500 s.
-- Before running it on millions of IDs:
--   * Make each batch finish in time: MAX_BATCH_ROWS x batches in flight
--     per replica <= --rate x --batch-timeout, or run the gateway with
--     --async behind AWS/Azure/GCP (a poll must reach a replica that knows
--     the batch: share --redis-url between the replicas, or run one).
--     Rows not resolved in time come back per --on-row-error and are simply
--     picked up by the next run of this statement or of example 3a.
--   * Check the statement timeout against that estimate. It defaults to
--     two days (172800 s), but the account, the user or the warehouse may
--     set a lower one, and when the session and the warehouse both set one
--     the lower value wins:
SHOW PARAMETERS LIKE 'STATEMENT_TIMEOUT_IN_SECONDS' IN SESSION;
SHOW PARAMETERS LIKE 'STATEMENT_TIMEOUT_IN_SECONDS' IN WAREHOUSE <warehouse>;
--     If the session's value is below the estimate, put it back to the
--     default (or any value above the estimate); a lower warehouse value is
--     raised by the warehouse's owner with ALTER WAREHOUSE <warehouse> SET
--     STATEMENT_TIMEOUT_IN_SECONDS = ... .
ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = 172800;
--   * Run it on a dedicated warehouse, so the many concurrent batches do not
--     queue behind other work.
--
-- For hundreds of millions of IDs, prefer `snowgate backfill`: it pages
-- through the source, commits as it goes, resumes after an interruption,
-- and records misses and failures; one SQL statement is all or nothing.
INSERT INTO STANDARDIZED_LOCATIONS
    (ID, LABEL, GEO_LABEL, CITY_LABEL, POSTAL_CODE, COUNTRY_LABEL,
     LATITUDE, LONGITUDE, STREET_ADDRESS, RESOLVED_AT)
SELECT
    r.ID,
    r.loc:label::VARCHAR, r.loc:geo_label::VARCHAR, r.loc:city_label::VARCHAR,
    r.loc:postal_code::VARCHAR, r.loc:country_label::VARCHAR,
    r.loc:latitude::FLOAT, r.loc:longitude::FLOAT, r.loc:street_address::VARCHAR,
    SYSDATE()
FROM (
    SELECT p.ID, resolve_location(p.ID) AS loc
    FROM (
        SELECT DISTINCT TO_VARCHAR(m.ID) AS ID
        FROM MASTER_TABLE m
        WHERE m.ID IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM STANDARDIZED_LOCATIONS sl WHERE sl.ID = TO_VARCHAR(m.ID))
    ) p
) r
WHERE r.loc:id IS NOT NULL AND r.loc:found IS NULL AND r.loc:error IS NULL;


-- -----------------------------------------------------------------------------
-- 5. Refresh: re-resolve locations older than 30 days.
-- -----------------------------------------------------------------------------
-- Only rows that come back found are updated; a location is never replaced
-- by NULL because of a passing failure.
MERGE INTO STANDARDIZED_LOCATIONS t
USING (
    SELECT r.ID, r.loc
    FROM (
        SELECT o.ID, resolve_location(o.ID) AS loc
        FROM STANDARDIZED_LOCATIONS o
        WHERE o.RESOLVED_AT IS NULL OR o.RESOLVED_AT < DATEADD(day, -30, SYSDATE())
    ) r
    WHERE r.loc:id IS NOT NULL AND r.loc:found IS NULL AND r.loc:error IS NULL
) s
ON t.ID = s.ID
WHEN MATCHED THEN UPDATE SET
    LABEL = s.loc:label::VARCHAR, GEO_LABEL = s.loc:geo_label::VARCHAR,
    CITY_LABEL = s.loc:city_label::VARCHAR, POSTAL_CODE = s.loc:postal_code::VARCHAR,
    COUNTRY_LABEL = s.loc:country_label::VARCHAR, LATITUDE = s.loc:latitude::FLOAT,
    LONGITUDE = s.loc:longitude::FLOAT, STREET_ADDRESS = s.loc:street_address::VARCHAR,
    RESOLVED_AT = SYSDATE();
