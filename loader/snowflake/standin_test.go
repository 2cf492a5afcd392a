package snowflake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// standin is a small stand-in for Snowflake's HTTP endpoints, enough for the
// real gosnowflake driver to log in, run statements with typed binds, read
// JSON result sets and upload array binds to a stage. It records every
// statement. It evaluates no SQL: SELECTs are answered from the test's
// fixtures, everything else succeeds.
type standin struct {
	t   testing.TB
	srv *httptest.Server
	// masterKey is the stage master key handed out with every PUT.
	masterKey []byte

	// threshold is sent at login as CLIENT_STAGE_ARRAY_BINDING_THRESHOLD:
	// the number of bound values from which the driver uploads array binds
	// to a stage instead of sending them inline.
	threshold int

	mu sync.Mutex // guards everything below
	// source is the fixture the keyset page query is answered from, sorted.
	source     []string
	count      int64
	stmts      []stmt
	logins     []loginRequest
	unexpected []string
	badAuth    int
	// failPrefix, when set, makes statements starting with it fail the way
	// Snowflake reports an SQL error (HTTP 200, success false).
	failPrefix string
	// uploads are the objects PUT to the emulated GCS bucket, by the stage
	// path the driver named in its PUT command.
	uploads map[string][]gcsObject
	// catalog is what INFORMATION_SCHEMA shows: the columns of each table,
	// by DB.SCHEMA.TABLE.
	catalog map[string][]string
	// session is CURRENT_DATABASE(), CURRENT_SCHEMA() and CURRENT_ROLE();
	// nil is NULL.
	session [3]*string
}

// stmt is one recorded query-request.
type stmt struct {
	SQL       string             `json:"sqlText"`
	Bindings  map[string]binding `json:"bindings"`
	BindStage string             `json:"bindStage"`
}

// binding is a typed bind as the driver sends it: a scalar or, for array
// binds, an array of strings and nulls.
type binding struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

func (b binding) strings(t testing.TB) []*string {
	t.Helper()
	var v []*string
	if err := json.Unmarshal(b.Value, &v); err != nil {
		t.Fatalf("binding value %s is not an array of strings: %v", b.Value, err)
	}
	return v
}

func (b binding) scalar(t testing.TB) string {
	t.Helper()
	var v string
	if err := json.Unmarshal(b.Value, &v); err != nil {
		t.Fatalf("binding value %s is not a string: %v", b.Value, err)
	}
	return v
}

type loginRequest struct {
	Data struct {
		AccountName   string         `json:"ACCOUNT_NAME"`
		LoginName     string         `json:"LOGIN_NAME"`
		Password      string         `json:"PASSWORD"`
		Authenticator string         `json:"AUTHENTICATOR"`
		Token         string         `json:"TOKEN"`
		SessionParams map[string]any `json:"SESSION_PARAMETERS"`
	} `json:"data"`
}

const standinToken = "standin-session-token"

func newStandin(t testing.TB, threshold int) *standin {
	t.Helper()
	// The driver probes cloud metadata servers on its first connection;
	// this test talks to 127.0.0.1 only.
	t.Setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
	s := &standin{t: t, threshold: threshold, masterKey: make([]byte, 16), uploads: map[string][]gcsObject{},
		catalog: map[string][]string{"TESTDB.PUBLIC.MASTER_TABLE": {"ID"}},
		session: [3]*string{ptr("TESTDB"), ptr("PUBLIC"), ptr("LOADER")}}
	if _, err := rand.Read(s.masterKey); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /session/v1/login-request", s.login)
	mux.HandleFunc("POST /queries/v1/query-request", s.query)
	mux.HandleFunc("POST /session", s.ok) // ?delete=true at close
	mux.HandleFunc("POST /session/heartbeat", s.ok)
	mux.HandleFunc("POST /telemetry/send", s.ok)
	mux.HandleFunc("PUT /gcs/upload", s.gcsUpload)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.unexpected = append(s.unexpected, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		http.NotFound(w, r)
	})
	s.srv = httptest.NewServer(mux) // listens on 127.0.0.1, random port
	t.Cleanup(func() {
		s.srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.unexpected) > 0 {
			t.Errorf("stand-in got unexpected requests: %v", s.unexpected)
		}
		if s.badAuth > 0 {
			t.Errorf("stand-in got %d query requests without the session token", s.badAuth)
		}
	})
	return s
}

// dsn is a gosnowflake DSN pointing at the stand-in over plain HTTP.
func (s *standin) dsn() string {
	host := strings.TrimPrefix(s.srv.URL, "http://")
	return "tester:s3cret@" + host + "/TESTDB/PUBLIC?account=standin&protocol=http&warehouse=WH&role=LOADER" +
		"&disableTelemetry=true&validateDefaultParameters=false&maxRetryCount=1"
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *standin) ok(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"success": true, "code": nil, "message": nil, "data": nil})
}

