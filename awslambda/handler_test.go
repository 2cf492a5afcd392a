package awslambda

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
)

// record is the VARIANT text a found ID's entry carries.
func record(id string) string {
	label, city := "Label "+id, "Kraków & <Gdańsk>"
	lat, lon := 52.23, 21.01
	js, err := json.Marshal(locapi.Record{ID: id, Label: &label, CityLabel: &city, Latitude: &lat, Longitude: &lon})
	if err != nil {
		panic(err)
	}
	return string(js)
}

// newGateway serves IDs starting with "A" as found and every other ID as
// not found, counting the resolver's calls.
func newGateway(t *testing.T, cfg gateway.Config, calls *atomic.Int64) *gateway.Server {
	t.Helper()
	res := gateway.ResolverFunc(func(_ context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
		if calls != nil {
			calls.Add(1)
		}
		outs := make([]cache.Outcome, len(ids))
		for i, id := range ids {
			e := &cache.Entry{Status: locapi.NotFound}
			if strings.HasPrefix(id, "A") {
				e = &cache.Entry{Status: locapi.Found, JSON: []byte(record(id))}
			}
			outs[i] = cache.Outcome{Entry: e}
		}
		return outs, cache.Stats{IDs: len(ids)}
	})
	gw, err := gateway.New(res, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// snowflakeBatch is a batch of n rows, even rows found, and its answer.
func snowflakeBatch(n int) (body, answer string) {
	var in, out strings.Builder
	in.WriteString(`{"data":[`)
	out.WriteString(`{"data":[`)
	for i := range n {
		if i > 0 {
			in.WriteByte(',')
			out.WriteByte(',')
		}
		id, want := fmt.Sprintf("N%d", i), "null"
		if i%2 == 0 {
			id = fmt.Sprintf("A%d", i)
			want = record(id)
		}
		fmt.Fprintf(&in, `[%d,%q]`, i, id)
		fmt.Fprintf(&out, `[%d,%s]`, i, want)
	}
	return in.String() + "]}", out.String() + "]}"
}

func invoke(t *testing.T, h lambda.Handler, event any) []byte {
	t.Helper()
	raw, ok := event.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(event); err != nil {
			t.Fatal(err)
		}
	}
	out, err := h.Invoke(context.Background(), raw)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	return out
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return string(plain)
}

func TestSniff(t *testing.T) {
	tests := []struct {
		name, event string
		want        eventKind
	}{
		{"redshift", `{"request_id":"r","external_function":"public.f","num_records":1,"arguments":[["A1"]]}`, redshiftEvent},
		{"redshift without arguments", `{"external_function":"public.f"}`, redshiftEvent},
		{"rest", `{"httpMethod":"POST","path":"/resolve_location","headers":{},"body":"{}"}`, restEvent},
		{"http api payload 1.0", `{"version":"1.0","httpMethod":"POST","path":"/x","body":""}`, restEvent},
		{"http api payload 2.0", `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":"POST"}}}`, httpAPIEvent},
		{"empty object", `{}`, 0},
		{"version 2.0 without rawPath", `{"version":"2.0","requestContext":{}}`, 0},
		{"path without method", `{"path":"/x"}`, 0},
		{"array", `[1,2]`, 0},
		{"null", `null`, 0},
		{"string", `"{\"arguments\":[]}"`, 0},
		{"not JSON", `{"arguments":`, 0},
		{"empty", ``, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sniff([]byte(tt.event))
			var unknown *UnknownEventError
			if got != tt.want || (tt.want == 0) != errors.As(err, &unknown) {
				t.Fatalf("got %v, %v; want %v (an error naming the shapes when 0)", got, err, tt.want)
			}
		})
	}
}

func TestUnknownEventIsAnInvocationError(t *testing.T) {
	h := Handler(newGateway(t, gateway.Config{}, nil))
	for _, ev := range []string{`{"Records":[{"eventSource":"aws:s3"}]}`, `[]`, `nonsense`} {
		out, err := h.Invoke(context.Background(), []byte(ev))
		var unknown *UnknownEventError
		if out != nil || !errors.As(err, &unknown) || !strings.Contains(err.Error(), `"httpMethod"`) {
			t.Errorf("%s: got %q, %v; want an error naming the event shapes", ev, out, err)
		}
	}
}

