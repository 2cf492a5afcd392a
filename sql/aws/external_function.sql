-- =============================================================================
-- snowgate on AWS: Snowflake -> Amazon API Gateway -> snowgate -> provider
-- =============================================================================
--
-- What this script sets up, in order:
--   0. The roles, and the warehouse every SELECT below runs on.
--   1. (AWS, outside Snowflake) snowgate running in a private subnet behind
--      Amazon API Gateway, and an IAM role that Snowflake will assume to call
--      the gateway.
--   2. An API integration that tells Snowflake which role to assume and which
--      gateway URLs it may call.
--   3. The trust between Snowflake's AWS identity and your role (external ID).
--   4. The SECURE external function resolve_location(id VARCHAR) RETURNS
--      VARIANT, carrying the shared secret that snowgate checks.
--   5. Grants, and a smoke test run as the analyst role.
--
-- Run it as a user who holds ACCOUNTADMIN (CREATE INTEGRATION, CREATE ROLE
-- and MANAGE GRANTS in one role). ACCOUNTADMIN owns nothing the function
-- needs at run time; it only sets things up.
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
--   <integration_name>      e.g. snowgate_aws_api
--   <aws_account_id>        12-digit AWS account that owns the role and gateway
--   <iam_role_name>         name of the IAM role of step 1c
--   <iam_role_arn>          its ARN: arn:aws:iam::<aws_account_id>:role/<iam_role_name>
--   <stage>                 the stage the REST API is deployed to
--   <api_gateway_url>       invoke URL of that stage, of the form
--                           https://<api_id>.execute-api.<region>.amazonaws.com/<stage>
--   <nlb_dns_name>          DNS name of the internal Network Load Balancer
--                           in front of snowgate (step 1a)
--   <shared_secret>         a long random string (openssl rand -hex 32), also
--                           given to snowgate as SNOWGATE_AUTH_SECRET (step 1a)
--   <new_shared_secret>     only when rotating it later (end of step 4)
--   <provider_host>         the location provider's host name
--   <provider_token>        the provider's bearer token (snowgate's environment only)
--   <rate_per_replica>      the provider's requests/s divided by the replicas
--                           (snowgate's --rate: each replica keeps its own)
--   <known_id>              an ID the provider knows, for the smoke test
-- Values you read along the way (step 1c and 3), not before:
--   <method_arn_of_POST_resolve_location>   from the API Gateway console
--   <API_AWS_IAM_USER_ARN>, <API_AWS_EXTERNAL_ID>   from DESCRIBE INTEGRATION
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
-- Step 1 (AWS side, not SQL): run snowgate and put API Gateway in front.
-- -----------------------------------------------------------------------------
-- a) Run the container image (see the Dockerfile) in private subnets, for
--    example on ECS/Fargate, behind an internal Network Load Balancer with a
--    TCP listener on 8080. Give the tasks a security group that admits port
--    8080 only from the load balancer, never from 0.0.0.0/0: API Gateway
--    reaches the service through the VPC link of step 1b, your Prometheus
--    scrapes /metrics from inside the VPC, and nothing on the internet can
--    call /resolve_location around API Gateway or read /metrics. Run:
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
--    and in the environment (from Secrets Manager, never on the command
--    line, never in logs):
--      SNOWGATE_UPSTREAM_TOKEN=<provider_token>
--      SNOWGATE_AUTH_SECRET=<shared_secret>
--
--    Why the header is sf-custom-snowgate-secret: the function below declares
--    HEADERS = ('snowgate-secret' = ...), and Snowflake sends every such
--    header with the prefix sf-custom-. snowgate answers 401 to a request
--    without the right value, so a caller that reaches the backend without
--    going through this function gets nothing.
--
-- b) Create a REST API in API Gateway (Snowflake calls REST APIs, not HTTP
--    APIs) and a VPC link to the load balancer of step 1a (a REST API's VPC
--    link targets a Network Load Balancer). Then a resource /resolve_location:
--      - method POST, Authorization = AWS_IAM, integration type HTTP proxy,
--        connection type VPC link (the private integration), endpoint URL
--        http://<nlb_dns_name>:8080/resolve_location; headers and body pass
--        through unchanged;
--      - method GET as well, same integration, if you run snowgate with
--        --async: Snowflake polls an unfinished batch with GET on the same
--        URL, and a proxy without GET turns every slow batch into an error.
--        Without --redis-url snowgate keeps an async batch in the memory of
--        the replica that took it, so with --async either share Redis
--        (deploy/kubernetes.yaml shows how) or run one replica.
--    Publish nothing else: /healthz, /readyz and /metrics stay inside the VPC.
--    API Gateway ends an integration call after 29 seconds by default, which
--    is why snowgate's --batch-timeout defaults to 25s: a batch that is not
--    done by then either goes asynchronous (--async, the POST gets 202) or
--    answers its unresolved rows per --on-row-error, instead of being cut off.
--
-- c) Create an IAM role (<iam_role_name>) for "another AWS account" (for now
--    your own account ID; step 3 replaces the principal with Snowflake's), and
--    give the API a resource policy that lets only this role invoke it:
--
--      {
--        "Version": "2012-10-17",
--        "Statement": [{
--          "Effect": "Allow",
--          "Principal": {"AWS": "arn:aws:sts::<aws_account_id>:assumed-role/<iam_role_name>/snowflake"},
--          "Action": "execute-api:Invoke",
--          "Resource": "<method_arn_of_POST_resolve_location>"
--        }]
--      }
--    (add the GET method's ARN too when using --async), then deploy the API
--    to <stage>. Its invoke URL is <api_gateway_url>.


-- -----------------------------------------------------------------------------
-- Step 2: the API integration (still as ACCOUNTADMIN).
-- -----------------------------------------------------------------------------
-- API_PROVIDER: aws_api_gateway for a regional/edge endpoint;
-- aws_private_api_gateway for a private endpoint; the aws_gov_* variants in
-- GovCloud. API_ALLOWED_PREFIXES limits which URLs a function built on this
-- integration may call: keep it as narrow as the stage (or the resource).
CREATE OR REPLACE API INTEGRATION <integration_name>
    API_PROVIDER = aws_api_gateway
    API_AWS_ROLE_ARN = '<iam_role_arn>'
    API_ALLOWED_PREFIXES = ('<api_gateway_url>/')
    ENABLED = TRUE
    COMMENT = 'snowgate: Snowflake calls API Gateway as this IAM role';


-- -----------------------------------------------------------------------------
-- Step 3: trust Snowflake's AWS identity, with the external ID.
-- -----------------------------------------------------------------------------
-- Snowflake assumes <iam_role_arn> as its own AWS user and presents an
-- external ID unique to this integration. Read both values (the SELECT must
-- follow DESCRIBE directly: it reads the last query's result):
DESCRIBE INTEGRATION <integration_name>;

SELECT "property", "property_value"
FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))
WHERE "property" IN ('API_AWS_IAM_USER_ARN', 'API_AWS_EXTERNAL_ID');

-- Then, in IAM, edit the trust policy of <iam_role_name> so that only that
-- user with that external ID may assume the role:
--
--   {
--     "Version": "2012-10-17",
--     "Statement": [{
--       "Effect": "Allow",
--       "Principal": {"AWS": "<API_AWS_IAM_USER_ARN>"},
--       "Action": "sts:AssumeRole",
--       "Condition": {"StringEquals": {"sts:ExternalId": "<API_AWS_EXTERNAL_ID>"}}
--     }]
--   }
--
-- CREATE OR REPLACE on the integration issues a new external ID: if you
-- re-run step 2, repeat step 3.


-- -----------------------------------------------------------------------------
-- Step 4: the external function.
-- -----------------------------------------------------------------------------
-- The function must be owned by a role that has USAGE on the integration.
GRANT USAGE ON INTEGRATION <integration_name> TO ROLE <function_owner_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <function_owner_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <function_owner_role>;
GRANT CREATE FUNCTION ON SCHEMA <database>.<schema> TO ROLE <function_owner_role>;

USE ROLE <function_owner_role>;
USE WAREHOUSE <warehouse>;
USE DATABASE <database>;
USE SCHEMA <schema>;

-- SECURE hides the URL, the HEADERS (so the shared secret) and the context
-- headers from every role but the owner (not from query history: see the
-- header of this script).
--
-- RETURNS NULL ON NULL INPUT: NULL IDs are answered NULL by Snowflake itself
-- and never travel to snowgate (which would also answer them NULL).
--
-- VOLATILE: the provider's answer for an ID may change over time, so
-- Snowflake must not assume it is a pure function of the ID.
--
-- HEADERS: a constant sent with every batch as sf-custom-snowgate-secret;
-- snowgate compares it (in constant time) with SNOWGATE_AUTH_SECRET.
--
-- CONTEXT_HEADERS: who is asking, sent as sf-context-current-user,
-- sf-context-current-role and sf-context-current-account; snowgate logs them
-- with each batch. The query ID needs no context header: Snowflake always
-- sends it as sf-external-function-current-query-id (and the batch ID as
-- sf-external-function-query-batch-id).
--
-- MAX_BATCH_ROWS: an upper bound; Snowflake picks the actual batch size.
-- Sizing, per snowgate replica:
--   * Every row of a batch must be answered within --batch-timeout (25 s).
--     Cached IDs cost microseconds; uncached IDs cost provider calls, which
--     the replica's --rate shares among all batches it is serving at once.
--     Rough bound for a cold batch: concurrent_batches x MAX_BATCH_ROWS
--     <= rate x 25 s. Example: --rate 200 and 8 batches at once per replica
--     -> 8 x 500 = 4,000 <= 200 x 25 = 5,000: 500 rows fit, 1,000 do not.
--   * For a first, mostly uncached backfill, either run `snowgate backfill`
--     instead of SQL, or run the gateway with --async (a slow batch answers
--     202 and finishes in the background; Snowflake polls for up to 10
--     minutes), or accept that unresolved rows come back per --on-row-error
--     (NULL by default) and fill them in with the incremental MERGE in
--     ../examples.sql.
--   * Response size is never the limit here: a resolved row is a few hundred
--     bytes, so 1,000 rows stay far below API Gateway's 10 MB.
--
-- COMPRESSION: AUTO lets Snowflake compress request bodies; snowgate accepts
-- gzip and deflate and compresses its answer when Snowflake accepts it.
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
    AS '<api_gateway_url>/resolve_location';

-- Rotating the shared secret later (as <function_owner_role>): snowgate
-- checks exactly one SNOWGATE_AUTH_SECRET, so pick a quiet moment, then
--   1. roll the new value out as SNOWGATE_AUTH_SECRET, replica by replica
--      (a new ECS deployment);
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

-- Expect an object with the keys id, label, geo_label, street_address,
-- city_label, postal_code, country_label, latitude, longitude; NULL means
-- not found or no location (or, with --not-found object, {"found": false}).
SELECT resolve_location('<known_id>') AS location;

-- If this fails, the message usually names the layer:
--   * "No active warehouse selected": <warehouse> is missing or the role
--     lacks USAGE on it (step 0).
--   * "Request failed for external function ... 403" or similar: IAM trust
--     (step 3) or the API's resource policy (step 1c).
--   * a timeout or 5xx from API Gateway: the VPC link cannot reach the load
--     balancer, or the tasks' security group does not admit it (step 1a).
--   * HTTP 401 from snowgate: the HEADERS value and SNOWGATE_AUTH_SECRET
--     differ, or the gateway checks another header than
--     --auth-header sf-custom-snowgate-secret.
--   * any other 4xx: snowgate's one-line reason, shown as is.
-- snowgate logs every batch with its query ID and batch ID, so the query ID
-- from Snowflake's history finds the matching log lines.
