package awslambda

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/snowgate/snowgate/gateway"
)

// seen is what a proxy event became, as the HTTP handler saw it.
type seen struct {
	method, path, query, host, remote, body string
	header                                  http.Header
}

// echo records each request and answers with a 201, two Vary values, a
// cookie and the body "ok".
func echo(got *seen) *handler {
	return &handler{http: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.RemoteAddr, string(b), r.Header}
		w.Header().Add("Vary", "Accept-Encoding")
		w.Header().Add("Vary", "Origin")
		w.Header().Set("Set-Cookie", "k=v")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("ok"))
	})}
}

func TestRESTEventBecomesRequest(t *testing.T) {
	var got seen
	ev := events.APIGatewayProxyRequest{
		HTTPMethod: "PUT", Path: "/v1/locations/a b",
		Headers:                         map[string]string{"Host": "x.execute-api.example", "X-One": "last", "X-Single": "s"},
		MultiValueHeaders:               map[string][]string{"X-One": {"first", "last"}},
		QueryStringParameters:           map[string]string{"a": "2", "c": "&"},
		MultiValueQueryStringParameters: map[string][]string{"a": {"1", "2"}},
		RequestContext:                  events.APIGatewayProxyRequestContext{Identity: events.APIGatewayRequestIdentity{SourceIP: "192.0.2.7"}},
		Body:                            base64.StdEncoding.EncodeToString([]byte("raw\x00body")), IsBase64Encoded: true,
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(invoke(t, echo(&got), ev), &resp); err != nil {
		t.Fatal(err)
	}
	want := seen{"PUT", "/v1/locations/a b", "a=1&a=2&c=%26", "x.execute-api.example", "192.0.2.7:0", "raw\x00body",
		http.Header{"X-One": {"first", "last"}, "X-Single": {"s"}, "Host": {"x.execute-api.example"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got request %+v; want %+v", got, want)
	}
	wantResp := events.APIGatewayProxyResponse{StatusCode: 201, Body: "ok",
		Headers:           map[string]string{"Vary": "Accept-Encoding", "Set-Cookie": "k=v"},
		MultiValueHeaders: map[string][]string{"Vary": {"Accept-Encoding", "Origin"}, "Set-Cookie": {"k=v"}}}
	if !reflect.DeepEqual(resp, wantResp) {
		t.Errorf("got response %+v; want %+v", resp, wantResp)
	}
}

func TestHTTPAPIEventBecomesRequest(t *testing.T) {
	tests := []struct{ name, stage, rawPath, wantPath string }{
		{"default stage", "$default", "/prod/x%2Fy", "/prod/x/y"},
		{"named stage", "prod", "/prod/resolve_location", "/resolve_location"},
		{"path not under the stage", "prod", "/production/x", "/production/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got seen
			ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: tt.rawPath, RawQueryString: "a=1&a=2",
				Cookies: []string{"c1=1", "c2=2"}, Headers: map[string]string{"x-many": "a,b", "host": "h.example"},
				RequestContext: events.APIGatewayV2HTTPRequestContext{Stage: tt.stage,
					HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET"}},
				Body: "text body"}
			var resp events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(invoke(t, echo(&got), ev), &resp); err != nil {
				t.Fatal(err)
			}
			want := seen{"GET", tt.wantPath, "a=1&a=2", "h.example", "", "text body",
				http.Header{"X-Many": {"a,b"}, "Host": {"h.example"}, "Cookie": {"c1=1; c2=2"}}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got request %+v; want %+v", got, want)
			}
			wantResp := events.APIGatewayV2HTTPResponse{StatusCode: 201, Body: "ok",
				Headers: map[string]string{"Vary": "Accept-Encoding,Origin"}, Cookies: []string{"k=v"}}
			if !reflect.DeepEqual(resp, wantResp) {
				t.Errorf("got response %+v; want %+v", resp, wantResp)
			}
		})
	}
}

// Bodies the gateway cannot be given get a 400 naming the cause, and the
// gateway never sees them.
func TestBadBodiesAre400(t *testing.T) {
	tests := []struct {
		name     string
		ev       events.APIGatewayProxyRequest
		wantText string
	}{
		{"not base64", events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/resolve_location",
			Body: "%%%", IsBase64Encoded: true}, "not base64"},
		{"gzip as text", events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/resolve_location",
			Headers: map[string]string{"Content-Encoding": "gzip"}, Body: "\ufffd\ufffd"}, "binary media types"},
		{"bad method", events.APIGatewayProxyRequest{HTTPMethod: "BAD METHOD", Path: "/resolve_location"}, "invalid method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			h := Handler(newGateway(t, gateway.Config{}, &calls))
			var resp events.APIGatewayProxyResponse
			if err := json.Unmarshal(invoke(t, h, tt.ev), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 400 || !strings.Contains(resp.Body, tt.wantText) || calls.Load() != 0 {
				t.Fatalf("got %d %q, %d resolver calls; want 400 with %q, none", resp.StatusCode, resp.Body, calls.Load(), tt.wantText)
			}
		})
	}
}

