-- =============================================================================
-- snowgate on Azure: Snowflake -> Azure API Management -> snowgate -> provider
-- =============================================================================
--
-- What this script sets up, in order:
--   1. (Azure, outside Snowflake) snowgate running behind an Azure API
--      Management (APIM) instance, and an Entra ID (Azure AD) app
--      registration that stands for snowgate's API.
--   2. An API integration that tells Snowflake which tenant and which app to
--      request tokens for, and which APIM URLs it may call.
--   3. Consent for Snowflake's own multi-tenant app in your tenant, and an
--      APIM policy that only lets Snowflake's tokens through.
--   4. The SECURE external function resolve_location(id VARCHAR) RETURNS
--      VARIANT, carrying the shared secret that snowgate checks.
--   5. Grants and a smoke test.
--
-- Placeholders in angle brackets: replace every one before running.
--   <admin_role>               role with CREATE INTEGRATION (ACCOUNTADMIN has it)
--   <integration_name>         e.g. snowgate_azure_api
--   <tenant_id>                your Entra ID tenant (directory) ID
--   <azure_ad_application_id>  Application (client) ID of the app registration
--                              from step 1b
--   <apim_base_url>            https://<apim_service_name>.azure-api.net/<api_url_suffix>
--   <database>, <schema>       where the function lives
--   <function_owner_role>      role that owns the function
--   <analyst_role>             role that may call the function
--   <shared_secret>            a long random string, also given to snowgate as
--                              SNOWGATE_AUTH_SECRET (see step 1)
--   <provider_host>            the location provider's host name
--   <provider_token>           the provider's bearer token (snowgate's environment only)
--   <known_id>                 an ID the provider knows, for the smoke test
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Step 1 (Azure side, not SQL): run snowgate and put APIM in front.
-- -----------------------------------------------------------------------------
-- a) Run the container image (see the Dockerfile), for example on Azure
--    Container Apps with ingress limited to APIM, with:
--
--      snowgate serve
--        --listen :8080                                  (SNOWGATE_LISTEN)
--        --path /resolve_location                        (SNOWGATE_PATH)
--        --auth-header sf-custom-snowgate-secret         (SNOWGATE_AUTH_HEADER)
--        --batch-timeout 25s                             (SNOWGATE_BATCH_TIMEOUT)
--        --upstream-url 'https://<provider_host>/api/v2/entities/{id}?select=id,label,location'
--                                                        (SNOWGATE_UPSTREAM_URL)
--        --rate <provider_requests_per_second / replicas> (SNOWGATE_RATE)
--
--    and in the environment (from a secret store, never on the command line):
--      SNOWGATE_UPSTREAM_TOKEN=<provider_token>
--      SNOWGATE_AUTH_SECRET=<shared_secret>
--
--    The function's HEADERS = ('snowgate-secret' = ...) reaches snowgate as
--    the header sf-custom-snowgate-secret (APIM forwards request headers by
--    default); snowgate answers 401 without it. /healthz, /readyz and
--    /metrics stay open for the platform's probes and Prometheus; do not
--    publish them through APIM.
--
-- b) In Entra ID, register an app that represents snowgate's API (single
--    tenant). Its Application (client) ID is <azure_ad_application_id>;
--    Snowflake will ask Entra ID for tokens whose audience is this app.
--
-- c) In APIM, create an API with URL suffix <api_url_suffix> whose backend is
--    http://<container_app_host>/ and an operation POST /resolve_location.
--    If you run snowgate with --async, add GET /resolve_location as well:
--    Snowflake polls an unfinished batch with GET on the same URL.
--    Keep APIM's backend timeout (the forward-request policy's timeout)
--    above snowgate's --batch-timeout (25s), so snowgate, not the proxy,
--    decides what a slow batch answers.


-- -----------------------------------------------------------------------------
-- Step 2: the API integration.
-- -----------------------------------------------------------------------------
USE ROLE <admin_role>;

-- API_ALLOWED_PREFIXES limits which URLs a function built on this
-- integration may call: keep it to this API's suffix.
CREATE OR REPLACE API INTEGRATION <integration_name>
    API_PROVIDER = azure_api_management
    AZURE_TENANT_ID = '<tenant_id>'
    AZURE_AD_APPLICATION_ID = '<azure_ad_application_id>'
    API_ALLOWED_PREFIXES = ('<apim_base_url>/')
    ENABLED = TRUE
    COMMENT = 'snowgate: Snowflake calls APIM with Entra ID tokens for the snowgate app';


-- -----------------------------------------------------------------------------
-- Step 3: consent, and let only Snowflake through APIM.
-- -----------------------------------------------------------------------------
-- DESCRIBE shows a consent URL and the name of Snowflake's multi-tenant app
-- for this integration:
DESCRIBE INTEGRATION <integration_name>;

SELECT "property", "property_value"
FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))
WHERE "property" IN ('AZURE_CONSENT_URL', 'AZURE_MULTI_TENANT_APP_NAME');

-- a) Open AZURE_CONSENT_URL in a browser as a tenant administrator and
--    accept. Snowflake's app then appears under Enterprise applications with
--    the name AZURE_MULTI_TENANT_APP_NAME; note its Application ID
--    (<snowflake_app_id>).
--
-- b) Without a token check, anything in your tenant with a token for the app
--    could call the API. Add an inbound validate-jwt policy to the API in
--    APIM so only Snowflake's app is accepted:
--
--      <validate-jwt header-name="Authorization" failed-validation-httpcode="401"
--                    failed-validation-error-message="Unauthorized">
--        <openid-config url="https://login.microsoftonline.com/<tenant_id>/.well-known/openid-configuration" />
--        <audiences>
--          <audience><azure_ad_application_id></audience>
--          <audience>api://<azure_ad_application_id></audience>
--        </audiences>
--        <required-claims>
--          <claim name="appid"><value><snowflake_app_id></value></claim>
--        </required-claims>
--      </validate-jwt>
--
--    Decode one token if a call is refused: the audience claim must match
--    one of the listed values exactly.


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
-- uncached IDs fits in the 25 s batch timeout at the replica's --rate.
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
    AS '<apim_base_url>/resolve_location';


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

-- A 401 from APIM: the validate-jwt policy (audience or appid claim) or the
-- consent in step 3a. A 401 from snowgate: the HEADERS value and
-- SNOWGATE_AUTH_SECRET differ, or --auth-header is not
-- sf-custom-snowgate-secret. snowgate logs each batch with its Snowflake
-- query ID and batch ID.
