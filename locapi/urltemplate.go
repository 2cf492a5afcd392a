package locapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// placeholder is what Config.URL must contain, once, in its path.
const placeholder = "{id}"

// sentinel stands in for the placeholder while the template is parsed: it
// uses unreserved characters only, so url.Parse keeps it verbatim.
const sentinel = "SNOWGATEIDx7q3k9"

// urlTemplate builds request URLs by splicing an escaped ID between the
// template's text before and after {id}; nothing else of the template is
// touched (the query, e.g. ?select=id,label,location, goes out as written).
type urlTemplate struct {
	prefix, suffix string // raw template text around {id}
	// pathPrefix and pathSuffix are the escaped path around the ID, as the
	// request must put them on the wire; buildURL checks against them.
	pathPrefix, pathSuffix string
}

func parseTemplate(raw string) (urlTemplate, error) {
	if n := strings.Count(raw, placeholder); n != 1 {
		return urlTemplate{}, fmt.Errorf("url template must contain %s exactly once, found %d", placeholder, n)
	}
	if strings.Contains(raw, sentinel) {
		return urlTemplate{}, errors.New("url template contains a reserved word")
	}
	u, err := url.Parse(strings.Replace(raw, placeholder, sentinel, 1))
	if err != nil {
		// url.Error quotes the whole URL; the cause alone is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return urlTemplate{}, fmt.Errorf("url template: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return urlTemplate{}, fmt.Errorf("url template: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Host == "" {
		return urlTemplate{}, errors.New("url template: no host")
	}
	p := u.EscapedPath()
	i := strings.Index(p, sentinel)
	if i < 0 {
		return urlTemplate{}, fmt.Errorf("url template: %s must be in the path", placeholder)
	}
	before, after, _ := strings.Cut(raw, placeholder)
	t := urlTemplate{
		prefix: before, suffix: after,
		pathPrefix: p[:i], pathSuffix: p[i+len(sentinel):],
	}
	// A path Go would re-escape (a raw space, non-ASCII text) would make
	// buildURL's check fail for every ID: refuse it now, not per request.
	if _, err := t.build("probe/?#% .."); err != nil {
		return urlTemplate{}, fmt.Errorf("url template: path must be percent-encoded: %w", err)
	}
	return t, nil
}

// build returns the request URL for id, and checks that the parsed URL puts
// exactly prefix + escaped id + suffix on the wire.
func (t urlTemplate) build(id string) (*url.URL, error) {
	seg := escapeSegment(id)
	u, err := url.Parse(t.prefix + seg + t.suffix)
	if err != nil {
		return nil, errors.New("escaped id does not form a valid url")
	}
	if u.EscapedPath() != t.pathPrefix+seg+t.pathSuffix {
		return nil, errors.New("escaped id would not stay one path segment")
	}
	return u, nil
}

// escapeSegment percent-encodes every byte of id except RFC 3986 unreserved
// characters. url.PathEscape leaves sub-delimiters such as ';', '=' and ':'
// alone, which some servers and proxies treat specially; encoding all of them
// keeps '/', '?', '#', '%', spaces and multi-byte text inside one opaque
// segment. Dot segments are rejected by ValidateID, not escaped: servers may
// decode %2E and then resolve the segment.
func escapeSegment(id string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(id); i++ {
		if !unreserved(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	b := make([]byte, 0, len(id)+2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&0x0f])
	}
	return string(b)
}

func unreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~'
}
