-- =============================================================================
-- snowgate on Amazon Redshift: Redshift -> AWS Lambda (snowgate) -> provider
-- =============================================================================
--
-- Redshift calls a Lambda function, never an HTTP endpoint, so snowgate runs
-- as the Lambda function itself (see the README, "Amazon Redshift"). What this
-- script sets up, in order:
--   1. (AWS, outside Redshift) the Lambda function, and an IAM role that
--      Redshift assumes to invoke it.
--   2. The role attached to the cluster or Serverless namespace.
--   3. The external function resolve_location(VARCHAR) RETURNS VARCHAR.
--   4. Grants, and a smoke test run as the analyst.
--
-- Run the SQL as a superuser (or a user allowed to CREATE EXTERNAL FUNCTION
-- and to grant on it).
--
-- Placeholders in angle brackets: replace every one before running.
--   <region>, <aws_account_id>   where the Lambda function and role live
--   <lambda_function_name>       e.g. snowgate-resolve-location
--   <iam_role_name>              e.g. snowgate-redshift-invoke
--   <iam_role_arn>               arn:aws:iam::<aws_account_id>:role/<iam_role_name>
--   <cluster_identifier>         a provisioned cluster, or
--   <namespace_name>             a Redshift Serverless namespace
--   <schema>                     where the function lives
--   <function_owner>             the user who creates the function (this one)
--   <analyst_role>               Redshift role that may call the function
--   <analyst_user>               a user who will call it
--   <known_id>                   an ID the provider knows, for the smoke test
--
-- Nothing here has been run against a live AWS account: the statements follow
-- Redshift's documentation of CREATE EXTERNAL FUNCTION and Lambda UDFs.
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Step 1 (AWS side, not SQL): the Lambda function and the invoking role.
-- -----------------------------------------------------------------------------
-- a) Create the Lambda function <lambda_function_name> from snowgate's
--    container image or its zip (README, "Amazon Redshift": packaging). Give
--    it the same settings as `snowgate serve`, in the environment:
--      SNOWGATE_UPSTREAM_URL='https://<provider_host>/api/v2/entities/{id}?select=id,label,location'
--      SNOWGATE_UPSTREAM_TOKEN  (from Secrets Manager, never in the SQL)
--      SNOWGATE_RATE            the provider's requests/s divided by the
--                               reserved concurrency below, unless
--                               SNOWGATE_REDIS_URL is set (then the whole
--                               limit, shared through Redis)
--      SNOWGATE_REDIS_URL       optional, strongly advised: see the README
--      SNOWGATE_BATCH_TIMEOUT   below the function's timeout (for example
--                               25s under a 60 s timeout), so rows still
--                               unresolved answer NULL instead of the
--                               invocation timing out and failing the query
--    and set the function's reserved concurrency: it caps how many instances
--    run at once, and so, without Redis, how many budgets reach the
--    provider. No shared secret is needed: only principals allowed
--    lambda:InvokeFunction can call the function.
--
-- b) Create the IAM role <iam_role_name> that Redshift assumes. Trust policy
--    (who may assume it):
--
--      {
--        "Version": "2012-10-17",
--        "Statement": [{
--          "Effect": "Allow",
--          "Principal": {"Service": "redshift.amazonaws.com"},
--          "Action": "sts:AssumeRole"
--        }]
--      }
--
--    and a permissions policy that lets it invoke this one function only:
--
--      {
--        "Version": "2012-10-17",
--        "Statement": [{
--          "Effect": "Allow",
--          "Action": "lambda:InvokeFunction",
--          "Resource": "arn:aws:lambda:<region>:<aws_account_id>:function:<lambda_function_name>"
--        }]
--      }
--
--    For Redshift Serverless the trust policy also lists
--    "redshift-serverless.amazonaws.com" beside "redshift.amazonaws.com".


