-- =============================================================================
-- snowgate: the warehouse tables, for the Snowflake administrator
-- =============================================================================
--
-- Run it once, as written (placeholders replaced), before the first backfill:
-- it creates the loader's role, its service user (key-pair sign-in) and the
-- readers' role, and grants what `snowgate backfill` needs, warehouse
-- included. `snowgate backfill` also creates its three result tables itself
-- when they are missing, with exactly the columns below, so the CREATE TABLE
-- statements are there to create them up front, to grant on them before the
-- first run, or to review what the loader will write.
--
-- The names are the loader's defaults: source MASTER_TABLE(ID), target
-- STANDARDIZED_LOCATIONS, and two tables named after the target with the
-- suffixes _MISSES and _FAILURES. Point the loader at another target table
-- and the derived tables follow that name. During a run the loader also
-- creates a TEMPORARY table <target>_SNOWGATE_STAGING in its own session;
-- nobody else ever sees it and it disappears with the session.
--
-- Placeholders in angle brackets: replace them before running.
--   <admin_role>      role that owns (or may grant on) the database, schema
--                     and warehouse, e.g. SYSADMIN; both roles below roll up
--                     to it
--   <database>        database that holds the tables
--   <schema>          schema that holds the tables
--   <warehouse>       virtual warehouse that runs the loader's queries (the
--                     loader's SNOWFLAKE_WAREHOUSE)
--   <loader_role>     role `snowgate backfill` connects as (SNOWFLAKE_ROLE)
--   <loader_user>     service user `snowgate backfill` signs in as
--                     (SNOWFLAKE_USER)
--   <public_key_body> the loader's RSA public key, see below
--   <analyst_role>    role that reads the results
--
-- The loader keeps each ID unique in every table itself (it MERGEs by ID).
-- ID is declared the PRIMARY KEY all the same, as the loader declares it:
-- Snowflake records it for readers and tools but does not enforce it. NOT
-- NULL is enforced.
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Roles, and the user the loader signs in as.
-- -----------------------------------------------------------------------------
-- The loader is a service user (TYPE = SERVICE) with a key pair: a service
-- user cannot sign in with a password at all, and a person's password
-- sign-in is subject to MFA, which a batch job cannot answer. Make the key
-- pair on the machine that runs the loader and keep the private key there,
-- readable by its owner only; snowgate reads it unencrypted (PKCS#8):
--
--   openssl genrsa 2048 | openssl pkcs8 -topk8 -inform PEM -nocrypt -out snowgate_key.p8
--   chmod 600 snowgate_key.p8
--   openssl rsa -in snowgate_key.p8 -pubout -out snowgate_key.pub
--
-- <public_key_body> is snowgate_key.pub without its BEGIN and END lines,
-- joined into one line:   grep -v ' PUBLIC KEY' snowgate_key.pub | tr -d '\n'
-- The loader then runs with SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER=<loader_user>,
-- SNOWFLAKE_PRIVATE_KEY_PATH=snowgate_key.p8, SNOWFLAKE_WAREHOUSE=<warehouse>,
-- SNOWFLAKE_ROLE=<loader_role>, SNOWFLAKE_DATABASE and SNOWFLAKE_SCHEMA.
-- For a user that already exists, CREATE USER IF NOT EXISTS changes nothing:
-- ALTER USER <loader_user> SET TYPE = SERVICE RSA_PUBLIC_KEY = '...' instead.
-- To rotate the key, set RSA_PUBLIC_KEY_2, switch the loader to the new
-- private key, then UNSET RSA_PUBLIC_KEY.
--
-- A programmatic access token is the other choice for a service user
-- (SNOWFLAKE_AUTHENTICATOR=programmatic_access_token): it needs a network
-- policy on the user, and a role restriction:
--   ALTER USER <loader_user> ADD PROGRAMMATIC ACCESS TOKEN snowgate ROLE_RESTRICTION = '<loader_role>';
--
-- USERADMIN may create roles and users in every account, and grant the roles
-- it creates. Both roles roll up to <admin_role>, so the USE ROLE statements
-- below work for the admin, who keeps control of what the roles own.
USE ROLE USERADMIN;
CREATE ROLE IF NOT EXISTS <loader_role> COMMENT = 'snowgate backfill: reads the source, owns the result tables';
CREATE ROLE IF NOT EXISTS <analyst_role> COMMENT = 'snowgate: reads the result tables';
CREATE USER IF NOT EXISTS <loader_user>
    TYPE = SERVICE
    RSA_PUBLIC_KEY = '<public_key_body>'
    DEFAULT_ROLE = <loader_role>
    DEFAULT_WAREHOUSE = <warehouse>
    DEFAULT_NAMESPACE = <database>.<schema>
    COMMENT = 'snowgate backfill: key-pair sign-in only';
GRANT ROLE <loader_role> TO USER <loader_user>;
GRANT ROLE <loader_role> TO ROLE <admin_role>;
GRANT ROLE <analyst_role> TO ROLE <admin_role>;
-- ...and <analyst_role> to whoever reads the results, e.g.
-- GRANT ROLE <analyst_role> TO USER <analyst_user>;


-- -----------------------------------------------------------------------------
-- Privileges the loader needs.
-- -----------------------------------------------------------------------------
-- USAGE on the warehouse: every query runs on one (a role without it gets
-- "No active warehouse selected"); with AUTO_RESUME, the default, USAGE also
-- resumes a suspended warehouse. CREATE TABLE on the schema: for the result
-- tables (first run) and for its temporary staging table (every run). CREATE
-- STAGE on the schema: gosnowflake sends a large bulk insert's rows through
-- a temporary stage it creates (CREATE TEMPORARY STAGE SYSTEM$BIND) rather
-- than inline. The loader should own the result tables, because it also
-- runs ALTER TABLE ... ADD COLUMN IF NOT EXISTS RESOLVED_AT on the target at
-- start (a target made by the original job may lack that column); that is
-- why they are created as <loader_role> below.
USE ROLE <admin_role>;
GRANT USAGE ON WAREHOUSE <warehouse> TO ROLE <loader_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <loader_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <loader_role>;
GRANT CREATE TABLE ON SCHEMA <database>.<schema> TO ROLE <loader_role>;
GRANT CREATE STAGE ON SCHEMA <database>.<schema> TO ROLE <loader_role>;

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
-- older than 30 days. It is NULL only on rows of a target the original job
-- made, to which the loader adds the column.
CREATE TABLE IF NOT EXISTS STANDARDIZED_LOCATIONS (
    ID             VARCHAR NOT NULL PRIMARY KEY,
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
    ID          VARCHAR       NOT NULL PRIMARY KEY,
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
    ID        VARCHAR       NOT NULL PRIMARY KEY,
    REASON    VARCHAR       NOT NULL,
    ATTEMPTS  NUMBER(10,0)  NOT NULL,
    FAILED_AT TIMESTAMP_NTZ NOT NULL
)
COMMENT = 'snowgate: IDs that failed after retries, with the reason';


-- -----------------------------------------------------------------------------
-- Readers.
-- -----------------------------------------------------------------------------
USE ROLE <admin_role>;
GRANT USAGE ON WAREHOUSE <warehouse> TO ROLE <analyst_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <analyst_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <analyst_role>;

USE ROLE <loader_role>;
GRANT SELECT ON TABLE STANDARDIZED_LOCATIONS TO ROLE <analyst_role>;
GRANT SELECT ON TABLE STANDARDIZED_LOCATIONS_MISSES TO ROLE <analyst_role>;
GRANT SELECT ON TABLE STANDARDIZED_LOCATIONS_FAILURES TO ROLE <analyst_role>;


-- -----------------------------------------------------------------------------
-- Progress at a glance (any time, also during a backfill).
-- -----------------------------------------------------------------------------
-- These queries need a running warehouse, which <loader_role> may use.
-- source_ids counts as the loader does: IDs as text, compared byte for byte
-- ('utf8' collation), whatever collation the column or account defaults to.
USE WAREHOUSE <warehouse>;
SELECT
    (SELECT COUNT(DISTINCT COLLATE(TO_VARCHAR(ID), 'utf8')) FROM MASTER_TABLE WHERE ID IS NOT NULL) AS source_ids,
    (SELECT COUNT(*) FROM STANDARDIZED_LOCATIONS)                                                   AS found,
    (SELECT COUNT(*) FROM STANDARDIZED_LOCATIONS_MISSES)                                            AS misses,
    (SELECT COUNT(*) FROM STANDARDIZED_LOCATIONS_FAILURES)                                          AS failed;

-- Why IDs failed, most common reason first.
SELECT REASON, COUNT(*) AS ids, MAX(ATTEMPTS) AS max_attempts, MAX(FAILED_AT) AS last_failed_at
FROM STANDARDIZED_LOCATIONS_FAILURES
GROUP BY REASON
ORDER BY ids DESC;
