package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

func TestLambdaServeSettings(t *testing.T) {
	tests := []struct {
		name, runtimeAPI, env string
		args                  []string
		want                  int
	}{
		{"outside Lambda", "", "", nil, 10_000_000},
		{"Lambda default", "127.0.0.1:9001", "", nil, lambdaMaxResponse},
		{"Lambda, environment twin", "127.0.0.1:9001", "6000000", nil, 6_000_000},
		{"Lambda, flag", "127.0.0.1:9001", "6000000", []string{"--max-response", "4000000"}, 4_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(runtimeAPIEnv, tt.runtimeAPI)
			t.Setenv("SNOWGATE_MAX_RESPONSE", tt.env)
			if tt.env == "" {
				// Unset, not empty; t.Setenv restores it.
				if err := os.Unsetenv("SNOWGATE_MAX_RESPONSE"); err != nil {
					t.Fatal(err)
				}
			}
			sf, err := parseServe(tt.args, io.Discard)
			if err != nil || sf.cfg.MaxResponse != tt.want {
				t.Fatalf("got %v, %v; want --max-response %d", sf, err, tt.want)
			}
		})
	}
	t.Run("async refused", func(t *testing.T) {
		t.Setenv(runtimeAPIEnv, "127.0.0.1:9001")
		_, err := parseServe([]string{"--async"}, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "frozen between invocations") {
			t.Fatalf("got %v; want a usage error saying why --async cannot work", err)
		}
	})
}

// runtimeAPI stands in for Lambda's Runtime API: it hands out its events
// in order, then holds /next open until closed; it keeps every answer.
type runtimeAPI struct {
	t      *testing.T
	events [][]byte
	done   chan struct{} // closed to release a held /next
	posted chan invocationResult

	mu        sync.Mutex // guards the fields below
	next      int
	firstNext time.Time
}

// invocationResult is one POST to .../response or .../error.
type invocationResult struct {
	id, kind string // kind is "response" or "error"
	body     []byte
	at       time.Time
}

func (a *runtimeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/2018-06-01/runtime/invocation/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	switch {
	case ok && rest == "next" && r.Method == http.MethodGet:
		a.handOut(w, r)
	case ok && r.Method == http.MethodPost && (strings.HasSuffix(rest, "/response") || strings.HasSuffix(rest, "/error")):
		id, kind, _ := strings.Cut(rest, "/")
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		a.posted <- invocationResult{id: id, kind: kind, body: body, at: time.Now()}
	default:
		a.t.Errorf("runtime API: unexpected %s %s", r.Method, r.URL.Path)
		http.Error(w, "not a Runtime API path", http.StatusNotFound)
	}
}

// handOut answers /next with the next event, like Lambda with its headers.
func (a *runtimeAPI) handOut(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	if a.firstNext.IsZero() {
		a.firstNext = time.Now()
	}
	i := a.next
	a.next++
	a.mu.Unlock()
	if i >= len(a.events) {
		select { // as Lambda does between invocations: nothing to hand out
		case <-a.done:
		case <-r.Context().Done():
		}
		http.Error(w, "runtime API stand-in closed", http.StatusGone)
		return
	}
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", fmt.Sprintf("req-%d", i))
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:snowgate")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(a.events[i])
}

// lambdaIDs are simulator IDs of each kind the batches need.
type lambdaIDs struct{ found, notFound, noLocation []string }

func pickIDs(t *testing.T, rs *sim.Running, found int) lambdaIDs {
	t.Helper()
	var ids lambdaIDs
	for i := 0; len(ids.found) < found || len(ids.notFound) == 0 || len(ids.noLocation) == 0; i++ {
		id := fmt.Sprintf("LMB%d", i)
		switch k, _ := rs.Expected(id); k {
		case sim.Found:
			if len(ids.found) < found {
				ids.found = append(ids.found, id)
			}
		case sim.NotFound:
			ids.notFound = append(ids.notFound, id)
		case sim.NoLocation:
			ids.noLocation = append(ids.noLocation, id)
		}
		if i > 100_000 {
			t.Fatal("the simulator has too few IDs of some kind")
		}
	}
	return ids
}

