// Package snowflake is the backfill loader's Snowflake warehouse: a
// loader.Warehouse made of SQL text and gosnowflake's bulk mechanism. It has
// not run against a live Snowflake account.
//
// # Connecting
//
// Open takes a gosnowflake DSN. ConfigFromEnv builds a gosnowflake.Config
// for OpenConfig from SNOWFLAKE_DSN, which must then name a warehouse, or
// from SNOWFLAKE_ACCOUNT, _WAREHOUSE (required: every page query runs on
// one), _USER, _DATABASE, _SCHEMA, _ROLE, _AUTHENTICATOR, _PRIVATE_KEY_PATH,
// _TOKEN, _TOKEN_FILE_PATH, _PASSWORD, _HOST, _PORT and _PROTOCOL;
// IgnoredByDSN names the variables a DSN makes it ignore. Key pair
// (gosnowflake's SNOWFLAKE_JWT authenticator) is the default, because
// Snowflake refuses passwords for service users; programmatic access token,
// OAuth, external browser and password are options. The logins are
// gosnowflake's own; this package picks one and fills what the driver
// checks for: it reads a programmatic access token's file into
// Config.Token (gosnowflake v1.19.1 checks Token before it reads
// TokenFilePath, and fails with 260016), and keeps the token a DSN's
// tokenFilePath was read into but not the path (the driver refuses both).
// An OAuth token file stays a path, which the driver re-reads at each login.
//
// # What it sends
//
// Pending is keyset pagination, never OFFSET: SELECT DISTINCT
// COLLATE(TO_VARCHAR(id), 'utf8') ... WHERE that > ? AND NOT EXISTS
// (target, misses, failures) ORDER BY 1 LIMIT n, the cursor bound as TEXT.
// The explicit 'utf8' collation makes the comparison, the sort, DISTINCT and
// the anti-joins all byte order, the order of Go strings the cursor
// advances in, even where a column or the account's DEFAULT_DDL_COLLATION
// says otherwise (under 'en-ci' "abc" and "ABC" would be one ID, and pages
// could skip or repeat IDs).
//
// Commit, on one pinned session (the staging table is TEMPORARY, so it is
// visible to its own session only): CREATE TEMPORARY TABLE IF NOT EXISTS
// (once per session), TRUNCATE, then one INSERT per 16,384 rows whose twelve
// ? are gosnowflake array binds (gosnowflake.Array): one statement carries a
// whole chunk. From CLIENT_STAGE_ARRAY_BINDING_THRESHOLD bound values on
// (65,280 by default, rows x columns) the driver itself uploads the arrays
// as CSV to a temporary stage and binds the stage instead. Then, in one
// transaction, MERGE INTO the target, misses and failures tables ON "ID",
// and DELETEs that keep each ID in one place, both matching IDs in 'utf8'
// like the keyset, so that a case-insensitive collation of the tables
// cannot make "abc" overwrite "ABC". Every step is keyed on ID, so
// a re-run after a crash creates no duplicates. Table and column names are
// loader.Ident values: validated, upper-cased and always quoted.
//
// # What the tests prove, and what they do not
//
// The tests run the real gosnowflake driver against a stand-in for
// Snowflake's HTTP endpoints written for them (standin_test.go: login,
// query-request, session, heartbeat, telemetry, and a GCS-style upload
// endpoint; httptest on 127.0.0.1, protocol=http). No public Snowflake
// emulator serves gosnowflake's array binds. The stand-in records every
// statement with its typed binds and answers SELECTs from fixtures; it
// evaluates no SQL. They prove:
//
//   - the DSN and environment configurations log in (account, user,
//     password in the login request), and a programmatic access token read
//     from a file, by variable or by DSN, reaches the login request;
//   - the exact SQL text, every identifier quoted, hostile names refused;
//   - the keyset cursor query and its binds (TEXT cursor, TIMESTAMP_NTZ
//     refresh cutoffs), with no OFFSET;
//   - a 100,000-row Commit sent as 17 statements: seven INSERTs of typed
//     array binds (TEXT, REAL, TIMESTAMP_NTZ, with NULLs) carrying every row
//     once with its exact values, then BEGIN, three MERGEs on "ID", three
//     DELETEs, COMMIT; ROLLBACK when a MERGE fails;
//   - at Snowflake's default threshold, the driver's stage path for the same
//     commit: CREATE TEMPORARY STAGE SYSTEM$BIND, PUT, an encrypted upload to
//     a presigned URL (as on a GCS-hosted account), and an INSERT binding the
//     stage; the test decrypts the uploads and finds every row once.
//
// Only a live account can prove that Snowflake accepts this SQL and does
// what it says: MERGE and DELETE semantics, ALTER TABLE ... ADD COLUMN IF
// NOT EXISTS, the temporary table in the target's schema, TO_VARCHAR's
// rendering of numeric IDs, that COLLATE(..., 'utf8') orders as documented
// and what it costs the anti-joins and pruning on every page; that the server
// reads the staged CSV into the right columns; the S3 and Azure upload
// paths; key-pair, programmatic access token, OAuth and browser logins;
// session renewal on long runs; throughput. One detail rests on the driver's
// behaviour without a live check: a chunk whose nullable column is all NULL
// binds that column with gosnowflake's default type FIXED (the values are
// NULL, so Snowflake should cast them to the column's type).
package snowflake
