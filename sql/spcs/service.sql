-- =============================================================================
-- snowgate in Snowpark Container Services: Snowflake -> snowgate (in Snowflake) -> provider
-- =============================================================================
--
-- No cloud proxy, no API integration: the same container image runs inside
-- Snowflake as a service, and a service function sends it batches in the
-- same JSON format as an external function. What this script sets up:
--   1. Secrets for the provider token.
--   2. A network rule and an external access integration, so the service may
--      reach the provider's host (and nothing else).
--   3. An image repository, and (from a shell) the image pushed into it.
--   4. A compute pool.
--   5. The service, from the specification below.
--   6. The service function resolve_location(id VARCHAR) RETURNS VARIANT.
--   7. Grants and a smoke test.
--
-- Placeholders in angle brackets: replace every one before running.
--   <admin_role>          role with CREATE INTEGRATION and CREATE COMPUTE POOL
--                         on the account (ACCOUNTADMIN has both)
--   <service_owner_role>  role that owns the repository, service and function
--   <database>, <schema>  where the secret, repository, service and function live
--   <provider_host>       the provider's host name, e.g. the host part of the
--                         URL in --upstream-url
--   <provider_token>      the provider's bearer token
--   <image_tag>           e.g. the release version you built
--   <rate_per_instance>   provider requests/s per instance: the provider's
--                         limit divided by MAX_INSTANCES below
--   <analyst_role>        role that may call the function
--   <known_id>            an ID the provider knows, for the smoke test
--
-- Names used below (change them consistently if you must):
--   secret snowgate_upstream_token, network rule snowgate_provider_egress,
--   integration snowgate_provider_access, repository snowgate_repo,
--   compute pool snowgate_pool, service snowgate_service, container snowgate,
--   endpoint resolve, service role resolver.
-- =============================================================================

USE ROLE <admin_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <service_owner_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <service_owner_role>;
GRANT CREATE SECRET, CREATE IMAGE REPOSITORY, CREATE SERVICE, CREATE FUNCTION
    ON SCHEMA <database>.<schema> TO ROLE <service_owner_role>;
-- A service that exposes an endpoint is created by a role allowed to bind
-- service endpoints.
GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE <service_owner_role>;

USE DATABASE <database>;
USE SCHEMA <schema>;


-- -----------------------------------------------------------------------------
-- Step 1: secrets.
-- -----------------------------------------------------------------------------
USE ROLE <service_owner_role>;

-- The provider token reaches the container as the environment variable
-- SNOWGATE_UPSTREAM_TOKEN (see the specification); it never appears in the
-- specification, the function, or snowgate's logs.
CREATE OR REPLACE SECRET snowgate_upstream_token
    TYPE = GENERIC_STRING
    SECRET_STRING = '<provider_token>'
    COMMENT = 'snowgate: bearer token for the location provider';

-- No shared secret (SNOWGATE_AUTH_SECRET / --auth-header) here: a service
-- function has no HEADERS clause, so Snowflake could not send it, and every
-- batch would be refused. The endpoint is not public; only roles granted the
-- service role below can reach it, so the check is Snowflake's own. If you
-- ever put a proxy of your own in front that adds a secret header, create a
-- second GENERIC_STRING secret, map it to SNOWGATE_AUTH_SECRET in the
-- specification, and set SNOWGATE_AUTH_HEADER to that header's name.


-- -----------------------------------------------------------------------------
-- Step 2: egress to the provider, and nowhere else.
-- -----------------------------------------------------------------------------
-- Containers have no outbound network access by default. The rule names the
-- one host:port snowgate calls; the integration, attached to the service in
-- step 5, opens exactly that.
USE ROLE <admin_role>;

CREATE OR REPLACE NETWORK RULE <database>.<schema>.snowgate_provider_egress
    TYPE = HOST_PORT
    VALUE_LIST = ('<provider_host>:443')
    MODE = EGRESS
    COMMENT = 'snowgate: the location provider';

CREATE OR REPLACE EXTERNAL ACCESS INTEGRATION snowgate_provider_access
    ALLOWED_NETWORK_RULES = (<database>.<schema>.snowgate_provider_egress)
    ENABLED = TRUE
    COMMENT = 'snowgate: lets the snowgate service call the location provider';

GRANT USAGE ON INTEGRATION snowgate_provider_access TO ROLE <service_owner_role>;