func (s *standin) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.logins = append(s.logins, req)
	s.mu.Unlock()
	writeJSON(w, map[string]any{
		"success": true, "code": nil, "message": nil,
		"data": map[string]any{
			"token": standinToken, "validityInSeconds": 3600,
			"masterToken": "standin-master-token", "masterValidityInSeconds": 14400,
			"sessionId": 4242, "serverVersion": "9.0.0",
			"parameters": []map[string]any{
				{"name": "CLIENT_STAGE_ARRAY_BINDING_THRESHOLD", "value": s.threshold},
				{"name": "TIMEZONE", "value": "UTC"},
				{"name": "CLIENT_SESSION_KEEP_ALIVE", "value": false},
			},
			"sessionInfo": map[string]any{
				"databaseName": "TESTDB", "schemaName": "PUBLIC",
				"warehouseName": "WH", "roleName": "LOADER",
			},
		},
	})
}

// fromCursorRE matches a page query that includes the cursor itself.
var fromCursorRE = regexp.MustCompile(`COLLATE\((TO_VARCHAR\(s\."\w+"\)|"ID"), 'utf8'\) >= \?`)

var putRE = regexp.MustCompile(`(?i)^put\s+'file://([^']+)'\s+'([^']+)'`)

func (s *standin) query(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != `Snowflake Token="`+standinToken+`"` {
		s.mu.Lock()
		s.badAuth++
		s.mu.Unlock()
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var st stmt
	if err := json.Unmarshal(body, &st); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sqlText := strings.TrimSpace(st.SQL)
	upper := strings.ToUpper(sqlText)
	s.mu.Lock()
	s.stmts = append(s.stmts, st)
	fail := s.failPrefix != "" && strings.HasPrefix(sqlText, s.failPrefix)
	s.mu.Unlock()
	if fail {
		writeJSON(w, map[string]any{"success": false, "code": "002003", "message": "SQL compilation error: injected by the stand-in",
			"data": map[string]any{"sqlState": "42S02", "queryId": "01standin-failed"}})
		return
	}
	var data map[string]any
	switch {
	case strings.HasPrefix(upper, "SELECT CURRENT_DATABASE()"):
		s.mu.Lock()
		data = textRows([]string{"CURRENT_DATABASE()", "CURRENT_SCHEMA()", "CURRENT_ROLE()"}, [][]*string{s.session[:]})
		s.mu.Unlock()
	case strings.Contains(upper, ".INFORMATION_SCHEMA."):
		data = s.informationSchema(st)
	case putRE.MatchString(sqlText):
		data = s.put(sqlText)
	case strings.HasPrefix(upper, "SELECT DISTINCT") || strings.HasPrefix(upper, `SELECT "ID" FROM`):
		data = s.page(st)
	case strings.HasPrefix(upper, "SELECT COUNT"):
		s.mu.Lock()
		n := s.count
		s.mu.Unlock()
		data = resultSet("COUNT", "fixed", [][]string{{fmt.Sprint(n)}})
	case strings.HasPrefix(upper, "SELECT "):
		data = resultSet("1", "fixed", [][]string{{"1"}})
	default:
		data = map[string]any{"queryId": "01standin-ddl-dml", "parameters": []any{}}
	}
	writeJSON(w, map[string]any{"success": true, "code": nil, "message": nil, "data": data})
}

func resultSet(col, typ string, rows [][]string) map[string]any {
	if rows == nil {
		rows = [][]string{}
	}
	return map[string]any{
		"queryId":           "01standin-select",
		"queryResultFormat": "json",
		"statementTypeId":   0x1000,
		"rowtype": []map[string]any{
			{"name": col, "type": typ, "length": 16777216, "byteLength": 16777216, "nullable": false, "scale": 0, "precision": 38},
		},
		"rowset":     rows,
		"total":      len(rows),
		"returned":   len(rows),
		"parameters": []any{},
	}
}

// textRows is a result set of nullable text columns.
func textRows(cols []string, rows [][]*string) map[string]any {
	rowtype := make([]map[string]any, len(cols))
	for i, c := range cols {
		rowtype[i] = map[string]any{"name": c, "type": "text", "length": 16777216, "byteLength": 16777216, "nullable": true, "scale": 0, "precision": 0}
	}
	if rows == nil {
		rows = [][]*string{}
	}
	return map[string]any{
		"queryId": "01standin-select", "queryResultFormat": "json", "statementTypeId": 0x1000,
		"rowtype": rowtype, "rowset": rows, "total": len(rows), "returned": len(rows), "parameters": []any{},
	}
}

var infoSchemaRE = regexp.MustCompile(`FROM "([^"]+)"\.INFORMATION_SCHEMA\.(COLUMNS|TABLES) WHERE TABLE_SCHEMA = \?`)

// informationSchema answers the source check's lookups from s.catalog: the
// columns of one table (binds: schema, table), or the tables of a schema.
func (s *standin) informationSchema(st stmt) map[string]any {
	m := infoSchemaRE.FindStringSubmatch(st.SQL)
	if m == nil {
		s.t.Errorf("unexpected INFORMATION_SCHEMA query %q", st.SQL)
		return textRows([]string{"X"}, nil)
	}
	prefix := m[1] + "." + st.Bindings["1"].scalar(s.t) + "."
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows [][]*string
	if m[2] == "COLUMNS" {
		for _, c := range s.catalog[prefix+st.Bindings["2"].scalar(s.t)] {
			rows = append(rows, []*string{ptr(c)})
		}
		return textRows([]string{"COLUMN_NAME"}, rows)
	}
	var names []string
	for k := range s.catalog {
		if name, ok := strings.CutPrefix(k, prefix); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		rows = append(rows, []*string{ptr(n)})
	}
	return textRows([]string{"TABLE_NAME"}, rows)
}

// page answers the keyset page query from s.source: the IDs above (or, for
// ">= ?", from) the cursor bound as bind 1, up to the statement's LIMIT.
func (s *standin) page(st stmt) map[string]any {
	after := st.Bindings["1"].scalar(s.t)
	var limit int
	if _, err := fmt.Sscanf(st.SQL[strings.LastIndex(st.SQL, "LIMIT "):], "LIMIT %d", &limit); err != nil {
		s.t.Errorf("page query without a LIMIT: %q", st.SQL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearch(s.source, after)
	if i < len(s.source) && s.source[i] == after && !fromCursorRE.MatchString(st.SQL) {
		i++
	}
	var rows [][]string
	for ; i < len(s.source) && len(rows) < limit; i++ {
		rows = append(rows, []string{s.source[i]})
	}
	return resultSet("ID", "text", rows)
}

// put answers a PUT the way Snowflake does on a GCS-hosted account: a stage
// with client-side encryption material and a presigned upload URL, which
// here points back at the stand-in, so the driver's encrypted upload of the
// array binds lands where the test can decrypt and read it. The driver sends
// PUT twice per file (the second asks for the file's presigned URL); both
// get the same answer.
func (s *standin) put(sqlText string) map[string]any {
	m := putRE.FindStringSubmatch(sqlText)
	upload := s.srv.URL + "/gcs/upload?stage=" + url.QueryEscape(m[2])
	return map[string]any{
		"queryId":           "01standin-put",
		"command":           "UPLOAD",
		"src_locations":     []string{m[1]},
		"autoCompress":      true,
		"sourceCompression": "auto_detect",
		"parallel":          1,
		"overwrite":         true,
		"stageInfo": map[string]any{
			"locationType": "GCS", "location": "standin-bucket/binds/", "path": "binds/",
			"region": "US-CENTRAL1", "presignedUrl": upload,
		},
		"encryptionMaterial": map[string]any{
			"queryStageMasterKey": base64.StdEncoding.EncodeToString(s.masterKey),
			"queryId":             "01standin-put", "smkId": 1234,
		},
	}
}

// gcsUpload records one object the driver uploaded to the "bucket".
func (s *standin) gcsUpload(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.uploads[r.URL.Query().Get("stage")] = append(s.uploads[r.URL.Query().Get("stage")], gcsObject{
		body: body, encryption: r.Header.Get("x-goog-meta-encryptiondata"),
	})
	s.mu.Unlock()
}

type gcsObject struct {
	body       []byte
	encryption string // x-goog-meta-encryptiondata: wrapped key and IV
}

// plaintext decrypts an uploaded object the way Snowflake would read it: the
// file key is AES-ECB wrapped with the stage master key, the content is
// AES-CBC with PKCS#5 padding.
func (s *standin) plaintext(t testing.TB, o gcsObject) []byte {
	t.Helper()
	var meta struct {
		WrappedContentKey struct {
			EncryptedKey string
		}
		ContentEncryptionIV string
	}
	if err := json.Unmarshal([]byte(o.encryption), &meta); err != nil {
		t.Fatalf("upload without valid encryption metadata %q: %v", o.encryption, err)
	}
	wrapped, err1 := base64.StdEncoding.DecodeString(meta.WrappedContentKey.EncryptedKey)
	iv, err2 := base64.StdEncoding.DecodeString(meta.ContentEncryptionIV)
	kek, err3 := aes.NewCipher(s.masterKey)
	if err := errors.Join(err1, err2, err3); err != nil || len(wrapped)%aes.BlockSize != 0 || len(o.body)%aes.BlockSize != 0 {
		t.Fatalf("bad upload: key %d bytes, body %d bytes, err %v", len(wrapped), len(o.body), err)
	}
	fileKey := make([]byte, len(wrapped))
	for i := 0; i < len(wrapped); i += aes.BlockSize {
		kek.Decrypt(fileKey[i:], wrapped[i:i+aes.BlockSize])
	}
	block, err := aes.NewCipher(unpad(t, fileKey))
	if err != nil {
		t.Fatalf("file key: %v", err)
	}
	plain := make([]byte, len(o.body))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, o.body)
	return unpad(t, plain)
}

func unpad(t testing.TB, b []byte) []byte {
	t.Helper()
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		t.Fatalf("bad PKCS#5 padding %d", n)
	}
	return b[:len(b)-n]
}

func (s *standin) stageObjects(stage string) []gcsObject {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.uploads[stage])
}

func (s *standin) statements() []stmt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stmts)
}

func (s *standin) setSource(ids []string, count int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.source = slices.Clone(ids)
	slices.Sort(s.source)
	s.count = count
}
