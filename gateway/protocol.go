package gateway

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
)

// protocol is what an adapter tells the shared row code: its name (the
// protocol label of metrics and summary lines) and how its answer wraps
// the rows' values. Every protocol answers a row with the same value
// (appendOutcome, appendRowError); only the envelope differs.
type protocol struct {
	name string
	// open starts the answer to a batch of n rows; close ends it.
	open  func(buf []byte, n int) []byte
	close string
	// rowNumbers puts each row in Snowflake's [row,value] pair; else the
	// values come bare.
	rowNumbers bool
	// quoted answers each non-null value as a JSON string holding it
	// (Redshift's VARCHAR results).
	quoted bool
	// rowWord names a row in a batch-level error ("row 12", "call 3").
	rowWord string
	// noRetry: the warehouse does not retry a failed batch (Redshift), so
	// a provider failure's message does not ask it to.
	noRetry bool
	// sizeOption is the function option that caps a batch's rows, named
	// by a too-large answer.
	sizeOption string
	// errorBody, if set, wraps the one-line message of an answer other
	// than 200 (BigQuery's {"errorMessage": ...}); else it goes as text.
	errorBody func(msg string) []byte
	// logIDs, if set, names the request's IDs that every log line about
	// the batch carries (Snowflake's query and batch ids).
	logIDs func(h http.Header) []any
}

// logger is the base logger with the IDs every line about a batch of p
// carries.
func (s *Server) logger(p *protocol, h http.Header) *slog.Logger {
	if p.logIDs == nil {
		return s.log
	}
	return s.log.With(p.logIDs(h)...)
}

// writeError sends a one-line error answer in p's form.
func (p *protocol) writeError(c *gin.Context, status int, msg string) {
	if p.errorBody == nil {
		writeText(c, status, msg)
		return
	}
	c.Data(status, "application/json", p.errorBody(msg))
}

// Protocol names: the values of the protocol label and log field.
const (
	protoSnowflake = "snowflake"
	protoBigQuery  = "bigquery"
	protoRedshift  = "redshift"
	protoREST      = "rest"
)

// snowflakeProto is {"data":[[row,value],...]}.
var snowflakeProto = &protocol{
	name:       protoSnowflake,
	open:       func(buf []byte, _ int) []byte { return append(buf, `{"data":[`...) },
	close:      "]}",
	rowNumbers: true,
	rowWord:    "row",
	sizeOption: "MAX_BATCH_ROWS = %d on the external function",
	logIDs: func(h http.Header) []any {
		return []any{"query_id", h.Get(hdrQueryID), "batch_id", h.Get(hdrBatchID)}
	},
}
