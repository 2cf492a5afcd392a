package loader

import (
	"fmt"
	"strings"
)

// Ident is a validated table or column name, possibly qualified
// (DB.SCHEMA.TABLE). Only plain identifiers are accepted: a letter or
// underscore, then letters, digits, underscores or dollar signs, at most 255
// bytes a part. They are upper-cased, as Snowflake resolves unquoted names,
// and always quoted when written into SQL, so a name can never change a
// statement's meaning.
type Ident struct {
	parts []string
}

// ParseIdent validates s (e.g. "MASTER_TABLE" or "analytics.public.master").
func ParseIdent(s string) (Ident, error) {
	if s == "" {
		return Ident{}, fmt.Errorf("identifier is empty")
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return Ident{}, fmt.Errorf("identifier %q has more than three parts", s)
	}
	for i, p := range parts {
		if !validPart(p) {
			return Ident{}, fmt.Errorf("identifier %q is not a plain name (letters, digits, _ and $; starting with a letter or _)", s)
		}
		parts[i] = strings.ToUpper(p)
	}
	return Ident{parts: parts}, nil
}

func validPart(p string) bool {
	if p == "" || len(p) > 255 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return true
}

// Name is the last part, unquoted: the table or column name itself.
func (id Ident) Name() string { return id.parts[len(id.parts)-1] }

// Parts are the name's parts, upper case and unquoted, for looking the
// object up in a catalog: [DB, [SCHEMA,]] TABLE.
func (id Ident) Parts() []string { return append([]string(nil), id.parts...) }

// WithSuffix returns the identifier with suffix appended to its last part,
// for tables derived from another (STANDARDIZED_LOCATIONS_FAILURES).
func (id Ident) WithSuffix(suffix string) Ident {
	parts := append([]string(nil), id.parts...)
	parts[len(parts)-1] += strings.ToUpper(suffix)
	return Ident{parts: parts}
}

// String is the quoted form to write into SQL: "DB"."SCHEMA"."TABLE".
func (id Ident) String() string {
	var b strings.Builder
	for i, p := range id.parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteByte('"')
		b.WriteString(p)
		b.WriteByte('"')
	}
	return b.String()
}
