-- =============================================================================
-- snowgate on Google Cloud: Snowflake -> Google API Gateway -> snowgate -> provider
-- =============================================================================
--
-- What this script sets up, in order:
--   1. (Google Cloud, outside Snowflake) snowgate running on Cloud Run behind
--      a Google API Gateway.
--   2. An API integration that tells Snowflake which audience to put in the
--      JWT it signs, and which gateway URLs it may call.
--   3. The gateway's API config, updated to accept only JWTs signed by
--      Snowflake's service account for this integration.
--   4. The SECURE external function resolve_location(id VARCHAR) RETURNS
--      VARIANT, carrying the shared secret that snowgate checks.
--   5. Grants and a smoke test.
--
-- Placeholders in angle brackets: replace every one before running.
--   <admin_role>            role with CREATE INTEGRATION (ACCOUNTADMIN has it)
--   <integration_name>      e.g. snowgate_gcp_api
--   <google_audience>       the API's managed service name, shown as "Managed
--                           Service" on the API's page in API Gateway
--                           (<api_id>-<hash>.apigateway.<project_id>.cloud.goog)
--   <gateway_base_url>      https://<gateway_host> of the deployed gateway
--   <cloud_run_url>         https URL of the snowgate Cloud Run service
--   <database>, <schema>    where the function lives
--   <function_owner_role>   role that owns the function
--   <analyst_role>          role that may call the function
--   <shared_secret>         a long random string, also given to snowgate as
--                           SNOWGATE_AUTH_SECRET (see step 1)
--   <provider_host>         the location provider's host name
--   <provider_token>        the provider's bearer token (snowgate's environment only)
--   <known_id>              an ID the provider knows, for the smoke test
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Step 1 (Google Cloud side, not SQL): run snowgate and create the gateway.
-- -----------------------------------------------------------------------------
-- a) Deploy the container image (see the Dockerfile) to Cloud Run, container
--    port 8080, ingress and authentication such that only the gateway's
--    service account may invoke it, with:
--
--      snowgate serve
--        --listen :8080                                  (SNOWGATE_LISTEN)
--        --path /resolve_location                        (SNOWGATE_PATH)
--        --auth-header sf-custom-snowgate-secret         (SNOWGATE_AUTH_HEADER)
--        --batch-timeout 25s                             (SNOWGATE_BATCH_TIMEOUT)
--        --upstream-url 'https://<provider_host>/api/v2/entities/{id}?select=id,label,location'
--                                                        (SNOWGATE_UPSTREAM_URL)
--        --rate <provider_requests_per_second / instances> (SNOWGATE_RATE)
--
--    and from Secret Manager, as environment variables:
--      SNOWGATE_UPSTREAM_TOKEN=<provider_token>
--      SNOWGATE_AUTH_SECRET=<shared_secret>
--
--    Cloud Run scales instances by itself: each instance has its own cache
--    and its own --rate, so set --rate to the provider's limit divided by the
--    maximum instance count, and cap that count.
--
-- b) Create an API in API Gateway with this OpenAPI 2.0 config (the security
--    section is added in step 3, once Snowflake's service account is known):
--
--      swagger: "2.0"
--      info:
--        title: snowgate
--        version: "1.0.0"
--      schemes: ["https"]
--      produces: ["application/json"]
--      x-google-backend:
--        address: <cloud_run_url>
--        path_translation: APPEND_PATH_TO_ADDRESS
--        deadline: 30.0        # set it explicitly, above --batch-timeout
--      paths:
--        /resolve_location:
--          post:
--            operationId: resolveLocation
--            responses:
--              "200":
--                description: the batch's rows, in order
--          # With --async, add a get: operation on the same path (operationId
--          # pollLocation): Snowflake polls an unfinished batch with GET.
--
--    Deploy a gateway with this config. Its URL is <gateway_base_url>; the
--    API's managed service name is <google_audience>.


-- -----------------------------------------------------------------------------
-- Step 2: the API integration.
-- -----------------------------------------------------------------------------
USE ROLE <admin_role>;

-- GOOGLE_AUDIENCE becomes the "aud" claim of the JWT Snowflake signs for
-- each call; the gateway checks it in step 3.
CREATE OR REPLACE API INTEGRATION <integration_name>
    API_PROVIDER = google_api_gateway
    GOOGLE_AUDIENCE = '<google_audience>'
    API_ALLOWED_PREFIXES = ('<gateway_base_url>/')
    ENABLED = TRUE
    COMMENT = 'snowgate: Snowflake calls Google API Gateway with JWTs for this audience';


-- -----------------------------------------------------------------------------
-- Step 3: let only Snowflake's service account through the gateway.
-- -----------------------------------------------------------------------------
DESCRIBE INTEGRATION <integration_name>;

SELECT "property", "property_value"
FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))
WHERE "property" = 'API_GCP_SERVICE_ACCOUNT';

