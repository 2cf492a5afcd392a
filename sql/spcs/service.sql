-- =============================================================================
-- snowgate in Snowpark Container Services: Snowflake -> snowgate (in Snowflake) -> provider
-- =============================================================================
--
-- No cloud proxy, no API integration: the same container image runs inside
-- Snowflake as a service, and a service function sends it batches in the
-- same JSON format as an external function. Two snowgate instances share one
-- provider budget, one cache and their async state through a Redis service
-- next to them. What this script sets up:
--   0. The roles, the warehouse every SELECT below runs on, and the grants.
--   1. Secrets: the provider token, and the Redis URL with its password.
--   2. A network rule and an external access integration, so the service may
--      reach the provider's host (and nothing else).
--   3. An image repository, and (from a shell) snowgate's image and Redis's
--      image pushed into it: SPCS runs only images from the account's own
--      repositories, never from a public registry.
--   4. A compute pool.
--   5. The Redis service (TCP endpoint on 6379).
--   6. The snowgate service.
--   7. The service function resolve_location(id VARCHAR) RETURNS VARIANT.
--   8. Grants, and a smoke test run as the analyst role.
-- Re-running the script is safe: services are created IF NOT EXISTS (a
-- changed specification is applied with ALTER SERVICE, see the end), and the
-- rest is CREATE OR REPLACE or IF NOT EXISTS.
--
-- Run it as a user who holds ACCOUNTADMIN (CREATE INTEGRATION, CREATE
-- COMPUTE POOL, CREATE ROLE and MANAGE GRANTS). The services themselves are
-- owned by <service_owner_role>, which must NOT be ACCOUNTADMIN,
-- SECURITYADMIN or ORGADMIN: Snowflake does not run services owned by those
-- privileged roles (a service acts with its owner role's privileges).
--
-- Placeholders in angle brackets: replace every one before running.
--   <warehouse>           an existing warehouse ACCOUNTADMIN may use; the
--                         script grants it to the roles below
--   <database>, <schema>  where the secrets, repository, services and function live
--   <service_owner_role>  role that owns the repository, services and function
--                         (created below; not a privileged system role)
--   <analyst_role>        role that may call the function (created below)
--   <push_role>           role the images are pushed with, e.g. your CI's
--                         (created below; gets READ, WRITE on the repository)
--   <admin_user>          your own Snowflake user (SELECT CURRENT_USER()):
--                         granted the roles so this script can USE them
--   <analyst_user>        a user who will call the function
--   <push_user>           the user who pushes images (may be <admin_user>)
--   <snow_connection>     that user's Snowflake CLI connection name
--   <provider_host>       the provider's host name, e.g. the host part of the
--                         URL in --upstream-url
--   <provider_token>      the provider's bearer token
--   <provider_rate_limit> the provider's whole limit in requests/s: the two
--                         instances share it through Redis
--   <redis_password>      a long random string of letters and digits
--                         (openssl rand -hex 32): it sits inside a URL
--   <image_tag>           e.g. the release version you built
--   <known_id>            an ID the provider knows, for the smoke test
-- Values you read along the way, not before:
--   <dns_domain>          from SYSTEM$GET_SERVICE_DNS_DOMAIN in step 1
--   <repository_url>      from SHOW IMAGE REPOSITORIES in step 3
--   <registry_host>       the host part of <repository_url>
--
-- Names used below (change them consistently if you must):
--   secrets snowgate_upstream_token and snowgate_redis_url, network rule
--   snowgate_provider_egress, integration snowgate_provider_access,
--   repository snowgate_repo, compute pool snowgate_pool, services
--   snowgate_redis (DNS name snowgate-redis.<dns_domain>) and
--   snowgate_service, containers redis and snowgate, endpoints redis and
--   resolve, service role resolver.
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Step 0: roles, the warehouse, and what the owner may create.
-- -----------------------------------------------------------------------------
USE ROLE ACCOUNTADMIN;
USE WAREHOUSE <warehouse>;

CREATE ROLE IF NOT EXISTS <service_owner_role>
    COMMENT = 'snowgate: owns the snowgate services and resolve_location';
CREATE ROLE IF NOT EXISTS <analyst_role>
    COMMENT = 'snowgate: may call resolve_location';
CREATE ROLE IF NOT EXISTS <push_role>
    COMMENT = 'snowgate: pushes images to snowgate_repo';

-- Custom roles hang under SYSADMIN (Snowflake's recommended hierarchy). The
-- grants to <admin_user> are what let this script USE ROLE them below;
-- revoke them afterwards if you like.
GRANT ROLE <service_owner_role> TO ROLE SYSADMIN;
GRANT ROLE <analyst_role> TO ROLE SYSADMIN;
GRANT ROLE <push_role> TO ROLE SYSADMIN;
GRANT ROLE <service_owner_role> TO USER <admin_user>;
GRANT ROLE <analyst_role> TO USER <admin_user>;
GRANT ROLE <analyst_role> TO USER <analyst_user>;
GRANT ROLE <push_role> TO USER <push_user>;

-- Without USAGE on a warehouse every SELECT fails with "No active warehouse
-- selected", the smoke test of step 8 included.
GRANT USAGE ON WAREHOUSE <warehouse> TO ROLE <service_owner_role>;
GRANT USAGE ON WAREHOUSE <warehouse> TO ROLE <analyst_role>;

GRANT USAGE ON DATABASE <database> TO ROLE <service_owner_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <service_owner_role>;
GRANT USAGE ON DATABASE <database> TO ROLE <push_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <push_role>;
GRANT CREATE SECRET, CREATE IMAGE REPOSITORY, CREATE SERVICE, CREATE FUNCTION
    ON SCHEMA <database>.<schema> TO ROLE <service_owner_role>;
-- Snowflake requires this of a role whose services expose endpoints publicly.
-- Both endpoints below are private; it is kept so that making one public
-- later does not fail.
GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE <service_owner_role>;


-- -----------------------------------------------------------------------------
-- Step 1: secrets.
-- -----------------------------------------------------------------------------
USE ROLE <service_owner_role>;
USE WAREHOUSE <warehouse>;
USE DATABASE <database>;
USE SCHEMA <schema>;

-- The provider token reaches the container as the environment variable
-- SNOWGATE_UPSTREAM_TOKEN (see the specification of step 6); it never
-- appears in the specification, the function, or snowgate's logs.
CREATE OR REPLACE SECRET snowgate_upstream_token
    TYPE = GENERIC_STRING
    SECRET_STRING = '<provider_token>'
    COMMENT = 'snowgate: bearer token for the location provider';

-- Every service in this schema gets a DNS name <service-name>.<dns_domain>
-- (underscores become hyphens). The domain is known before the Redis
-- service exists, so its URL can be stored now; step 5 checks it.
SELECT SYSTEM$GET_SERVICE_DNS_DOMAIN('<database>.<schema>') AS dns_domain;

-- One secret, given to both services: snowgate reads it as
-- SNOWGATE_REDIS_URL, the Redis container takes the password out of the same
-- URL for --requirepass (step 5). One value to rotate, no copy to drift.
CREATE OR REPLACE SECRET snowgate_redis_url
    TYPE = GENERIC_STRING
    SECRET_STRING = 'redis://:<redis_password>@snowgate-redis.<dns_domain>:6379/0'
    COMMENT = 'snowgate: URL and password of the snowgate_redis service';

-- No shared secret (SNOWGATE_AUTH_SECRET / --auth-header) here: a service
-- function has no HEADERS clause, so Snowflake could not send it, and every
-- batch would be refused. The endpoint is not public; only roles granted the
-- service role below can reach it, so the check is Snowflake's own. If you
-- ever put a proxy of your own in front that adds a secret header, create a
-- third GENERIC_STRING secret, map it to SNOWGATE_AUTH_SECRET in the
-- specification, and set SNOWGATE_AUTH_HEADER to that header's name.


-- -----------------------------------------------------------------------------
-- Step 2: egress to the provider, and nowhere else.
-- -----------------------------------------------------------------------------
-- Containers have no outbound network access by default. The rule names the
-- one host:port snowgate calls; the integration, attached to the snowgate
-- service in step 6, opens exactly that. Redis needs none.
USE ROLE ACCOUNTADMIN;

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
-- Step 3: the image repository, and the images.
-- -----------------------------------------------------------------------------
USE ROLE <service_owner_role>;
USE WAREHOUSE <warehouse>;

CREATE IMAGE REPOSITORY IF NOT EXISTS snowgate_repo;

-- The owner may push already; any other pushing role needs both privileges
-- (READ to pull layers it builds on, WRITE to push).
GRANT READ, WRITE ON IMAGE REPOSITORY snowgate_repo TO ROLE <push_role>;

-- repository_url is where to push: <registry_host>/<database>/<schema>/snowgate_repo,
-- in lower case. Its path part is how the specifications name the images.
-- (The SELECT must follow SHOW directly: it reads the last query's result.)
SHOW IMAGE REPOSITORIES LIKE 'snowgate_repo';
SELECT "repository_url" FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()));

-- From a shell, in the repository checkout, as <push_user> with the
-- Snowflake CLI (snow) and Docker. The registry takes a short-lived session
-- token of your Snowflake user, under the connection's role; the user name
-- is the literal 0sessiontoken. SPCS runs linux/amd64 images only.
--
--   snow spcs image-registry token --connection <snow_connection> --role <push_role> --format=JSON \
--     | docker login <registry_host> -u 0sessiontoken --password-stdin
--
--   docker build --platform linux/amd64 --build-arg VERSION=<image_tag> -t snowgate:<image_tag> .
--   docker tag  snowgate:<image_tag> <repository_url>/snowgate:<image_tag>
--   docker push <repository_url>/snowgate:<image_tag>
--
--   docker pull --platform linux/amd64 redis:7
--   docker tag  redis:7 <repository_url>/redis:7
--   docker push <repository_url>/redis:7
--
-- The token expires after an hour; log in again when a push says
-- "unauthorized".


-- -----------------------------------------------------------------------------
-- Step 4: the compute pool.
-- -----------------------------------------------------------------------------
USE ROLE ACCOUNTADMIN;

-- snowgate spends its time waiting on the provider, not computing: the
-- smallest CPU family is plenty. MAX_NODES = 2 leaves room to place the two
-- snowgate instances of step 6 on separate nodes, Redis beside one of them.
CREATE COMPUTE POOL IF NOT EXISTS snowgate_pool
    MIN_NODES = 1
    MAX_NODES = 2
    INSTANCE_FAMILY = CPU_X64_XS
    AUTO_RESUME = TRUE
    AUTO_SUSPEND_SECS = 3600
    COMMENT = 'snowgate: runs the snowgate and snowgate_redis services';

GRANT USAGE, MONITOR ON COMPUTE POOL snowgate_pool TO ROLE <service_owner_role>;


-- -----------------------------------------------------------------------------
-- Step 5: the Redis service.
-- -----------------------------------------------------------------------------
USE ROLE <service_owner_role>;
USE WAREHOUSE <warehouse>;

-- The specification, explained:
--   * image: the redis:7 pushed in step 3 (the path part of repository_url).
--   * command/args: the image's own entrypoint, with the password taken out
--     of the snowgate_redis_url secret (redis://:PASSWORD@host:6379/0) by
--     the shell, so the password exists in one secret only. No persistence:
--     everything snowgate keeps in Redis can be rebuilt, and snowgate keeps
--     answering (on its --redis-local-share of the rate) while it is away.
--   * endpoints: port 6379, protocol TCP (Redis does not speak HTTP), not
--     public. snowgate reaches it as snowgate-redis.<dns_domain>:6379; both
--     services are owned by <service_owner_role>, and an owner role may
--     always reach the endpoints of its own services.
--   * no readinessProbe: SPCS probes are HTTP requests.
CREATE SERVICE IF NOT EXISTS snowgate_redis
    IN COMPUTE POOL snowgate_pool
    FROM SPECIFICATION $$
spec:
  containers:
  - name: redis
    image: /<database>/<schema>/snowgate_repo/redis:7
    command: ["/bin/sh", "-c"]
    args:
    - >-
      p="${REDIS_URL#*://}"; p="${p%%@*}";
      exec docker-entrypoint.sh redis-server --requirepass "${p#*:}"
      --save "" --appendonly no --maxmemory 768mb --maxmemory-policy allkeys-lru
    secrets:
    - snowflakeSecret:
        objectName: snowgate_redis_url
      secretKeyRef: secret_string
      envVarName: REDIS_URL
    resources:
      requests:
        cpu: 0.25
        memory: 1Gi
      limits:
        cpu: 1
        memory: 1Gi
  endpoints:
  - name: redis
    port: 6379
    protocol: TCP
    public: false
$$
    AUTO_RESUME = TRUE
    MIN_INSTANCES = 1
    MAX_INSTANCES = 1
    COMMENT = 'snowgate: shared provider budget, cache and async batches for snowgate_service';

-- Its DNS name: it must be the host in snowgate_redis_url (step 1). If not,
-- re-create that secret with this name before step 6.
SHOW SERVICES LIKE 'snowgate_redis';
SELECT "dns_name" FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()));
-- Expect one endpoint: redis, port 6379, protocol TCP, not public.
SHOW ENDPOINTS IN SERVICE snowgate_redis;


