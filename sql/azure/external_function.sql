-- =============================================================================
-- snowgate on Azure: Snowflake -> Azure API Management -> snowgate -> provider
-- =============================================================================
--
-- What this script sets up, in order:
--   0. The roles, and the warehouse every SELECT below runs on.
--   1. (Azure, outside Snowflake) snowgate running on Azure Container Apps
--      behind an Azure API Management (APIM) instance, and an Entra ID
--      (Azure AD) app registration that stands for snowgate's API.
--   2. An API integration that tells Snowflake which tenant and which app to
--      request tokens for, and which APIM URLs it may call.
--   3. Consent for Snowflake's own multi-tenant app in your tenant, and an
--      APIM policy that only lets Snowflake's tokens through.
--   4. The SECURE external function resolve_location(id VARCHAR) RETURNS
--      VARIANT, carrying the shared secret that snowgate checks.
--   5. Grants, and a smoke test run as the analyst role.
--
-- Run it as a user who holds ACCOUNTADMIN (CREATE INTEGRATION, CREATE ROLE
-- and MANAGE GRANTS in one role).
--
-- Placeholders in angle brackets: replace every one before running.
--   <warehouse>                an existing warehouse ACCOUNTADMIN may use; the
--                              script grants it to the two roles below
--   <database>, <schema>       where the function lives
--   <function_owner_role>      role that will own the function (created below)
--   <analyst_role>             role that may call the function (created below)
--   <admin_user>               your own Snowflake user (SELECT CURRENT_USER()):
--                              granted both roles so this script can USE them
--   <analyst_user>             a user who will call the function
--   <integration_name>         e.g. snowgate_azure_api
--   <tenant_id>                your Entra ID tenant (directory) ID
--   <azure_ad_application_id>  Application (client) ID of the app registration
--                              from step 1b
--   <resource_group>           Azure resource group of the container app and APIM
--   <container_app_fqdn>       the container app's ingress host name (step 1a)
--   <apim_service_name>        the APIM instance
--   <api_url_suffix>           the API's URL suffix in APIM, e.g. snowgate
--   <apim_base_url>            https://<apim_service_name>.azure-api.net/<api_url_suffix>
--   <shared_secret>            a long random string (openssl rand -hex 32), also
--                              given to snowgate as SNOWGATE_AUTH_SECRET (step 1a)
--   <new_shared_secret>        only when rotating it later (end of step 4)
--   <provider_host>            the location provider's host name
--   <provider_token>           the provider's bearer token (snowgate's environment only)
--   <rate_per_replica>         the provider's requests/s divided by the replicas
--                              (snowgate's --rate: each replica keeps its own)
--   <known_id>                 an ID the provider knows, for the smoke test
-- Values you read along the way (step 3), not before:
--   <snowflake_app_id>         Application ID of Snowflake's app in your tenant
--
-- The shared secret is written into CREATE FUNCTION below, so the statement
-- text, secret included, stays in query history (QUERY_HISTORY views,
-- Snowsight) for whoever may read this user's queries. SECURE only hides it
-- from DESCRIBE and GET_DDL. Run step 4 as a user whose history few can read,
-- and rotate the secret as shown at the end of step 4 when people change.
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Step 0: roles and the warehouse.
-- -----------------------------------------------------------------------------
USE ROLE ACCOUNTADMIN;
USE WAREHOUSE <warehouse>;

CREATE ROLE IF NOT EXISTS <function_owner_role>
    COMMENT = 'snowgate: owns the resolve_location external function';
CREATE ROLE IF NOT EXISTS <analyst_role>
    COMMENT = 'snowgate: may call resolve_location';

-- Custom roles hang under SYSADMIN (Snowflake's recommended hierarchy). The
-- grants to <admin_user> are what let this script USE ROLE them below;
-- revoke them afterwards if you like.
GRANT ROLE <function_owner_role> TO ROLE SYSADMIN;
GRANT ROLE <analyst_role> TO ROLE SYSADMIN;
GRANT ROLE <function_owner_role> TO USER <admin_user>;
GRANT ROLE <analyst_role> TO USER <admin_user>;
GRANT ROLE <analyst_role> TO USER <analyst_user>;

-- Without USAGE on a warehouse every SELECT fails with "No active warehouse
-- selected", including the smoke test in step 5.
GRANT USAGE ON WAREHOUSE <warehouse> TO ROLE <function_owner_role>;
GRANT USAGE ON WAREHOUSE <warehouse> TO ROLE <analyst_role>;


-- -----------------------------------------------------------------------------
-- Step 1 (Azure side, not SQL): run snowgate and put APIM in front.
-- -----------------------------------------------------------------------------
-- a) Run the container image (see the Dockerfile) as a container app named
--    snowgate on Azure Container Apps, ingress enabled on target port 8080,
--    insecure (plain HTTP) connections not allowed, with:
--
--      snowgate serve
--        --listen :8080                                  (SNOWGATE_LISTEN)
--        --path /resolve_location                        (SNOWGATE_PATH)
--        --auth-header sf-custom-snowgate-secret         (SNOWGATE_AUTH_HEADER)
--        --batch-timeout 25s                             (SNOWGATE_BATCH_TIMEOUT)
--        --upstream-url 'https://<provider_host>/api/v2/entities/{id}?select=id,label,location'
--                                                        (SNOWGATE_UPSTREAM_URL)
--        --rate <rate_per_replica>                       (SNOWGATE_RATE)
--
--    and in the environment (from Container Apps secrets or Key Vault, never
--    on the command line):
--      SNOWGATE_UPSTREAM_TOKEN=<provider_token>
--      SNOWGATE_AUTH_SECRET=<shared_secret>
--
--    Limit the ingress to APIM: either IP restrictions that allow only the
--    APIM instance's outbound addresses, or an internal Container Apps
--    environment in a virtual network APIM is joined to. /healthz, /readyz
--    and /metrics stay open for the platform's probes and Prometheus behind
--    that restriction; do not publish them through APIM.
--
--    The ingress host name, used as the backend below:
--      az containerapp show --resource-group <resource_group> --name snowgate \
--          --query properties.configuration.ingress.fqdn --output tsv
--    Container Apps answers plain HTTP with a redirect to HTTPS, and APIM
--    does not follow redirects (Snowflake would see the 301), so the backend
--    URL must be https://<container_app_fqdn>.
--
--    The function's HEADERS = ('snowgate-secret' = ...) reaches snowgate as
--    the header sf-custom-snowgate-secret (APIM forwards request headers by
--    default); snowgate answers 401 without it.
--
-- b) In Entra ID, register an app that represents snowgate's API (single
--    tenant). Its Application (client) ID is <azure_ad_application_id>;
--    Snowflake will ask Entra ID for tokens whose audience is this app.
--
-- c) In APIM, create the API and its operation:
--
--      az apim api create --resource-group <resource_group> \
--          --service-name <apim_service_name> --api-id snowgate \
--          --display-name snowgate --path <api_url_suffix> \
--          --service-url https://<container_app_fqdn> --protocols https \
--          --subscription-required false
--      az apim api operation create --resource-group <resource_group> \
--          --service-name <apim_service_name> --api-id snowgate \
--          --operation-id resolve-location --display-name resolve_location \
--          --method POST --url-template /resolve_location
--
--    --subscription-required false: a new APIM API demands a subscription
--    key (Ocp-Apim-Subscription-Key) by default and answers 401 without one,
--    and Snowflake sends none unless the integration carries API_KEY. We
--    turn the requirement off instead of adding that key: the validate-jwt
--    policy of step 3b already admits only Snowflake's own Entra ID tokens,
--    and the shared secret proves the call came through this function; a
--    subscription key would be a third static secret to store and rotate
--    without telling APIM anything new about the caller. Do not skip step 3b.
--
--    If you run snowgate with --async, add a GET operation on
--    /resolve_location as well (--operation-id poll-location): Snowflake
--    polls an unfinished batch with GET on the same URL.
--    Keep APIM's backend timeout (the forward-request policy's timeout)
--    above snowgate's --batch-timeout (25s), so snowgate, not the proxy,
--    decides what a slow batch answers.


