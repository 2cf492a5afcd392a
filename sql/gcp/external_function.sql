-- =============================================================================
-- snowgate on Google Cloud: Snowflake -> Google API Gateway -> snowgate -> provider
-- =============================================================================
--
-- What this script sets up, in order:
--   0. The roles, and the warehouse every SELECT below runs on.
--   1. (Google Cloud, outside Snowflake) snowgate running on Cloud Run,
--      invokable only by the API Gateway's service account, behind a Google
--      API Gateway.
--   2. An API integration that tells Snowflake which audience to put in the
--      JWT it signs, and which gateway URLs it may call.
--   3. The gateway's API config, updated to accept only JWTs signed by
--      Snowflake's service account for this integration.
--   4. The SECURE external function resolve_location(id VARCHAR) RETURNS
--      VARIANT, carrying the shared secret that snowgate checks.
--   5. Grants, and a smoke test run as the analyst role.
--
-- Run it as a user who holds ACCOUNTADMIN (CREATE INTEGRATION, CREATE ROLE
-- and MANAGE GRANTS in one role), and the gcloud commands as a Google Cloud
-- user who may enable services, deploy to Cloud Run, create service accounts
-- and grant IAM roles in <project_id>.
--
-- Placeholders in angle brackets: replace every one before running.
--   <warehouse>             an existing warehouse ACCOUNTADMIN may use; the
--                           script grants it to the two roles below
--   <database>, <schema>    where the function lives
--   <function_owner_role>   role that will own the function (created below)
--   <analyst_role>          role that may call the function (created below)
--   <admin_user>            your own Snowflake user (SELECT CURRENT_USER()):
--                           granted both roles so this script can USE them
--   <analyst_user>          a user who will call the function
--   <integration_name>      e.g. snowgate_gcp_api
--   <project_id>, <region>  the Google Cloud project and region (e.g. us-central1)
--   <image_url>             the snowgate image (see the Dockerfile) pushed to
--                           an Artifact Registry repository of <project_id>
--   <max_instances>         most Cloud Run instances allowed
--   <rate_per_instance>     the provider's limit divided by <max_instances>
--   <shared_secret>         a long random string (openssl rand -hex 32), also
--                           given to snowgate as SNOWGATE_AUTH_SECRET (step 1b)
--   <new_shared_secret>     only when rotating it later (end of step 4)
--   <provider_host>         the location provider's host name
--   <provider_token>        the provider's bearer token (Secret Manager only)
--   <known_id>              an ID the provider knows, for the smoke test
-- Values you read along the way (steps 1 and 3), not before:
--   <cloud_run_url>         https URL of the snowgate Cloud Run service
--   <gateway_host>          host name of the deployed gateway
--   <gateway_base_url>      https://<gateway_host>
--   <google_audience>       the API's managed service name, as gcloud prints it
--                           (of the form <api_id>-<hash>.apigateway.<project_id>.cloud.goog)
--   <API_GCP_SERVICE_ACCOUNT>   from DESCRIBE INTEGRATION
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
-- Step 1 (Google Cloud side, not SQL): Cloud Run, and the gateway in front.
-- -----------------------------------------------------------------------------
-- a) The services API Gateway needs (apigateway, servicemanagement,
--    servicecontrol), plus Cloud Run and Secret Manager:
--
--      gcloud services enable apigateway.googleapis.com \
--          servicemanagement.googleapis.com servicecontrol.googleapis.com \
--          run.googleapis.com secretmanager.googleapis.com --project <project_id>
--
-- b) The secrets, and one service account for snowgate and one for the
--    gateway. snowgate's may read the secrets; the gateway's may only invoke
--    snowgate (step 1c):
--
--      printf %s '<provider_token>' | gcloud secrets create snowgate-upstream-token \
--          --data-file=- --project <project_id>
--      printf %s '<shared_secret>' | gcloud secrets create snowgate-auth-secret \
--          --data-file=- --project <project_id>
--      gcloud iam service-accounts create snowgate-run --project <project_id>
--      gcloud iam service-accounts create snowgate-gateway --project <project_id>
--      gcloud secrets add-iam-policy-binding snowgate-upstream-token --project <project_id> \
--          --member serviceAccount:snowgate-run@<project_id>.iam.gserviceaccount.com \
--          --role roles/secretmanager.secretAccessor
--      gcloud secrets add-iam-policy-binding snowgate-auth-secret --project <project_id> \
--          --member serviceAccount:snowgate-run@<project_id>.iam.gserviceaccount.com \
--          --role roles/secretmanager.secretAccessor
--
--    (printf keeps the secrets out of files; clear your shell history after.)
--
-- c) Deploy snowgate to Cloud Run and let only the gateway's account invoke
--    it. The image's default command is `snowgate serve` on :8080
--    (SNOWGATE_LISTEN); the '^|^' prefix makes | the separator, because the
--    upstream URL contains commas:
--
--      gcloud run deploy snowgate --project <project_id> --region <region> \
--          --image <image_url> --port 8080 \
--          --service-account snowgate-run@<project_id>.iam.gserviceaccount.com \
--          --ingress all --no-allow-unauthenticated \
--          --max-instances <max_instances> --timeout 60 \
--          --set-env-vars '^|^SNOWGATE_PATH=/resolve_location|SNOWGATE_AUTH_HEADER=sf-custom-snowgate-secret|SNOWGATE_BATCH_TIMEOUT=25s|SNOWGATE_RATE=<rate_per_instance>|SNOWGATE_UPSTREAM_URL=https://<provider_host>/api/v2/entities/{id}?select=id,label,location' \
--          --set-secrets SNOWGATE_UPSTREAM_TOKEN=snowgate-upstream-token:latest,SNOWGATE_AUTH_SECRET=snowgate-auth-secret:latest
--      gcloud run services add-iam-policy-binding snowgate --project <project_id> \
--          --region <region> \
--          --member serviceAccount:snowgate-gateway@<project_id>.iam.gserviceaccount.com \
--          --role roles/run.invoker
--      gcloud run services describe snowgate --project <project_id> --region <region> \
--          --format 'value(status.url)'            # prints <cloud_run_url>
--
--    --ingress all: API Gateway reaches Cloud Run over Google's public
--    front end, not from a VPC, so "internal" ingress would refuse it.
--    --no-allow-unauthenticated keeps Cloud Run's IAM check on: only
--    callers holding roles/run.invoker (the gateway's account, through the
--    ID token it presents) get in; everyone else, /metrics included, gets
--    403. Scrape /metrics through Cloud Run's own monitoring or a sidecar.
--
--    Each instance has its own cache and its own --rate, so the rate per
--    instance is the provider's limit divided by <max_instances>.
--    Cloud Run's --timeout (60 s) stays above the gateway's deadline (30 s,
--    below), which stays above snowgate's --batch-timeout (25 s).
--
-- d) Create the API and a first config from this OpenAPI 2.0 file,
--    snowgate-openapi.yaml (the security section is added in step 3, once
--    Snowflake's service account is known):
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
--      gcloud api-gateway apis create snowgate --project <project_id>
--      gcloud api-gateway api-configs create snowgate-1 --project <project_id> \
--          --api snowgate --openapi-spec snowgate-openapi.yaml \
--          --backend-auth-service-account snowgate-gateway@<project_id>.iam.gserviceaccount.com
--      gcloud api-gateway gateways create snowgate --project <project_id> \
--          --location <region> --api snowgate --api-config snowgate-1
--      gcloud api-gateway gateways describe snowgate --project <project_id> \
--          --location <region> --format 'value(defaultHostname)'   # <gateway_host>
--      gcloud api-gateway apis describe snowgate --project <project_id> \
--          --format 'value(managedService)'                       # <google_audience>
--
--    --backend-auth-service-account is the identity the gateway signs its
--    calls to Cloud Run with: the account granted roles/run.invoker in
--    step 1c. Without it the gateway calls as a default identity Cloud Run
--    refuses with 403. Creating the config needs permission to act as that
--    account (roles/iam.serviceAccountUser on it).


-- -----------------------------------------------------------------------------
-- Step 2: the API integration (still as ACCOUNTADMIN).
-- -----------------------------------------------------------------------------
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
-- The SELECT must follow DESCRIBE directly: it reads the last query's result.
DESCRIBE INTEGRATION <integration_name>;

SELECT "property", "property_value"
FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))
WHERE "property" = 'API_GCP_SERVICE_ACCOUNT';

