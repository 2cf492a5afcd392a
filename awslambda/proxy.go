package awslambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// request is what a proxy event asks, whichever payload version it came in.
type request struct {
	method   string
	url      *url.URL
	header   http.Header
	body     string // as the event holds it: base64 when isBase64
	isBase64 bool
	sourceIP string
}

// reply is the gateway's answer, before it is put in a proxy response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// rest answers an API Gateway REST API proxy event (payload 1.0).
func (h *handler) rest(ctx context.Context, event []byte) ([]byte, error) {
	var ev events.APIGatewayProxyRequest
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, fmt.Errorf("awslambda: REST API proxy event: %w", err)
	}
	// The multi-value forms hold every value; the single ones only the last.
	hdr := http.Header{}
	for k, vs := range ev.MultiValueHeaders {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	for k, v := range ev.Headers {
		if hdr.Get(k) == "" {
			hdr.Set(k, v)
		}
	}
	query := url.Values{}
	for k, vs := range ev.MultiValueQueryStringParameters {
		query[k] = vs
	}
	for k, v := range ev.QueryStringParameters {
		if !query.Has(k) {
			query.Set(k, v)
		}
	}
	// path is decoded already; API Gateway's stage is not part of it.
	r := h.serve(ctx, request{method: ev.HTTPMethod, url: &url.URL{Path: ev.Path, RawQuery: query.Encode()},
		header: hdr, body: ev.Body, isBase64: ev.IsBase64Encoded, sourceIP: ev.RequestContext.Identity.SourceIP})
	return encode(r, func(r reply) any {
		resp := events.APIGatewayProxyResponse{StatusCode: r.status, Headers: map[string]string{}, MultiValueHeaders: r.header}
		for k, vs := range r.header {
			resp.Headers[k] = vs[0] // a subset of multiValueHeaders, which API Gateway merges it with
		}
		resp.Body, resp.IsBase64Encoded = bodyText(r)
		return resp
	})
}

// httpAPI answers an API Gateway HTTP API event (payload 2.0).
func (h *handler) httpAPI(ctx context.Context, event []byte) ([]byte, error) {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, fmt.Errorf("awslambda: HTTP API event: %w", err)
	}
	hdr := http.Header{}
	for k, v := range ev.Headers {
		hdr.Set(k, v) // several values arrive joined by commas, as HTTP allows
	}
	if len(ev.Cookies) > 0 {
		hdr.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	// rawPath starts with the stage's name unless the stage is $default.
	path := ev.RawPath
	if st := ev.RequestContext.Stage; st != "" && st != "$default" && strings.HasPrefix(path, "/"+st+"/") {
		path = path[len(st)+1:]
	}
	u, err := url.ParseRequestURI(path)
	if err == nil {
		u.RawQuery = ev.RawQueryString
	}
	var r reply
	if err != nil {
		r = textReply(http.StatusBadRequest, fmt.Sprintf("rawPath %q: %v", truncate(ev.RawPath, 64), err))
	} else {
		r = h.serve(ctx, request{method: ev.RequestContext.HTTP.Method, url: u, header: hdr,
			body: ev.Body, isBase64: ev.IsBase64Encoded, sourceIP: ev.RequestContext.HTTP.SourceIP})
	}
	return encode(r, func(r reply) any {
		resp := events.APIGatewayV2HTTPResponse{StatusCode: r.status, Headers: map[string]string{}, Cookies: []string{}}
		for k, vs := range r.header {
			if k == "Set-Cookie" {
				resp.Cookies = append(resp.Cookies, vs...)
				continue
			}
			resp.Headers[k] = strings.Join(vs, ",")
		}
		resp.Body, resp.IsBase64Encoded = bodyText(r)
		return resp
	})
}

// serve runs one request through the gateway's HTTP handler. The body is
// handed over as it was sent: the gateway inflates gzip and deflate itself.
func (h *handler) serve(ctx context.Context, in request) reply {
	body := []byte(in.body)
	if in.isBase64 {
		var err error
		if body, err = base64.StdEncoding.DecodeString(in.body); err != nil {
			return textReply(http.StatusBadRequest, "the event's body is not base64 though isBase64Encoded is true: "+err.Error())
		}
	} else if ce := in.header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		// API Gateway passes a text body as UTF-8, which a compressed one
		// is not: it would arrive damaged.
		return textReply(http.StatusBadRequest, "a "+truncate(ce, 16)+" body arrived as text (isBase64Encoded false): "+
			"add */* to the REST API's binary media types, or create the function with COMPRESSION = NONE")
	}
	req, err := http.NewRequestWithContext(ctx, in.method, "/", bytes.NewReader(body))
	if err != nil {
		return textReply(http.StatusBadRequest, "the event's request: "+err.Error())
	}
	req.URL, req.RequestURI = in.url, in.url.RequestURI()
	req.Header, req.Host = in.header, in.header.Get("Host")
	if in.sourceIP != "" {
		req.RemoteAddr = net.JoinHostPort(in.sourceIP, "0")
	}
	rec := &recorder{header: http.Header{}}
	h.http.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return reply{status: rec.status, header: rec.header, body: rec.body.Bytes()}
}

// bodyText is a reply's body as a proxy response holds it: the text itself
// when it is UTF-8 and not compressed, else base64 (API Gateway decodes it
// when isBase64Encoded is true).
func bodyText(r reply) (string, bool) {
	if ce := r.header.Get("Content-Encoding"); (ce == "" || ce == "identity") && utf8.Valid(r.body) {
		return string(r.body), false
	}
	return base64.StdEncoding.EncodeToString(r.body), true
}

// encode writes r in a proxy response's form. An answer too big for a
// Lambda payload becomes a 400 that says so: the 502 Lambda's own failure
// would give is retried by Snowflake, and in vain.
func encode(r reply, form func(reply) any) ([]byte, error) {
	out, err := marshal(form(r))
	if err == nil && len(out) > MaxPayload {
		out, err = marshal(form(textReply(http.StatusBadRequest, fmt.Sprintf(
			"the answer is %d bytes as a Lambda payload, over Lambda's %d: lower the function's MAX_BATCH_ROWS (or --max-response, for an error naming the MAX_BATCH_ROWS that fits)",
			len(out), MaxPayload))))
	}
	if err != nil {
		return nil, fmt.Errorf("awslambda: encoding the response: %w", err)
	}
	return out, nil
}

// marshal is json.Marshal without the HTML escapes, which only add bytes
// to a payload that has a size limit.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func textReply(status int, msg string) reply {
	return reply{status: status, header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, body: []byte(msg)}
}

// truncate shortens s, from the event, for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// recorder is the in-memory ResponseWriter a proxy event is served into.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// Flush has nothing to do: the answer leaves when the handler returns.
func (r *recorder) Flush() {}