-- -----------------------------------------------------------------------------
-- Step 2: the API integration (still as ACCOUNTADMIN).
-- -----------------------------------------------------------------------------
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
-- for this integration (the SELECT must follow DESCRIBE directly: it reads
-- the last query's result):
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
--    could call the API. Add an inbound validate-jwt policy to the snowgate
--    API in APIM (All operations, Inbound processing) so only Snowflake's
--    app is accepted:
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
USE WAREHOUSE <warehouse>;
USE DATABASE <database>;
USE SCHEMA <schema>;

-- The clauses are explained in ../aws/external_function.sql (step 4); in
-- short: SECURE hides the secret from non-owners (not from query history),
-- NULL IDs never leave Snowflake, HEADERS carries the shared secret as
-- sf-custom-snowgate-secret, CONTEXT_HEADERS say who is asking,
-- MAX_BATCH_ROWS is sized so a batch of uncached IDs fits in the 25 s batch
-- timeout at the replica's --rate.
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

-- Rotating the shared secret later (as <function_owner_role>): snowgate
-- checks exactly one SNOWGATE_AUTH_SECRET, so pick a quiet moment, then
--   1. roll the new value out as SNOWGATE_AUTH_SECRET (a new Container Apps
--      revision; replicas move to it one by one);
--   2. at once, point the function at it:
--        ALTER FUNCTION resolve_location(VARCHAR)
--            SET HEADERS = ('snowgate-secret' = '<new_shared_secret>');
-- Between the two, batches reaching a replica with the other value get 401
-- and their queries fail; run them again. The ALTER statement lands in query
-- history like the CREATE did.


-- -----------------------------------------------------------------------------
-- Step 5: grants and a smoke test.
-- -----------------------------------------------------------------------------
USE ROLE ACCOUNTADMIN;
GRANT USAGE ON DATABASE <database> TO ROLE <analyst_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <analyst_role>;

USE ROLE <function_owner_role>;
GRANT USAGE ON FUNCTION <database>.<schema>.resolve_location(VARCHAR) TO ROLE <analyst_role>;

-- The smoke test runs as the analyst, so it proves the grants too.
USE ROLE <analyst_role>;
USE WAREHOUSE <warehouse>;
USE SCHEMA <database>.<schema>;

-- Expect an object (id, label, geo_label, street_address, city_label,
-- postal_code, country_label, latitude, longitude) or NULL.
SELECT resolve_location('<known_id>') AS location;

-- "No active warehouse selected": <warehouse> is missing or the role lacks
-- USAGE on it (step 0). A 401 from APIM: the validate-jwt policy (audience
-- or appid claim), the consent in step 3a, or an API that still requires a
-- subscription key (step 1c). A redirect (3xx): the backend URL is
-- http:// (step 1a). A 401 from snowgate: the HEADERS value and
-- SNOWGATE_AUTH_SECRET differ, or --auth-header is not
-- sf-custom-snowgate-secret. snowgate logs each batch with its Snowflake
-- query ID and batch ID.