// lambdaWant is a found ID's VARIANT text, from the simulator's record.
func lambdaWant(t *testing.T, rs *sim.Running, id string) string {
	t.Helper()
	_, body := rs.Expected(id)
	var e sim.Entity
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	l := e.Location
	js, err := json.Marshal(locapi.Record{ID: e.ID, Label: e.Label, GeoLabel: l.GeoLabel, StreetAddress: l.StreetAddress,
		CityLabel: l.CityLabel, PostalCode: l.PostalCode, CountryLabel: l.CountryLabel, Latitude: l.Latitude, Longitude: l.Longitude})
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// snowflakeRows is a Snowflake batch of ids and the exact answer.
func snowflakeRows(t *testing.T, rs *sim.Running, ids []string) (batch, answer []byte) {
	t.Helper()
	var in, out bytes.Buffer
	in.WriteString(`{"data":[`)
	out.WriteString(`{"data":[`)
	for i, id := range ids {
		if i > 0 {
			in.WriteByte(',')
			out.WriteByte(',')
		}
		want := "null"
		if k, _ := rs.Expected(id); k == sim.Found {
			want = lambdaWant(t, rs, id)
		}
		fmt.Fprintf(&in, "[%d,%q]", i, id)
		fmt.Fprintf(&out, "[%d,%s]", i, want)
	}
	in.WriteString("]}")
	out.WriteString("]}")
	return in.Bytes(), out.Bytes()
}

// TestLambdaRuntimeAPI runs the built binary as Lambda runs a bootstrap:
// no arguments, AWS_LAMBDA_RUNTIME_API pointing at a stand-in Runtime API
// on 127.0.0.1 that hands out a Redshift event, a REST API proxy event
// and a gzip+base64 HTTP API event with Snowflake batches, and a malformed
// event. Every answer is checked against the simulator's records; then
// SIGTERM must end the process cleanly.
func TestLambdaRuntimeAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootstrap(t)
	rs, err := sim.Start(sim.Config{NotFoundRatio: 0.2, NoLocationRatio: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	ids := pickIDs(t, rs, 40)
	evs, check := lambdaEvents(t, rs, ids)
	api := &runtimeAPI{t: t, events: evs, done: make(chan struct{}), posted: make(chan invocationResult, len(evs))}
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer close(api.done) // before srv.Close: a held /next must end first

	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		runtimeAPIEnv + "=" + strings.TrimPrefix(srv.URL, "http://"),
		"SNOWGATE_UPSTREAM_URL=" + rs.URL + sim.EntitiesPath + "{id}?select=id,label,location", "SNOWGATE_RATE=0"}
	var stderr bytes.Buffer // read after Wait only
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	got := awaitAnswers(t, api, len(evs), exited, &stderr)
	firstAnswer := got["req-0"].at
	stopBootstrap(t, cmd, exited, &stderr)
	for i := range evs {
		check[i](t, got[fmt.Sprintf("req-%d", i)])
	}
	for _, want := range []string{`"msg":"lambda mode`, `"msg":"no --redis-url`, `"max_response":` + strconv.Itoa(lambdaMaxResponse)} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, stderr.String())
		}
	}
	info, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	firstNext := api.firstNext
	api.mu.Unlock()
	t.Logf("bootstrap (-tags %q, stripped) %.1f MB; exec to first /next %v, to first answer %v",
		*lambdaTags, float64(info.Size())/1e6, firstNext.Sub(start).Round(time.Millisecond), firstAnswer.Sub(start).Round(time.Millisecond))
	if *lambdaColdStarts > 0 {
		logColdStarts(t, bin, cmd.Env, evs[0], check[0])
	}
}

// awaitAnswers collects n answers by request id, or fails if the process
// ends first. stderr is read only once the process has ended.
func awaitAnswers(t *testing.T, api *runtimeAPI, n int, exited <-chan error, stderr *bytes.Buffer) map[string]invocationResult {
	t.Helper()
	got := map[string]invocationResult{}
	for len(got) < n {
		select {
		case r := <-api.posted:
			got[r.id] = r
		case err := <-exited:
			t.Fatalf("the process ended after %d answers: %v\n%s", len(got), err, stderr.String())
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d answers after a minute", len(got), n)
		}
	}
	return got
}