-- -----------------------------------------------------------------------------
-- Step 3: the image repository, and the image.
-- -----------------------------------------------------------------------------
USE ROLE <service_owner_role>;

CREATE IMAGE REPOSITORY IF NOT EXISTS snowgate_repo;

-- repository_url is where to push. Its path part
-- (/<database>/<schema>/snowgate_repo, in lower case) is how the
-- specification names the image.
SHOW IMAGE REPOSITORIES LIKE 'snowgate_repo';
SELECT "repository_url" FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()));

-- From a shell, in the repository checkout (SPCS runs linux/amd64 images):
--
--   docker build --platform linux/amd64 --build-arg VERSION=<image_tag> -t snowgate:<image_tag> .
--   docker login <registry_host>        # the host part of repository_url;
--                                       # log in as a Snowflake user of this account
--   docker tag  snowgate:<image_tag> <repository_url>/snowgate:<image_tag>
--   docker push <repository_url>/snowgate:<image_tag>


-- -----------------------------------------------------------------------------
-- Step 4: the compute pool.
-- -----------------------------------------------------------------------------
USE ROLE <admin_role>;

-- snowgate spends its time waiting on the provider, not computing: the
-- smallest CPU family is plenty. MAX_NODES = 2 leaves room to place the two
-- service instances of step 5 on separate nodes.
CREATE COMPUTE POOL IF NOT EXISTS snowgate_pool
    MIN_NODES = 1
    MAX_NODES = 2
    INSTANCE_FAMILY = CPU_X64_XS
    AUTO_RESUME = TRUE
    AUTO_SUSPEND_SECS = 3600
    COMMENT = 'snowgate: runs the snowgate service';

GRANT USAGE, MONITOR ON COMPUTE POOL snowgate_pool TO ROLE <service_owner_role>;


-- -----------------------------------------------------------------------------
-- Step 5: the service.
-- -----------------------------------------------------------------------------
USE ROLE <service_owner_role>;

-- The specification, explained:
--   * image: the path part of repository_url, plus the image name and tag.
--   * args: the image's default command is already `serve`; it is spelled out
--     so the specification reads on its own.
--   * env: every snowgate flag has an environment twin SNOWGATE_<FLAG>.
--     SNOWGATE_LISTEN must use the endpoint's port. SNOWGATE_PATH must match
--     the function's AS path in step 6. SNOWGATE_RATE is per instance: the
--     provider's limit divided by MAX_INSTANCES, because each instance keeps
--     its own limiter (and its own cache).
--   * secrets: the token from step 1, as SNOWGATE_UPSTREAM_TOKEN.
--   * readinessProbe: /readyz turns false while snowgate drains on shutdown,
--     so no new batch is routed to an instance that is stopping.
--   * endpoints: one HTTP endpoint, not public; a service function calls it
--     from inside Snowflake.
--   * logExporters: snowgate's JSON log lines (one per batch) go to the
--     account's event table, if one is set up.
--   * serviceRoles: the role "resolver" grants use of that endpoint; step 7
--     grants it to the roles that may call the function.
--
-- Asynchronous batches (--async) are left off: behind several instances a
-- poll may land on an instance that does not know the batch. Keep batches
-- small enough to finish within --batch-timeout instead (step 6).
CREATE SERVICE snowgate_service
    IN COMPUTE POOL snowgate_pool
    FROM SPECIFICATION $$
spec:
  containers:
  - name: snowgate
    image: /<database>/<schema>/snowgate_repo/snowgate:<image_tag>
    args:
    - serve
    env:
      SNOWGATE_LISTEN: ":8080"
      SNOWGATE_PATH: /resolve_location
      SNOWGATE_UPSTREAM_URL: "https://<provider_host>/api/v2/entities/{id}?select=id,label,location"
      SNOWGATE_RATE: "<rate_per_instance>"
      SNOWGATE_BATCH_TIMEOUT: 25s
      SNOWGATE_ON_ROW_ERROR: "null"
      SNOWGATE_LOG_LEVEL: info
    secrets:
    - snowflakeSecret:
        objectName: snowgate_upstream_token
      secretKeyRef: secret_string
      envVarName: SNOWGATE_UPSTREAM_TOKEN
    readinessProbe:
      port: 8080
      path: /readyz
    resources:
      requests:
        cpu: 0.5
        memory: 512Mi
      limits:
        cpu: 1
        memory: 1Gi
  endpoints:
  - name: resolve
    port: 8080
    public: false
    protocol: HTTP
  logExporters:
    eventTableConfig:
      logLevel: INFO