-- Add a security definition for that service account to the API config of
-- step 1b, require it on every operation, and deploy the new config:
--
--      securityDefinitions:
--        snowflakeAccess01:
--          authorizationUrl: ""
--          flow: "implicit"
--          type: "oauth2"
--          x-google-issuer: "<API_GCP_SERVICE_ACCOUNT>"
--          x-google-jwks_uri: "https://www.googleapis.com/robot/v1/metadata/x509/<API_GCP_SERVICE_ACCOUNT>"
--          x-google-audiences: "<google_audience>"
--      # and under paths./resolve_location.post (and .get):
--            security:
--              - snowflakeAccess01: []
--
-- Until this config is deployed, the gateway accepts calls from anyone who
-- knows its URL; snowgate's shared secret (step 4) is then the only guard.


-- -----------------------------------------------------------------------------
-- Step 4: the external function.
-- -----------------------------------------------------------------------------
GRANT USAGE ON INTEGRATION <integration_name> TO ROLE <function_owner_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <function_owner_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <function_owner_role>;
GRANT CREATE FUNCTION ON SCHEMA <database>.<schema> TO ROLE <function_owner_role>;

USE ROLE <function_owner_role>;
USE DATABASE <database>;
USE SCHEMA <schema>;

-- The clauses are explained in ../aws/external_function.sql (step 4); in
-- short: SECURE hides the secret from non-owners, NULL IDs never leave
-- Snowflake, HEADERS carries the shared secret as sf-custom-snowgate-secret,
-- CONTEXT_HEADERS say who is asking, MAX_BATCH_ROWS is sized so a batch of
-- uncached IDs fits in the 25 s batch timeout at the instance's --rate.
CREATE OR REPLACE SECURE EXTERNAL FUNCTION resolve_location(id VARCHAR)
    RETURNS VARIANT
    NULL
    RETURNS NULL ON NULL INPUT
    VOLATILE
    COMMENT = 'snowgate: resolve an entity ID to its standardized location (VARIANT object or NULL)'
    API_INTEGRATION = <integration_name>
    HEADERS = ('snowgate-secret' = '<shared_secret>')
    CONTEXT_HEADERS = (CURRENT_USER, CURRENT_ROLE, CURRENT_ACCOUNT)
    MAX_BATCH_ROWS = 500
    COMPRESSION = AUTO
    AS '<gateway_base_url>/resolve_location';


-- -----------------------------------------------------------------------------
-- Step 5: grants and a smoke test.
-- -----------------------------------------------------------------------------
USE ROLE <admin_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <analyst_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <analyst_role>;

USE ROLE <function_owner_role>;
GRANT USAGE ON FUNCTION resolve_location(VARCHAR) TO ROLE <analyst_role>;

-- Expect an object (id, label, geo_label, street_address, city_label,
-- postal_code, country_label, latitude, longitude) or NULL.
SELECT resolve_location('<known_id>') AS location;

-- A 401 or 403 from the gateway: the security definition (issuer, audience)
-- of step 3. A 401 from snowgate: the HEADERS value and SNOWGATE_AUTH_SECRET
-- differ, or --auth-header is not sf-custom-snowgate-secret. A 504 from the
-- gateway on slow batches: the x-google-backend deadline is below
-- --batch-timeout.
