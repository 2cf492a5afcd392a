// Package extfunc is Snowflake's external-function wire protocol, written
// once: the request headers, the {"data": [[row, value], ...]} envelope in
// both directions with the checks Snowflake applies to an answer, and a
// client that sends batches the way Snowflake does (retries of 429 and 5xx
// with the same batch id, 202 answered by polling with GET).
//
// The contract comes from Snowflake's pages [external-functions-data-format]
// and [external-functions-implementation]; the project keeps a condensed
// copy of them, with public captures, outside this repository.
//
// The gateway uses the header names; the backfill's --via client, the
// benchmark's load driver and the demo use the client.
package extfunc

import (
	"encoding/base64"
	"net/http"
)

// Request headers, lower case as Snowflake sends them; HTTP matches them
// case-insensitively.
const (
	HeaderFormat        = "sf-external-function-format"         // Format
	HeaderFormatVersion = "sf-external-function-format-version" // FormatVersion
	// HeaderBatchID stays the same on every retry and poll of a batch: a
	// service keys idempotency and asynchronous jobs on it.
	HeaderBatchID    = "sf-external-function-query-batch-id"
	HeaderQueryID    = "sf-external-function-current-query-id"
	HeaderName       = "sf-external-function-name"
	HeaderSignature  = "sf-external-function-signature"
	HeaderReturnType = "sf-external-function-return-type"
	// PrefixCustom starts the headers of the function's HEADERS clause,
	// PrefixContext those of its CONTEXT_HEADERS clause.
	PrefixCustom  = "sf-custom-"
	PrefixContext = "sf-context-"
	// SuffixBase64 makes the twin of a name, signature, return type or
	// context header that carries its value base64-encoded: the plain
	// name's case varies with the route a request took, the twin's does
	// not.
	SuffixBase64 = "-base64"
)

// The only format and version Snowflake sends.
const (
	Format        = "json"
	FormatVersion = "1.0"
)

// Function names the external function in the request headers, as its
// CREATE EXTERNAL FUNCTION declared it. Empty fields are not sent.
type Function struct {
	Name       string // e.g. RESOLVE_LOCATION
	Signature  string // e.g. (ID VARCHAR)
	ReturnType string // e.g. VARIANT
}

// setHeaders sets the protocol headers of every request of a batch.
func (f Function) setHeaders(h http.Header, queryID, batchID string) {
	h.Set(HeaderFormat, Format)
	h.Set(HeaderFormatVersion, FormatVersion)
	if queryID != "" {
		h.Set(HeaderQueryID, queryID)
	}
	h.Set(HeaderBatchID, batchID)
	for _, kv := range [...][2]string{{HeaderName, f.Name}, {HeaderSignature, f.Signature}, {HeaderReturnType, f.ReturnType}} {
		if kv[1] != "" {
			h.Set(kv[0], kv[1])
			h.Set(kv[0]+SuffixBase64, base64.StdEncoding.EncodeToString([]byte(kv[1])))
		}
	}
}