serviceRoles:
- name: resolver
  endpoints:
  - resolve
$$
    EXTERNAL_ACCESS_INTEGRATIONS = (snowgate_provider_access)
    AUTO_RESUME = TRUE
    MIN_INSTANCES = 2
    MAX_INSTANCES = 2
    COMMENT = 'snowgate: Snowflake service function backend for resolve_location';

-- Wait until the service reports its instances ready, then check the logs.
DESCRIBE SERVICE snowgate_service;
SHOW ENDPOINTS IN SERVICE snowgate_service;
SELECT value AS log_line
FROM TABLE(SPLIT_TO_TABLE(SYSTEM$GET_SERVICE_LOGS('snowgate_service', 0, 'snowgate', 50), '\n'));


-- -----------------------------------------------------------------------------
-- Step 6: the service function.
-- -----------------------------------------------------------------------------
-- SERVICE / ENDPOINT: the service and endpoint from step 5; AS: the HTTP path
-- snowgate serves (SNOWGATE_PATH, flag --path).
--
-- MAX_BATCH_ROWS: an upper bound on rows per batch. Each batch must finish
-- within snowgate's --batch-timeout (25s); uncached IDs cost provider calls
-- at the instance's rate, shared by the batches it serves at once. Rough
-- bound for uncached batches: concurrent_batches_per_instance x
-- MAX_BATCH_ROWS <= SNOWGATE_RATE x 25. A first, mostly uncached backfill of
-- millions of IDs is better served by `snowgate backfill`, or by re-running
-- the incremental MERGE in ../examples.sql until it finds nothing new.
--
-- MAX_BATCH_RETRIES: how often Snowflake re-sends a failed batch. snowgate
-- answers 429 when too many rows are in flight (--max-inflight-rows) and,
-- with --on-row-error fail, 503 when the provider failed a row; both are
-- worth a retry. A re-sent batch reuses what the instance already resolved
-- (its result store and cache), so retries cost few new provider calls.
--
-- ON_BATCH_FAILURE: ABORT fails the query when a batch still fails after the
-- retries, so no row is silently lost. RETURN_NULL instead answers every row
-- of that batch NULL and lets the query finish: acceptable for ad-hoc
-- enrichment, not for a table you will trust later.
--
-- BATCH_TIMEOUT_SECS: how long Snowflake waits for one batch; keep it above
-- SNOWGATE_BATCH_TIMEOUT so snowgate, which can still answer the rows it
-- resolved, is the one that times out.
CREATE OR REPLACE FUNCTION resolve_location(id VARCHAR)
    RETURNS VARIANT
    NULL
    RETURNS NULL ON NULL INPUT
    VOLATILE
    SERVICE = snowgate_service
    ENDPOINT = resolve
    COMMENT = 'snowgate: resolve an entity ID to its standardized location (VARIANT object or NULL)'
    CONTEXT_HEADERS = (CURRENT_USER, CURRENT_ROLE, CURRENT_ACCOUNT)
    MAX_BATCH_ROWS = 500
    MAX_BATCH_RETRIES = 3
    ON_BATCH_FAILURE = ABORT
    BATCH_TIMEOUT_SECS = 60
    AS '/resolve_location';


-- -----------------------------------------------------------------------------
-- Step 7: grants and a smoke test.
-- -----------------------------------------------------------------------------
-- A caller needs USAGE on the function and the service role that opens the
-- endpoint.
USE ROLE <admin_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <analyst_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <analyst_role>;

USE ROLE <service_owner_role>;
GRANT USAGE ON FUNCTION resolve_location(VARCHAR) TO ROLE <analyst_role>;
GRANT SERVICE ROLE snowgate_service!resolver TO ROLE <analyst_role>;

-- Expect an object (id, label, geo_label, street_address, city_label,
-- postal_code, country_label, latitude, longitude) or NULL.
SELECT resolve_location('<known_id>') AS location;

-- Changing a setting later: ALTER SERVICE snowgate_service FROM SPECIFICATION
-- $$...$$ with the edited specification. Whenever an instance is stopped,
-- snowgate drains first: /readyz turns false, batches in flight finish
-- (within --shutdown-timeout), then it exits.