-- -----------------------------------------------------------------------------
-- Step 2 (AWS side): attach the role.
-- -----------------------------------------------------------------------------
-- Provisioned cluster:
--   aws redshift modify-cluster-iam-roles --cluster-identifier <cluster_identifier>
--       --add-iam-roles <iam_role_arn>
-- Serverless (the list replaces the namespace's roles: include the others):
--   aws redshift-serverless update-namespace --namespace-name <namespace_name>
--       --iam-roles <iam_role_arn>
-- Wait until the role shows as in-sync before step 3.


-- -----------------------------------------------------------------------------
-- Step 3: the external function.
-- -----------------------------------------------------------------------------
-- A user other than a superuser needs USAGE on the exfunc language to create
-- a Lambda UDF (run as a superuser once):
GRANT USAGE ON LANGUAGE exfunc TO <function_owner>;

-- RETURNS VARCHAR(65535): each result is the JSON text of the location
-- object (a few hundred bytes; more with long labels); a bare VARCHAR is
-- VARCHAR(256), which a long record would overflow.
--
-- VOLATILE: the provider's answer for an ID may change over time.
--
-- RETRY_TIMEOUT: how long (ms) Redshift keeps retrying when Lambda throttles
-- the invocation (reserved concurrency reached). Redshift retries nothing
-- else: an answer with "success": false, for instance a malformed request or
-- --on-row-error fail, fails the query at once.
--
-- MAX_BATCH_ROWS: an upper bound; Redshift picks the actual batch. Every row
-- of a batch must be answered within SNOWGATE_BATCH_TIMEOUT: a batch of cold
-- IDs takes about rows x instances / rate seconds, since the instances share
-- the provider's limit. Example: limit 500 req/s, 10 instances, 25 s ->
-- 500 x 25 / 10 = 1,250 cold rows per batch; 1,000 fit. Cached IDs cost
-- microseconds. The answer (about 300 bytes a row) stays far below Lambda's
-- 6 MB response limit; MAX_BATCH_SIZE (at most 5 MB) caps the request.
CREATE OR REPLACE EXTERNAL FUNCTION <schema>.resolve_location(VARCHAR)
    RETURNS VARCHAR(65535)
    VOLATILE
    LAMBDA '<lambda_function_name>'
    IAM_ROLE '<iam_role_arn>'
    RETRY_TIMEOUT 20000
    MAX_BATCH_ROWS 1000
    MAX_BATCH_SIZE 1 MB;


-- -----------------------------------------------------------------------------
-- Step 4: grants and a smoke test.
-- -----------------------------------------------------------------------------
-- New functions are executable by PUBLIC; keep this one to the analysts.
REVOKE EXECUTE ON FUNCTION <schema>.resolve_location(VARCHAR) FROM PUBLIC;
CREATE ROLE <analyst_role>;
GRANT ROLE <analyst_role> TO <analyst_user>;
GRANT USAGE ON SCHEMA <schema> TO ROLE <analyst_role>;
GRANT EXECUTE ON FUNCTION <schema>.resolve_location(VARCHAR) TO ROLE <analyst_role>;

-- Run as <analyst_user>. Expect the JSON text of an object with the keys id,
-- label, geo_label, street_address, city_label, postal_code, country_label,
-- latitude, longitude; NULL means not found or no location (or, with
-- SNOWGATE_NOT_FOUND=object, {"found":false,...}).
SELECT <schema>.resolve_location('<known_id>') AS location;

-- If this fails, the message usually names the layer:
--   * "Invalid IAM role" or an access error: the role is not attached
--     (step 2) or its trust policy lacks redshift.amazonaws.com (step 1b).
--   * an AccessDenied from Lambda: the permissions policy (step 1b) names
--     another function or region.
--   * snowgate's own one-line reason (the "error_msg" of its answer): a
--     malformed request, an overload, or --on-row-error fail.
-- snowgate logs every invocation with Redshift's request_id and query_id.
