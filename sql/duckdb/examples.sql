-- =============================================================================
-- snowgate: resolve_location in DuckDB, with no account and no server
-- =============================================================================
--
-- The DuckDB twins of ../examples.sql, runnable as they are:
--
--   snowgate sql --file sql/duckdb/examples.sql
--   snowgate sql --warehouse duckdb:snowgate-demo.duckdb --file sql/duckdb/examples.sql
--
-- (the first in a fresh in-memory database, the second in the demo's file;
-- both need a provider: `snowgate sim` on its default address, or
-- --upstream-url). `snowgate sql` registers resolve_location(id) -> JSON,
-- for VARCHAR and integer IDs, on the same resolver as `snowgate serve`:
-- cache, coalescing, rate limit and retries. Each chunk of up to 2,048 rows
-- is one batch: its distinct IDs are fetched once, concurrently.
--
-- What the function answers for one ID, as the gateway does:
--   * found: {"id", "label", "geo_label", "street_address", "city_label",
--     "postal_code", "country_label", "latitude", "longitude"}
--     (any field but id may be null);
--   * not found or no location: NULL, or with --not-found object
--     {"found": false, "id": ..., "status": "not_found" | "no_location"};
--   * a bad ID, or the provider failed after its retries: NULL, or with
--     --on-row-error error {"error": "<short reason>"}; --on-row-error fail
--     fails the statement;
--   * a NULL ID: NULL, without a call.
-- ->> takes a field out as text; a missing key or JSON null gives SQL NULL.
--
-- The results go to EXAMPLE_LOCATIONS and EXAMPLE_MISSES, never to the
-- tables `snowgate backfill` writes, so running this in the demo's database
-- leaves the backfill's tables as they are.
-- =============================================================================

-- The source: the demo's MASTER_TABLE when there is one, else 200 IDs and
-- a NULL made here.
CREATE TABLE IF NOT EXISTS MASTER_TABLE AS
SELECT 'Q' || lpad(i::VARCHAR, 6, '0') AS ID FROM range(1, 201) t(i)
UNION ALL SELECT NULL;


-- -----------------------------------------------------------------------------
-- 1. Enrichment in a SELECT.
-- -----------------------------------------------------------------------------
-- One ID:
SELECT resolve_location('Q000001') AS location;

-- One field of each of the first IDs; integer IDs work too
-- (resolve_location(42) asks for "42").
SELECT m.ID, resolve_location(m.ID)->>'city_label' AS city_label
FROM MASTER_TABLE m
WHERE m.ID IS NOT NULL
ORDER BY m.ID
LIMIT 5;


-- -----------------------------------------------------------------------------
-- 2. Flattening the JSON into columns.
-- -----------------------------------------------------------------------------
-- Call the function once per distinct ID in a subquery, then take the
-- fields out. found_location tells a real location from the other answers.
SELECT
    r.ID,
    r.loc->>'label'                    AS label,
    r.loc->>'city_label'               AS city_label,
    r.loc->>'country_label'            AS country_label,
    (r.loc->>'latitude')::DOUBLE       AS latitude,
    (r.loc->>'longitude')::DOUBLE      AS longitude,
    ((r.loc->>'id') IS NOT NULL AND (r.loc->>'found') IS NULL AND (r.loc->>'error') IS NULL) AS found_location
FROM (
    SELECT d.ID, resolve_location(d.ID) AS loc
    FROM (SELECT DISTINCT ID FROM MASTER_TABLE WHERE ID IS NOT NULL ORDER BY ID LIMIT 10) d
) r
ORDER BY r.ID;


-- -----------------------------------------------------------------------------
-- 3. CREATE TABLE AS SELECT: the first 100 IDs' locations kept in a table.
-- -----------------------------------------------------------------------------
CREATE OR REPLACE TABLE EXAMPLE_LOCATIONS AS
SELECT
    r.ID,
    r.loc->>'label'                AS LABEL,
    r.loc->>'geo_label'            AS GEO_LABEL,
    r.loc->>'city_label'           AS CITY_LABEL,
    r.loc->>'postal_code'          AS POSTAL_CODE,
    r.loc->>'country_label'        AS COUNTRY_LABEL,
    (r.loc->>'latitude')::DOUBLE   AS LATITUDE,
    (r.loc->>'longitude')::DOUBLE  AS LONGITUDE,
    r.loc->>'street_address'       AS STREET_ADDRESS,
    now()                          AS RESOLVED_AT
FROM (
    SELECT d.ID, resolve_location(d.ID) AS loc
    FROM (SELECT DISTINCT ID FROM MASTER_TABLE WHERE ID IS NOT NULL ORDER BY ID LIMIT 100) d
) r
WHERE (r.loc->>'id') IS NOT NULL AND (r.loc->>'found') IS NULL AND (r.loc->>'error') IS NULL;

-- IDs answered without a location (NULL with the defaults) are kept
-- apart, so the next step does not ask for them again.
CREATE OR REPLACE TABLE EXAMPLE_MISSES AS
SELECT d.ID, now() AS RESOLVED_AT
FROM (SELECT DISTINCT ID FROM MASTER_TABLE WHERE ID IS NOT NULL ORDER BY ID LIMIT 100) d
WHERE NOT EXISTS (SELECT 1 FROM EXAMPLE_LOCATIONS l WHERE l.ID = d.ID);


-- -----------------------------------------------------------------------------
-- 4. Incremental insert: only the IDs in neither table are resolved.
-- -----------------------------------------------------------------------------
-- Safe to run again and again, after each load of MASTER_TABLE. With the
-- defaults a failed lookup also looks like a miss; run with
-- --on-row-error error and keep rows whose loc->>'error' is set apart to
-- ask for them again.
INSERT INTO EXAMPLE_LOCATIONS
SELECT
    r.ID,
    r.loc->>'label', r.loc->>'geo_label', r.loc->>'city_label', r.loc->>'postal_code',
    r.loc->>'country_label', (r.loc->>'latitude')::DOUBLE, (r.loc->>'longitude')::DOUBLE,
    r.loc->>'street_address', now()
FROM (
    SELECT p.ID, resolve_location(p.ID) AS loc
    FROM (
        SELECT DISTINCT m.ID
        FROM MASTER_TABLE m
        WHERE m.ID IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM EXAMPLE_LOCATIONS l WHERE l.ID = m.ID)
          AND NOT EXISTS (SELECT 1 FROM EXAMPLE_MISSES s WHERE s.ID = m.ID)
    ) p
) r
WHERE (r.loc->>'id') IS NOT NULL AND (r.loc->>'found') IS NULL AND (r.loc->>'error') IS NULL;

-- What the tables hold now:
SELECT
    (SELECT count(DISTINCT ID) FROM MASTER_TABLE)  AS source_ids,
    (SELECT count(*) FROM EXAMPLE_LOCATIONS)       AS located,
    (SELECT count(*) FROM EXAMPLE_MISSES)          AS misses_in_first_100;
