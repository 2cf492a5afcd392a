package gateway

// scanFast decodes the body Snowflake sends for a one-argument function,
// {"data":[[0,"id"],[1,null],...]} with any JSON whitespace, without
// reflection and with one allocation per ID. It returns false as soon as the
// input leaves that shape (escapes, non-ASCII, number IDs, other keys,
// errors of any kind), leaving parseSlow to decide; so it never needs to be
// right about anything it does not accept.
func scanFast(body []byte, arity int) (*batch, bool) {
	if arity != 1 {
		return nil, false
	}
	s := scanner{buf: body, str: string(body)}
	if !s.lit('{') || !s.lit('"') || !s.word("data\"") || !s.lit(':') || !s.lit('[') {
		return nil, false
	}
	// A row of a short ID takes about 16 bytes: size the slices once for
	// that without overshooting much.
	b := newBatch(len(body)/16 + 1)
	if s.peek() == ']' {
		s.pos++
	} else {
		for {
			if !s.row(b) {
				return nil, false
			}
			c := s.next()
			if c == ']' {
				break
			}
			if c != ',' {
				return nil, false
			}
		}
	}
	if !s.lit('}') {
		return nil, false
	}
	s.skipSpace()
	return b, s.pos == len(s.buf)
}

// scanner walks a byte slice; every method skips leading JSON whitespace.
type scanner struct {
	buf []byte
	pos int
	// str is buf as a string, made once: the IDs are cut from it, one
	// allocation a batch instead of one an ID. An ID kept keeps the whole
	// body alive, so nothing keeps one past its lookup: the cache stores a
	// copy (cache.idKey), a record its answer's own ID, and a lookup in
	// flight its key only until the fetch ends.
	str string
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos == len(s.buf) {
		return 0
	}
	return s.buf[s.pos]
}

func (s *scanner) next() byte {
	c := s.peek()
	if c != 0 {
		s.pos++
	}
	return c
}

func (s *scanner) lit(c byte) bool { return s.next() == c }

// word consumes w exactly, with no whitespace inside.
func (s *scanner) word(w string) bool {
	if len(s.buf)-s.pos < len(w) || string(s.buf[s.pos:s.pos+len(w)]) != w {
		return false
	}
	s.pos += len(w)
	return true
}

// row scans [n,"id"] or [n,null] into b.
func (s *scanner) row(b *batch) bool {
	if !s.lit('[') {
		return false
	}
	n, ok := s.rowNumber()
	if !ok || !s.lit(',') {
		return false
	}
	var id string
	kind := idText
	switch s.peek() {
	case '"':
		s.pos++
		start := s.pos
		for s.pos < len(s.buf) {
			c := s.buf[s.pos]
			if c == '"' {
				break
			}
			// Escapes, control characters and non-ASCII need the full
			// decoder's rules; leave them to it.
			if c == '\\' || c < 0x20 || c >= 0x7f {
				return false
			}
			s.pos++
		}
		if s.pos == len(s.buf) {
			return false
		}
		id = s.str[start:s.pos]
		s.pos++
	case 'n':
		if !s.word("null") {
			return false
		}
		kind = idNull
	default:
		return false
	}
	if !s.lit(']') {
		return false
	}
	b.add(n, id, kind, nil)
	return true
}

// rowNumber scans a JSON integer without sign, fraction or exponent and at
// most 18 digits, so it cannot overflow int64.
func (s *scanner) rowNumber() (int64, bool) {
	s.skipSpace()
	start := s.pos
	var n int64
	for s.pos < len(s.buf) && s.buf[s.pos] >= '0' && s.buf[s.pos] <= '9' {
		n = n*10 + int64(s.buf[s.pos]-'0')
		s.pos++
	}
	digits := s.pos - start
	if digits == 0 || digits > 18 || (digits > 1 && s.buf[start] == '0') {
		return 0, false
	}
	return n, true
}
