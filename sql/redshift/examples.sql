-- =============================================================================
-- snowgate on Amazon Redshift: using resolve_location from SQL
-- =============================================================================
--
-- resolve_location(id VARCHAR) RETURNS VARCHAR (external_function.sql) answers
-- the JSON text of the same value Snowflake's function returns as a VARIANT:
--   * found: {"id": ..., "label": ..., "geo_label": ..., "street_address": ...,
--     "city_label": ..., "postal_code": ..., "country_label": ...,
--     "latitude": ..., "longitude": ...} (any field but id may be null);
--   * not found or no location: NULL (with SNOWGATE_NOT_FOUND=object,
--     {"found": false, "id": ..., "status": "not_found" | "no_location"});
--   * the provider failed even after retries: NULL (with
--     SNOWGATE_ON_ROW_ERROR=error, {"error": "<short reason>"});
--   * a NULL ID: NULL, without a provider call.
--
-- Placeholders: <schema> (function and tables), <known_id>.
-- Tables: master_table(id) is the source; standardized_locations is the
-- target, with the columns of sql/tables.sql (created below if missing).
--
-- Cost: each distinct ID no snowgate instance has cached costs one provider
-- request. Resolve each distinct ID once and keep the answers in a table.
-- Nothing here has been run against a live cluster.
-- =============================================================================

SET search_path TO <schema>;

CREATE TABLE IF NOT EXISTS master_table (
    id VARCHAR(256)
);

-- One row per ID the provider found; any location field may be NULL.
-- resolved_at is when the row was written (UTC).
CREATE TABLE IF NOT EXISTS standardized_locations (
    id             VARCHAR(256) NOT NULL PRIMARY KEY,
    label          VARCHAR(65535),
    geo_label      VARCHAR(65535),
    city_label     VARCHAR(65535),
    postal_code    VARCHAR(256),
    country_label  VARCHAR(65535),
    latitude       FLOAT8,
    longitude      FLOAT8,
    street_address VARCHAR(65535),
    resolved_at    TIMESTAMP DEFAULT SYSDATE
);


-- -----------------------------------------------------------------------------
-- 1. One ID, read with JSON_EXTRACT_PATH_TEXT (VARCHAR in, VARCHAR out).
-- -----------------------------------------------------------------------------
-- NULLIF turns an empty answer of JSON_EXTRACT_PATH_TEXT (a missing key, or
-- a NULL result) into SQL NULL before the cast.
SELECT NULLIF(JSON_EXTRACT_PATH_TEXT(loc, 'city_label'), '')          AS city_label,
       NULLIF(JSON_EXTRACT_PATH_TEXT(loc, 'latitude'), '')::FLOAT8    AS latitude,
       NULLIF(JSON_EXTRACT_PATH_TEXT(loc, 'longitude'), '')::FLOAT8   AS longitude
FROM (SELECT resolve_location('<known_id>') AS loc) AS r;


-- -----------------------------------------------------------------------------
-- 2. JSON_PARSE into SUPER, then dot access (PartiQL navigation).
-- -----------------------------------------------------------------------------
-- The keys are lower case, so no enable_case_sensitive_identifier is needed.
-- Navigation needs the alias (r.loc.city_label); ::VARCHAR and ::FLOAT8
-- turn SUPER scalars into ordinary columns (a JSON null becomes NULL).
SELECT r.id,
       r.loc.label::VARCHAR           AS label,
       r.loc.city_label::VARCHAR      AS city_label,
       r.loc.country_label::VARCHAR   AS country_label,
       r.loc.latitude::FLOAT8         AS latitude,
       r.loc.longitude::FLOAT8        AS longitude
FROM (SELECT id, JSON_PARSE(resolve_location(id)) AS loc
      FROM (SELECT DISTINCT id FROM master_table WHERE id IS NOT NULL) AS d) AS r
LIMIT 100;


-- -----------------------------------------------------------------------------
-- 3. The backfill as one statement: each distinct ID resolved once, found
--    rows kept, in columns.
-- -----------------------------------------------------------------------------
CREATE TEMP TABLE resolved AS
SELECT id, resolve_location(id) AS loc
FROM (SELECT DISTINCT id FROM master_table WHERE id IS NOT NULL) AS d;

INSERT INTO standardized_locations
    (id, label, geo_label, city_label, postal_code, country_label, latitude, longitude, street_address)
SELECT p.id,
       p.j.label::VARCHAR,
       p.j.geo_label::VARCHAR,
       p.j.city_label::VARCHAR,
       p.j.postal_code::VARCHAR,
       p.j.country_label::VARCHAR,
       p.j.latitude::FLOAT8,
       p.j.longitude::FLOAT8,
       p.j.street_address::VARCHAR
FROM (SELECT id, JSON_PARSE(loc) AS j FROM resolved WHERE loc IS NOT NULL) AS p
-- Found records only: with SNOWGATE_NOT_FOUND=object a miss has "found" (and
-- an "id"), with SNOWGATE_ON_ROW_ERROR=error a failure has "error".
WHERE p.j.id IS NOT NULL AND p.j.found IS NULL AND p.j.error IS NULL;


-- -----------------------------------------------------------------------------
-- 4. Incremental: only IDs not yet in the target. Run again to retry the rows
--    that answered NULL (misses, provider failures); cached misses cost no
--    provider call until their TTL ends.
-- -----------------------------------------------------------------------------
INSERT INTO standardized_locations
    (id, label, geo_label, city_label, postal_code, country_label, latitude, longitude, street_address)
SELECT p.id,
       p.j.label::VARCHAR,
       p.j.geo_label::VARCHAR,
       p.j.city_label::VARCHAR,
       p.j.postal_code::VARCHAR,
       p.j.country_label::VARCHAR,
       p.j.latitude::FLOAT8,
       p.j.longitude::FLOAT8,
       p.j.street_address::VARCHAR
FROM (SELECT n.id, JSON_PARSE(resolve_location(n.id)) AS j
      FROM (SELECT DISTINCT m.id
            FROM master_table AS m
            LEFT JOIN standardized_locations AS s ON s.id = m.id
            WHERE m.id IS NOT NULL AND s.id IS NULL) AS n) AS p
WHERE p.j.id IS NOT NULL AND p.j.found IS NULL AND p.j.error IS NULL;


-- -----------------------------------------------------------------------------
-- 5. With SNOWGATE_NOT_FOUND=object and SNOWGATE_ON_ROW_ERROR=error: tell
--    misses from failures.
-- -----------------------------------------------------------------------------
SELECT CASE
         WHEN r.j.error IS NOT NULL THEN 'failed: ' || r.j.error::VARCHAR
         WHEN r.j.found IS NOT NULL THEN r.j.status::VARCHAR
         WHEN r.j.id IS NOT NULL    THEN 'found'
         ELSE 'null id'
       END AS outcome,
       COUNT(*) AS ids
FROM (SELECT JSON_PARSE(loc) AS j FROM resolved) AS r
GROUP BY 1;