// A Snowflake answer within --max-response but over Lambda's payload
// once escaped into the proxy response is a 400 that says so, and the
// same holds for Redshift's string.
func TestAnswerOverLambdaPayloadIs400(t *testing.T) {
	// About 6.5 MB of answer, and more once its quotes are escaped.
	body, want := snowflakeBatch(58_000)
	if len(want) > 7_000_000 || len(want) < MaxPayload {
		t.Fatalf("the answer is %d bytes; want one within 7 MB but over Lambda's payload", len(want))
	}
	gw := newGateway(t, gateway.Config{MaxResponse: 7_000_000, MaxBody: 100 << 20, MaxInflightRows: 1 << 20}, nil)
	h := Handler(gw)
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(invoke(t, h, events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/resolve_location", Body: body}), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || !strings.Contains(resp.Body, "over Lambda's 6291456") || !strings.Contains(resp.Body, "MAX_BATCH_ROWS") {
		t.Fatalf("got %d %.200q; want 400 naming Lambda's limit and MAX_BATCH_ROWS", resp.StatusCode, resp.Body)
	}
	huge := `{"success":true,"results":["` + strings.Repeat(`\"`, MaxPayload/3) + `"]}`
	rh := &handler{redshiftAnswer: func(_ context.Context, _ []byte, use func([]byte)) { use([]byte(huge)) }}
	out := invoke(t, rh, []byte(`{"arguments":[]}`))
	var text string
	if err := json.Unmarshal(out, &text); err != nil || len(out) > MaxPayload ||
		!strings.HasPrefix(text, `{"success":false,"error_msg":"the answer is`) {
		t.Fatalf("got %d bytes %.120s (%v); want a short success:false naming the size", len(out), out, err)
	}
}

// FuzzInvoke: whatever the event, Invoke does not panic and answers
// either an error or JSON.
func FuzzInvoke(f *testing.F) {
	for _, s := range []string{`{"httpMethod":"POST","path":"/x","body":"e30=","isBase64Encoded":true}`,
		`{"version":"2.0","rawPath":"/%zz","requestContext":{"http":{"method":"GET"}}}`,
		`{"version":"2.0","rawPath":"x","rawQueryString":"%%","cookies":[""]}`,
		`{"arguments":[["A1"]],"external_function":"f"}`, `{"httpMethod":1}`, `{}`} {
		f.Add([]byte(s))
	}
	var got seen
	h := echo(&got)
	h.redshiftAnswer = func(_ context.Context, ev []byte, use func([]byte)) { use(ev) }
	f.Fuzz(func(t *testing.T, event []byte) {
		out, err := h.Invoke(context.Background(), event)
		if err == nil && !json.Valid(out) {
			t.Fatalf("answer %q is not JSON", out)
		}
	})
}
