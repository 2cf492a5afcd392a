// Package awslambda runs a gateway.Server as an AWS Lambda function. One
// handler takes the three events such a function is invoked with: a
// Redshift Lambda UDF call, and the API Gateway proxy events of REST APIs
// (payload 1.0) and HTTP APIs (payload 2.0), through which Snowflake's
// external functions reach Lambda. A proxy event becomes an HTTP request
// served by the gateway's own handler, so every protocol behaves exactly as
// it does over HTTP.
package awslambda

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"unsafe"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/jsontext"
)

// MaxPayload is the largest answer a synchronous Lambda invocation may
// return: Lambda's 6 MB quota, read as 6 MiB. A bigger answer fails the
// invocation (API Gateway then answers 502, which Snowflake retries in
// vain), so it is replaced by an error that names the cause.
const MaxPayload = 6 << 20

// UnknownEventError is the error of an event of no shape the handler
// knows; Lambda reports its type name as the invocation's errorType.
type UnknownEventError struct {
	// Got says what the event was instead, when it was not a JSON object.
	Got string
}

func (e *UnknownEventError) Error() string {
	msg := "awslambda: unknown event: want a Redshift Lambda UDF event " +
		`(with "arguments" and "external_function"), an API Gateway REST API proxy event ` +
		`(with "httpMethod" and "path") or an HTTP API event ("version": "2.0", with "rawPath")`
	if e.Got != "" {
		msg += "; got " + e.Got
	}
	return msg
}

// eventKind is what sniff found.
type eventKind int

const (
	redshiftEvent eventKind = iota + 1
	restEvent               // API Gateway REST API, proxy payload 1.0
	httpAPIEvent            // API Gateway HTTP API, payload 2.0
)

// Handler returns gw as a Lambda handler, for lambda.StartWithOptions or
// lambda.NewHandler. It implements lambda.Handler itself, so it receives
// the event's bytes as they are and its answers are sent as they are.
func Handler(gw *gateway.Server) lambda.Handler {
	return &handler{http: gw.Handler(), redshiftAnswer: gw.RedshiftWith}
}

// handler answers invocations; it keeps no state between them, so
// concurrent invocations (Lambda's multi-concurrency) are safe.
type handler struct {
	http           http.Handler // serves proxy events
	redshiftAnswer func(ctx context.Context, event []byte, use func(answer []byte))
}

// Invoke answers one invocation. An event of no known shape is an error,
// which the runtime reports to Lambda as the invocation's error.
func (h *handler) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	kind, err := sniff(event)
	if err != nil {
		return nil, err
	}
	switch kind {
	case redshiftEvent:
		return h.redshift(ctx, event), nil
	case restEvent:
		return h.rest(ctx, event)
	default:
		return h.httpAPI(ctx, event)
	}
}

// sniff tells the event's kind from its top-level keys. Only those are
// decoded here; the values stay raw.
func sniff(event []byte) (eventKind, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(event, &top); err != nil || top == nil {
		return 0, &UnknownEventError{Got: "no JSON object"}
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	switch {
	case has("arguments") || has("external_function"):
		return redshiftEvent, nil
	case has("rawPath") && bytes.Equal(bytes.TrimSpace(top["version"]), []byte(`"2.0"`)):
		return httpAPIEvent, nil
	case has("httpMethod") && has("path"):
		// An HTTP API sending payload 1.0 sends this shape too.
		return restEvent, nil
	}
	return 0, &UnknownEventError{}
}

// redshift answers a Redshift call with the gateway's answer as a JSON
// string, the payload Redshift's documented Python handler returns
// (json.dumps of the answer): Redshift reads the answer from that string.
func (h *handler) redshift(ctx context.Context, event []byte) []byte {
	var out []byte
	h.redshiftAnswer(ctx, event, func(answer []byte) {
		// answer is valid until this returns, so it is read in place.
		out = jsontext.AppendString(make([]byte, 0, len(answer)+len(answer)/4+2), unsafe.String(unsafe.SliceData(answer), len(answer)), false)
	})
	if len(out) > MaxPayload {
		// Measured as sent: the string form escapes every quote.
		msg := fmt.Sprintf("the answer is %d bytes as a Lambda payload, over Lambda's %d: lower MAX_BATCH_ROWS or MAX_BATCH_SIZE",
			len(out), MaxPayload)
		fail := fmt.Appendf(nil, `{"success":false,"error_msg":%s}`, jsontext.AppendString(nil, msg, false))
		out = jsontext.AppendString(nil, string(fail), false)
	}
	return out
}