-- Add a security definition for that service account to
-- snowgate-openapi.yaml, require it on every operation:
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
-- and deploy it as a new config (configs cannot be changed in place):
--
--      gcloud api-gateway api-configs create snowgate-2 --project <project_id> \
--          --api snowgate --openapi-spec snowgate-openapi.yaml \
--          --backend-auth-service-account snowgate-gateway@<project_id>.iam.gserviceaccount.com
--      gcloud api-gateway gateways update snowgate --project <project_id> \
--          --location <region> --api snowgate --api-config snowgate-2
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
USE WAREHOUSE <warehouse>;
USE DATABASE <database>;
USE SCHEMA <schema>;

-- The clauses are explained in ../aws/external_function.sql (step 4); in
-- short: SECURE hides the secret from non-owners (not from query history),
-- NULL IDs never leave Snowflake, HEADERS carries the shared secret as
-- sf-custom-snowgate-secret, CONTEXT_HEADERS say who is asking,
-- MAX_BATCH_ROWS is sized so a batch of uncached IDs fits in the 25 s batch
-- timeout at the instance's --rate.
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

-- Rotating the shared secret later (as <function_owner_role>): snowgate
-- checks exactly one SNOWGATE_AUTH_SECRET, so pick a quiet moment, then
--   1. add the new value as a version of snowgate-auth-secret and deploy a
--      new Cloud Run revision (gcloud run services update snowgate
--      --project <project_id> --region <region>
--      --update-secrets SNOWGATE_AUTH_SECRET=snowgate-auth-secret:latest);
--   2. at once, point the function at it:
--        ALTER FUNCTION resolve_location(VARCHAR)
--            SET HEADERS = ('snowgate-secret' = '<new_shared_secret>');
-- Between the two, batches reaching an instance with the other value get 401
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
-- USAGE on it (step 0). A 401 or 403 from the gateway: the security
-- definition (issuer, audience) of step 3. A 403 from Cloud Run: the
-- gateway's account lacks roles/run.invoker, or the config was created
-- without --backend-auth-service-account (steps 1c, 1d). A 401 from
-- snowgate: the HEADERS value and SNOWGATE_AUTH_SECRET differ, or
-- --auth-header is not sf-custom-snowgate-secret. A 504 from the gateway on
-- slow batches: the x-google-backend deadline is below --batch-timeout.