// The payload Redshift reads is a JSON string holding the answer, as
// Python's json.dumps(ret) returned from a handler is.
func TestRedshiftPayloadIsAJSONString(t *testing.T) {
	gw := newGateway(t, gateway.Config{}, nil)
	event := []byte(`{"request_id":"23FF1F97","cluster":"arn:aws:redshift:xxxx","user":"adminuser","database":"db1",
		"external_function":"public.resolve_location","query_id":5678234,"num_records":3,"arguments":[["A1"],["B2"],[null]]}`)
	payload := invoke(t, Handler(gw), event)
	var text string
	if err := json.Unmarshal(payload, &text); err != nil {
		t.Fatalf("payload %s is not a JSON string: %v", payload, err)
	}
	var ans struct {
		Success    bool      `json:"success"`
		NumRecords int       `json:"num_records"`
		Results    []*string `json:"results"`
	}
	if err := json.Unmarshal([]byte(text), &ans); err != nil {
		t.Fatalf("the string %q is not Redshift's answer: %v", text, err)
	}
	if !ans.Success || ans.NumRecords != 3 || len(ans.Results) != 3 || ans.Results[0] == nil ||
		*ans.Results[0] != record("A1") || ans.Results[1] != nil || ans.Results[2] != nil {
		t.Fatalf("got %s; want success, 3 records: A1's record, null, null", text)
	}
	// The string holds the gateway's very bytes.
	if want := gw.Redshift(context.Background(), event); text != string(want) {
		t.Fatalf("got %q; want the gateway's %q", text, want)
	}
}

// The string is what encoding/json (Python's json.dumps, ensure_ascii
// aside) makes of the answer, through lambda.NewHandler too.
func TestRedshiftStringEscapes(t *testing.T) {
	answer := "{\"success\":false,\"error_msg\":\"<a & b> \\\"q\\\" \u2028 ż\"}"
	h := &handler{redshiftAnswer: func(_ context.Context, _ []byte, use func([]byte)) { use([]byte(answer)) }}
	out, err := lambda.NewHandler(h).Invoke(context.Background(), []byte(`{"arguments":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.Unmarshal(out, &got); err != nil || got != answer {
		t.Fatalf("got %s (%v); want the JSON string of %q", out, err, answer)
	}
	if want, _ := marshal(answer); !bytes.Equal(out, want) {
		t.Fatalf("got %s; want encoding/json's %s", out, want)
	}
}

func TestSnowflakeThroughRESTAPI(t *testing.T) {
	body, want := snowflakeBatch(3)
	ev := events.APIGatewayProxyRequest{
		Resource: "/resolve_location", Path: "/resolve_location", HTTPMethod: "POST",
		Headers: map[string]string{"Content-Type": "application/json", "sf-external-function-format": "json",
			"sf-external-function-format-version": "1.0", "sf-external-function-query-batch-id": "q1:1:1:0:0"},
		MultiValueHeaders: map[string][]string{"sf-external-function-format": {"json"}},
		Body:              body,
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(invoke(t, Handler(newGateway(t, gateway.Config{}, nil)), ev), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.IsBase64Encoded || resp.Body != want ||
		resp.Headers["Content-Type"] != "application/json" ||
		!reflect.DeepEqual(resp.MultiValueHeaders["Content-Type"], []string{"application/json"}) {
		t.Fatalf("got %+v; want 200, text body %s, Content-Type in both header maps", resp, want)
	}
}

// Snowflake's COMPRESSION = AUTO through an HTTP API: a gzip body arrives
// as base64, and the gzip answer leaves as base64.
func TestSnowflakeGzipThroughHTTPAPI(t *testing.T) {
	body, want := snowflakeBatch(40) // over the gateway's 1 KiB gzip floor
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(body))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: "/prod/resolve_location",
		Headers: map[string]string{"content-encoding": "gzip", "accept-encoding": "gzip", "content-type": "application/json",
			"sf-external-function-format": "json", "sf-external-function-format-version": "1.0"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{Stage: "prod",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", SourceIP: "192.0.2.1"}},
		Body: base64.StdEncoding.EncodeToString(gz.Bytes()), IsBase64Encoded: true,
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(invoke(t, Handler(newGateway(t, gateway.Config{}, nil)), ev), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !resp.IsBase64Encoded || resp.Headers["Content-Encoding"] != "gzip" {
		t.Fatalf("got %d, base64 %v, headers %v; want 200, a base64 gzip body", resp.StatusCode, resp.IsBase64Encoded, resp.Headers)
	}
	raw, err := base64.StdEncoding.DecodeString(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := gunzip(t, raw); got != want {
		t.Fatalf("got %s; want %s", got, want)
	}
}
