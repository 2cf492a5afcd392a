package gateway

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"

	"github.com/snowgate/snowgate/extfunc"
)

// Snowflake's request headers, named once in extfunc.
const (
	hdrFormat        = extfunc.HeaderFormat
	hdrFormatVersion = extfunc.HeaderFormatVersion
	hdrBatchID       = extfunc.HeaderBatchID
	hdrQueryID       = extfunc.HeaderQueryID
	hdrName          = extfunc.HeaderName
	hdrSignature     = extfunc.HeaderSignature
	hdrReturnType    = extfunc.HeaderReturnType
	prefixCustom     = extfunc.PrefixCustom
	prefixContext    = extfunc.PrefixContext
	suffixBase64     = extfunc.SuffixBase64
)

// call is what Snowflake's headers say about one request. Only the debug
// line of a new batch reads it, so post parses it only when that line is
// written.
type call struct {
	QueryID string
	BatchID string
	// Function, Signature and ReturnType come from the -base64 twins when
	// present: the plain name's case varies with the route Snowflake took.
	Function   string
	Signature  string
	ReturnType string
	// Custom holds sf-custom-<name> headers (the function's HEADERS
	// clause), Context the sf-context-<name> headers (CONTEXT_HEADERS),
	// keyed by lower-case <name>. Either may hold a shared secret: log them
	// only through logValue.
	Custom  map[string]string
	Context map[string]string
}

// parseCall reads the sf-* headers. It costs a pass over the header map, once
// per batch.
func parseCall(h http.Header) *call {
	c := &call{
		QueryID:    h.Get(hdrQueryID),
		BatchID:    h.Get(hdrBatchID),
		Function:   preferBase64(h, hdrName),
		Signature:  preferBase64(h, hdrSignature),
		ReturnType: preferBase64(h, hdrReturnType),
	}
	for k, v := range h {
		lk := strings.ToLower(k)
		switch {
		case strings.HasPrefix(lk, prefixCustom) && len(lk) > len(prefixCustom):
			if c.Custom == nil {
				c.Custom = map[string]string{}
			}
			c.Custom[lk[len(prefixCustom):]] = v[0]
		case strings.HasPrefix(lk, prefixContext) && len(lk) > len(prefixContext):
			name := lk[len(prefixContext):]
			if strings.HasSuffix(name, suffixBase64) {
				continue // read through its plain twin below
			}
			if c.Context == nil {
				c.Context = map[string]string{}
			}
			c.Context[name] = preferBase64(h, lk)
		}
	}
	return c
}

// preferBase64 returns the decoded <name>-base64 header when it decodes,
// else the plain <name> header.
func preferBase64(h http.Header, name string) string {
	if enc := h.Get(name + suffixBase64); enc != "" {
		if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc)); err == nil {
			return string(dec)
		}
	}
	return h.Get(name)
}

// logValue describes c for a debug line, with the values of secret-looking
// custom and context headers (and the auth header) replaced.
func (c *call) logValue(authHeader string) slog.Value {
	authName := strings.TrimPrefix(strings.ToLower(authHeader), prefixCustom)
	redact := func(m map[string]string) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			if k == authName || looksSecret(k) {
				v = "[redacted]"
			}
			out[k] = v
		}
		return out
	}
	return slog.GroupValue(
		slog.String("function", c.Function),
		slog.String("signature", c.Signature),
		slog.String("return_type", c.ReturnType),
		slog.Any("custom", redact(c.Custom)),
		slog.Any("context", redact(c.Context)),
	)
}

func looksSecret(name string) bool {
	for _, w := range []string{"secret", "token", "password", "passwd", "auth", "key", "credential", "signature"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