-- -----------------------------------------------------------------------------
-- Step 6: the snowgate service.
-- -----------------------------------------------------------------------------
-- The specification, explained:
--   * image: the path part of repository_url, plus the image name and tag.
--   * args: the image's default command is already `serve`; it is spelled out
--     so the specification reads on its own.
--   * env: every snowgate flag has an environment twin (SNOWGATE_ and the
--     flag's name in capitals, - as _).
--     SNOWGATE_LISTEN must use the endpoint's port. SNOWGATE_PATH must match
--     the function's AS path in step 7. SNOWGATE_RATE is the provider's
--     whole limit: the instances share it through Redis.
--     SNOWGATE_REDIS_LOCAL_SHARE = 1 / MAX_INSTANCES is what each instance
--     keeps to while Redis is unreachable, so together they still stay
--     within the limit.
--   * secrets: the token from step 1 as SNOWGATE_UPSTREAM_TOKEN, and the
--     Redis URL (with its password) as SNOWGATE_REDIS_URL. Environment
--     values are read when a container starts: after ALTER SECRET, restart
--     the service (ALTER SERVICE ... SUSPEND, then RESUME).
--   * readinessProbe: /readyz turns false while snowgate drains on shutdown,
--     so no new batch is routed to an instance that is stopping.
--   * endpoints: one HTTP endpoint, not public; a service function calls it
--     from inside Snowflake.
--   * logExporters: snowgate's JSON log lines (one per batch) go to the
--     account's event table, if one is set up.
--   * serviceRoles: the role "resolver" grants use of that endpoint; step 8
--     grants it to the roles that may call the function.
--
-- SPCS does not scrape Prometheus endpoints: snowgate's /metrics is there
-- but nothing reads it. The platform's own metrics (CPU, memory) go to the
-- event table; for snowgate's counters add a sidecar container that scrapes
-- localhost:8080/metrics and forwards them through an external access
-- integration to your monitoring, or rely on the per-batch log lines.
--
-- Asynchronous batches (--async) are left off: keep batches small enough to
-- finish within --batch-timeout (step 7). With Redis shared, either instance
-- can answer a poll, so SNOWGATE_ASYNC: "true" is possible if batches must
-- run longer.
--
-- Without Redis: skip step 5, drop the snowgate_redis_url secret entry and
-- SNOWGATE_REDIS_LOCAL_SHARE, and set SNOWGATE_RATE to the provider's limit
-- divided by MAX_INSTANCES (each instance then has its own limiter and cache).
CREATE SERVICE IF NOT EXISTS snowgate_service
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
      SNOWGATE_RATE: "<provider_rate_limit>"
      SNOWGATE_REDIS_LOCAL_SHARE: "0.5"
      SNOWGATE_BATCH_TIMEOUT: 25s
      SNOWGATE_ON_ROW_ERROR: "null"
      SNOWGATE_LOG_LEVEL: info
    secrets:
    - snowflakeSecret:
        objectName: snowgate_upstream_token
      secretKeyRef: secret_string
      envVarName: SNOWGATE_UPSTREAM_TOKEN
    - snowflakeSecret:
        objectName: snowgate_redis_url
      secretKeyRef: secret_string
      envVarName: SNOWGATE_REDIS_URL
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

-- Wait until the service reports its instances ready, then check the logs:
-- a line "serving" with "redis":true means Redis was found.
DESCRIBE SERVICE snowgate_service;
SHOW ENDPOINTS IN SERVICE snowgate_service;
SELECT value AS log_line
FROM TABLE(SPLIT_TO_TABLE(SYSTEM$GET_SERVICE_LOGS('snowgate_service', 0, 'snowgate', 50), '\n'));


-- -----------------------------------------------------------------------------
-- Step 7: the service function.
-- -----------------------------------------------------------------------------
-- SERVICE / ENDPOINT: the service and endpoint from step 6; AS: the HTTP path
-- snowgate serves (SNOWGATE_PATH, flag --path).
--
-- MAX_BATCH_ROWS: an upper bound on rows per batch. Each batch must finish
-- within snowgate's --batch-timeout (25s); uncached IDs cost provider calls
-- at the shared rate, divided among the batches in flight. Rough bound for
-- uncached batches: concurrent_batches x MAX_BATCH_ROWS <= SNOWGATE_RATE x
-- 25. A first, mostly uncached backfill of millions of IDs is better served
-- by `snowgate backfill`, or by re-running the incremental MERGE in
-- ../examples.sql until it finds nothing new.
--
-- MAX_BATCH_RETRIES: how often Snowflake re-sends a failed batch. snowgate
-- answers 429 when too many rows are in flight (--max-inflight-rows) and,
-- with --on-row-error fail, 503 when the provider failed a row; both are
-- worth a retry. A re-sent batch reuses what is already resolved (the
-- result store and the shared cache), so retries cost few new provider calls.
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
-- Step 8: grants and a smoke test.
-- -----------------------------------------------------------------------------
-- A caller needs USAGE on the function and the service role that opens the
-- endpoint.
USE ROLE ACCOUNTADMIN;
GRANT USAGE ON DATABASE <database> TO ROLE <analyst_role>;
GRANT USAGE ON SCHEMA <database>.<schema> TO ROLE <analyst_role>;

USE ROLE <service_owner_role>;
GRANT USAGE ON FUNCTION <database>.<schema>.resolve_location(VARCHAR) TO ROLE <analyst_role>;
GRANT SERVICE ROLE snowgate_service!resolver TO ROLE <analyst_role>;

-- The smoke test runs as the analyst, so it proves the grants too.
USE ROLE <analyst_role>;
USE WAREHOUSE <warehouse>;
USE SCHEMA <database>.<schema>;

-- Expect an object (id, label, geo_label, street_address, city_label,
-- postal_code, country_label, latitude, longitude) or NULL.
SELECT resolve_location('<known_id>') AS location;

-- Changing a setting later, as <service_owner_role>: re-running this script
-- leaves an existing service as it is (CREATE SERVICE IF NOT EXISTS), so
-- apply an edited specification with
--   ALTER SERVICE snowgate_service FROM SPECIFICATION $$
--   spec:
--     ...the whole edited specification of step 6...
--   $$;
-- (and the same for snowgate_redis). Snowflake then replaces the instances
-- one by one. Whenever an instance is stopped, snowgate drains first:
-- /readyz turns false, batches in flight finish (within
-- --shutdown-timeout), then it exits.
