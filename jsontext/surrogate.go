package jsontext

// LoneSurrogate reports whether raw, a JSON string literal quotes included,
// has a \u escape of a UTF-16 surrogate (U+D800 to U+DFFF) that is not half
// of a pair: a high one (D800-DBFF) not followed at once by an escaped low
// one (DC00-DFFF), or a low one not just after a high one. encoding/json
// decodes each such escape as U+FFFD, a character the sender never wrote,
// since a lone surrogate has no UTF-8 form. Literal bytes are not looked
// at: a surrogate written in UTF-8 is invalid UTF-8, which the caller checks
// with utf8.Valid. Input that is not a JSON string gives no useful answer,
// but never a panic.
func LoneSurrogate(raw []byte) bool {
	high := false // the last escape was a high surrogate awaiting its pair
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			if high {
				return true
			}
			continue
		}
		if i+1 >= len(raw) || raw[i+1] != 'u' {
			if high {
				return true
			}
			i++ // a one-letter escape, \\ included
			continue
		}
		v, ok := hex4(raw[i+2:])
		if !ok {
			return high
		}
		i += 5
		switch {
		case v >= 0xd800 && v < 0xdc00:
			if high {
				return true
			}
			high = true
		case v >= 0xdc00 && v < 0xe000:
			if !high {
				return true
			}
			high = false
		default:
			if high {
				return true
			}
		}
	}
	return high
}

// hex4 reads the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