// stopBootstrap sends SIGTERM and wants exit status 0.
func stopBootstrap(t *testing.T, cmd *exec.Cmd, exited <-chan error, stderr *bytes.Buffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v; want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		if err := <-exited; err != nil {
			t.Logf("killed: %v", err)
		}
		t.Fatalf("still running a minute after SIGTERM\n%s", stderr.String())
	}
}

var (
	lambdaTags = flag.String("lambda.tags", "lambda.norpc",
		"build tags of TestLambdaRuntimeAPI's bootstrap; with slim it is built with CGO_ENABLED=0")
	lambdaColdStarts = flag.Int("lambda.coldstarts", 0, "fresh processes TestLambdaRuntimeAPI times to their first answer, for the cold-start figures")
)

// buildBootstrap builds the binary as it is packaged for Lambda: stripped,
// with -lambda.tags.
func buildBootstrap(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-tags", *lambdaTags, "-ldflags", "-s -w", "-o", bin, ".")
	// The slim build is static; the full one links DuckDB through cgo.
	cgo := "CGO_ENABLED=1"
	if slices.Contains(strings.Split(*lambdaTags, ","), "slim") {
		cgo = "CGO_ENABLED=0"
	}
	cmd.Env = append(os.Environ(), cgo)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// logColdStarts starts -lambda.coldstarts fresh processes, each answering
// one event, and logs the time from exec to the first /next and to the
// answer: the part of a Lambda cold start that is snowgate's.
func logColdStarts(t *testing.T, bin string, env []string, event []byte, check func(*testing.T, invocationResult)) {
	var toNext, toAnswer []time.Duration
	for range *lambdaColdStarts {
		api := &runtimeAPI{t: t, events: [][]byte{event}, done: make(chan struct{}), posted: make(chan invocationResult, 1)}
		srv := httptest.NewServer(api)
		cmd := exec.CommandContext(t.Context(), bin)
		cmd.Env = append(slices.Clone(env), runtimeAPIEnv+"="+strings.TrimPrefix(srv.URL, "http://"))
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var r invocationResult
		select {
		case r = <-api.posted:
		case <-time.After(time.Minute):
			t.Fatal("no answer within a minute")
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
		close(api.done)
		srv.Close()
		check(t, r)
		api.mu.Lock()
		toNext, toAnswer = append(toNext, api.firstNext.Sub(start)), append(toAnswer, r.at.Sub(start))
		api.mu.Unlock()
	}
	slices.Sort(toNext)
	slices.Sort(toAnswer)
	n := len(toNext)
	t.Logf("%d cold starts: exec to first /next min %v median %v max %v; to first answer min %v median %v max %v", n,
		toNext[0].Round(time.Millisecond), toNext[n/2].Round(time.Millisecond), toNext[n-1].Round(time.Millisecond),
		toAnswer[0].Round(time.Millisecond), toAnswer[n/2].Round(time.Millisecond), toAnswer[n-1].Round(time.Millisecond))
}

// lambdaCase is one invocation TestLambdaRuntimeAPI hands out, and the
// check of its answer.
type lambdaCase struct {
	event []byte
	check func(*testing.T, invocationResult)
}

// lambdaEvents are the invocations TestLambdaRuntimeAPI hands out, and
// for each a check of its answer.
func lambdaEvents(t *testing.T, rs *sim.Running, ids lambdaIDs) ([][]byte, []func(*testing.T, invocationResult)) {
	t.Helper()
	var evs [][]byte
	var checks []func(*testing.T, invocationResult)
	for _, c := range []lambdaCase{redshiftCase(t, rs, ids), restCase(t, rs, ids), httpAPICase(t, rs, ids), malformedCase()} {
		evs, checks = append(evs, c.event), append(checks, c.check)
	}
	return evs, checks
}

// redshiftCase: found, not found, null and no location; the payload is
// the JSON string of the answer.
func redshiftCase(t *testing.T, rs *sim.Running, ids lambdaIDs) lambdaCase {
	event := fmt.Appendf(nil, `{"request_id":"23FF1F97","cluster":"arn:aws:redshift:xxxx","user":"adminuser",`+
		`"database":"db1","external_function":"public.resolve_location","query_id":5678234,"num_records":4,`+
		`"arguments":[[%q],[%q],[null],[%q]]}`, ids.found[0], ids.notFound[0], ids.noLocation[0])
	want := fmt.Sprintf(`{"success":true,"num_records":4,"results":[%s,null,null,null]}`,
		jsonString(t, lambdaWant(t, rs, ids.found[0])))
	return lambdaCase{event, func(t *testing.T, r invocationResult) {
		var text string
		if err := json.Unmarshal(r.body, &text); r.kind != "response" || err != nil || text != want {
			t.Errorf("Redshift: got %s %s (%v); want the JSON string of %s", r.kind, r.body, err, want)
		}
	}}
}

// restCase: a Snowflake batch in a REST API proxy event, answered as text.
func restCase(t *testing.T, rs *sim.Running, ids lambdaIDs) lambdaCase {
	batch, want := snowflakeRows(t, rs, []string{ids.found[1], ids.notFound[0], ids.noLocation[0], ids.found[2]})
	event := marshalEvent(t, events.APIGatewayProxyRequest{Resource: "/resolve_location", Path: "/resolve_location",
		HTTPMethod: "POST", Body: string(batch),
		Headers: map[string]string{"Content-Type": "application/json", "sf-external-function-format": "json",
			"sf-external-function-format-version": "1.0", "sf-external-function-query-batch-id": "01b0:1:1:0:0"}})
	return lambdaCase{event, func(t *testing.T, r invocationResult) {
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(r.body, &resp); r.kind != "response" || err != nil || resp.StatusCode != 200 ||
			resp.IsBase64Encoded || resp.Body != string(want) {
			t.Errorf("REST API: got %s %s (%v); want 200 with %s", r.kind, r.body, err, want)
		}
	}}
}

// httpAPICase: a gzip+base64 Snowflake batch in an HTTP API event that
// accepts gzip, answered gzip+base64.
func httpAPICase(t *testing.T, rs *sim.Running, ids lambdaIDs) lambdaCase {
	batch, want := snowflakeRows(t, rs, append(slices.Clone(ids.found), ids.notFound[0]))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(batch)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	event := marshalEvent(t, events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "POST /resolve_location",
		RawPath: "/resolve_location", IsBase64Encoded: true, Body: base64.StdEncoding.EncodeToString(gz.Bytes()),
		Headers: map[string]string{"content-encoding": "gzip", "accept-encoding": "gzip", "content-type": "application/json",
			"sf-external-function-format": "json", "sf-external-function-format-version": "1.0"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{Stage: "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/resolve_location"}}})
	return lambdaCase{event, func(t *testing.T, r invocationResult) {
		var resp events.APIGatewayV2HTTPResponse
		err := json.Unmarshal(r.body, &resp)
		var body []byte
		if err == nil {
			body, err = base64.StdEncoding.DecodeString(resp.Body)
		}
		if err == nil {
			body, err = gunzipBytes(body)
		}
		if r.kind != "response" || err != nil || resp.StatusCode != 200 || !resp.IsBase64Encoded ||
			resp.Headers["Content-Encoding"] != "gzip" || !bytes.Equal(body, want) {
			t.Errorf("HTTP API: got %s %.300s (%v), body %.300s; want 200 with gzip+base64 of %.300s", r.kind, r.body, err, body, want)
		}
	}}
}

// malformedCase: an event of no known shape is the invocation's error.
func malformedCase() lambdaCase {
	return lambdaCase{[]byte(`{"hello":"world"}`), func(t *testing.T, r invocationResult) {
		var e struct{ ErrorMessage, ErrorType string }
		if err := json.Unmarshal(r.body, &e); r.kind != "error" || err != nil ||
			e.ErrorType != "UnknownEventError" || !strings.Contains(e.ErrorMessage, "unknown event: want a Redshift") {
			t.Errorf("malformed event: got %s %s (%v); want an UnknownEventError naming the shapes", r.kind, r.body, err)
		}
	}}
}

func marshalEvent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonString(t *testing.T, s string) string { return string(marshalEvent(t, s)) }

func gunzipBytes(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
