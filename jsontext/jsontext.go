// Package jsontext holds the pieces of JSON text snowgate writes and checks
// by hand on its hot and cold paths, once: the string escaper of
// encoding/json, the rule for an unpaired UTF-16 surrogate escape, and the
// comparison with encoding/json that the fuzz targets of hand-written
// encoders call. It imports no snowgate package.
package jsontext

import (
	"unicode/utf8"
)

// AppendString appends s quoted exactly as encoding/json quotes a string:
// json.Marshal's bytes when html is true (<, > and & escaped as well),
// those of a json.Encoder with SetEscapeHTML(false) when it is false. Both
// escape U+2028 and U+2029 (for JavaScript) and turn each byte of invalid
// UTF-8 into U+FFFD, so the output is always valid JSON.
func AppendString(b []byte, s string, html bool) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !plain[c] && (html || !htmlOnly(c)) {
				b = append(b, s[done:i]...)
				b = appendEscape(b, c)
				done = i + 1
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
			done = i + n
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, `\u202`...)
			b = append(b, "0123456789abcdef"[r&0xf])
			done = i + n
		}
		i += n
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}

// htmlOnly reports whether c is escaped only for HTML safety.
func htmlOnly(c byte) bool { return c == '<' || c == '>' || c == '&' }

// plain marks the ASCII bytes copied as they are in HTML-safe mode: every
// printable byte but ", \, <, > and &, and DEL, which JSON allows.
var plain = func() (p [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		p[c] = c != '"' && c != '\\' && !htmlOnly(c)
	}
	return p
}()

// appendEscape appends the escape of an ASCII byte that is not plain, in
// encoding/json's spelling: the short forms where JSON has one, else \u00XX.
func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, `\b`...)
	case '\f':
		return append(b, `\f`...)
	case '\n':
		return append(b, `\n`...)
	case '\r':
		return append(b, `\r`...)
	case '\t':
		return append(b, `\t`...)
	}
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}
