-- =============================================================================
-- snowgate: the warehouse tables, for the Snowflake administrator
-- =============================================================================
--
-- `snowgate backfill` creates its three result tables itself when they are
-- missing, with exactly the columns below, so running this script is
-- optional. Run it to create them up front, to grant on them before the first
-- run, or to review what the loader will write.
--
-- The names are the loader's defaults: source MASTER_TABLE(ID), target
-- STANDARDIZED_LOCATIONS, and two tables named after the target with the
-- suffixes _MISSES and _FAILURES. Point the loader at another target table
-- and the derived tables follow that name. During a run the loader also
-- creates a TEMPORARY table <target>_SNOWGATE_STAGING in its own session;
-- nobody else ever sees it and it disappears with the session.
--
-- Placeholders in angle brackets: replace them before running.
--   <admin_role>      role that may grant on the database and schema
--   <database>        database that holds the tables
--   <schema>          schema that holds the tables
--   <loader_role>     role `snowgate backfill` connects as
--   <analyst_role>    role that reads the results
--
-- The loader keeps each ID unique in every table itself (it MERGEs by ID), so
-- no key constraint is declared: Snowflake would not enforce one anyway.
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Privileges the loader needs.
-- -----------------------------------------------------------------------------
-- CREATE TABLE on the schema: for the result tables (first run) and for its
-- temporary staging table (every run). The loader should own the result
-- tables, because it also runs ALTER TABLE ... ADD COLUMN IF NOT EXISTS
-- RESOLVED_AT on the target at start (a target made by the original job may
-- lack that column); that is why they are created as <loader_role> below.
USE ROLE <admin_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <loader_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <loader_role>;
GRANT CREATE TABLE ON SCHEMA <database>.<schema> TO ROLE <loader_role>;

USE DATABASE <database>;
USE SCHEMA <schema>;


-- -----------------------------------------------------------------------------
-- Source (example): the IDs to enrich.
-- -----------------------------------------------------------------------------
-- Your real source table already exists; this statement only shows the one
-- column the loader reads. ID may be VARCHAR or a number: the loader reads
-- TO_VARCHAR(ID), and so should calls of the external function on a numeric
-- column. Duplicate and NULL IDs are fine: each distinct non-NULL ID is
-- resolved once.
CREATE TABLE IF NOT EXISTS MASTER_TABLE (
    ID VARCHAR
);

-- Its owner lets the loader read it.
GRANT SELECT ON TABLE MASTER_TABLE TO ROLE <loader_role>;


USE ROLE <loader_role>;

-- -----------------------------------------------------------------------------
-- Target: one row per ID the provider found, with a location.
-- -----------------------------------------------------------------------------
-- Columns in the loader's order. Any location field may be NULL when the
-- provider left it empty. RESOLVED_AT is when snowgate got the answer (UTC);
-- `snowgate backfill --refresh-older-than 720h` re-asks for rows (and misses)
-- older than 30 days.
CREATE TABLE IF NOT EXISTS STANDARDIZED_LOCATIONS (
    ID             VARCHAR NOT NULL,
    LABEL          VARCHAR,
    GEO_LABEL      VARCHAR,
    CITY_LABEL     VARCHAR,
    POSTAL_CODE    VARCHAR,
    COUNTRY_LABEL  VARCHAR,
    LATITUDE       FLOAT,
    LONGITUDE      FLOAT,
    STREET_ADDRESS VARCHAR,
    RESOLVED_AT    TIMESTAMP_NTZ
)
COMMENT = 'snowgate: IDs resolved to a location (one row per ID)';

-- -----------------------------------------------------------------------------
-- Misses: IDs the provider answered, but without a location.
-- -----------------------------------------------------------------------------
-- OUTCOME is 'not_found' (the provider has no such entity: HTTP 404) or
-- 'no_location' (the entity exists, its location is empty; LABEL is then the
-- entity's label). These are answers, not errors: later runs skip them
-- unless run with --refresh-older-than. An ID is in at most one of
-- STANDARDIZED_LOCATIONS and STANDARDIZED_LOCATIONS_MISSES.
CREATE TABLE IF NOT EXISTS STANDARDIZED_LOCATIONS_MISSES (
    ID          VARCHAR       NOT NULL,
    OUTCOME     VARCHAR       NOT NULL,
    LABEL       VARCHAR,
    RESOLVED_AT TIMESTAMP_NTZ NOT NULL
)
COMMENT = 'snowgate: IDs the provider does not know, or knows without a location';

-- -----------------------------------------------------------------------------
-- Failures: IDs that still failed after snowgate's retries.
-- -----------------------------------------------------------------------------
-- REASON is a short text (the provider's last status, a timeout, or why an ID
-- was rejected as invalid). ATTEMPTS counts the runs that failed on the ID.
-- Ordinary runs leave these IDs alone; `snowgate backfill --retry-failed`
-- works through this table only, and an ID that then succeeds leaves it.
CREATE TABLE IF NOT EXISTS STANDARDIZED_LOCATIONS_FAILURES (
    ID        VARCHAR       NOT NULL,
    REASON    VARCHAR,
    ATTEMPTS  NUMBER(10, 0) NOT NULL,
    FAILED_AT TIMESTAMP_NTZ NOT NULL
)
COMMENT = 'snowgate: IDs that failed after retries, with the reason';


-- -----------------------------------------------------------------------------
-- Readers.
-- -----------------------------------------------------------------------------
USE ROLE <admin_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <analyst_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <analyst_role>;

USE ROLE <loader_role>;
GRANT SELECT ON TABLE STANDARDIZED_LOCATIONS TO ROLE <analyst_role>;
GRANT SELECT ON TABLE STANDARDIZED_LOCATIONS_MISSES TO ROLE <analyst_role>;
GRANT SELECT ON TABLE STANDARDIZED_LOCATIONS_FAILURES TO ROLE <analyst_role>;


-- -----------------------------------------------------------------------------
-- Progress at a glance (any time, also during a backfill).
-- -----------------------------------------------------------------------------
SELECT
    (SELECT COUNT(DISTINCT TO_VARCHAR(ID)) FROM MASTER_TABLE WHERE ID IS NOT NULL) AS source_ids,
    (SELECT COUNT(*) FROM STANDARDIZED_LOCATIONS)                                  AS found,
    (SELECT COUNT(*) FROM STANDARDIZED_LOCATIONS_MISSES)                           AS misses,
    (SELECT COUNT(*) FROM STANDARDIZED_LOCATIONS_FAILURES)                         AS failed;

-- Why IDs failed, most common reason first.
SELECT REASON, COUNT(*) AS ids, MAX(ATTEMPTS) AS max_attempts, MAX(FAILED_AT) AS last_failed_at
FROM STANDARDIZED_LOCATIONS_FAILURES
GROUP BY REASON
ORDER BY ids DESC;
