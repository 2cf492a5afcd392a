package locapi

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseTemplateRejects(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"no placeholder", "http://h/api/v2/entities/x", "exactly once, found 0"},
		{"two placeholders", "http://h/{id}/{id}", "exactly once, found 2"},
		{"placeholder in query", "http://h/entities?id={id}", "must be in the path"},
		{"placeholder in host", "http://{id}.example/x", "must be in the path"},
		{"placeholder in fragment", "http://h/x#{id}", "must be in the path"},
		{"ftp scheme", "ftp://h/{id}", `scheme must be http or https, got "ftp"`},
		{"no scheme", "h/{id}", "scheme must be http or https"},
		{"no host", "http:///{id}", "no host"},
		{"raw space in path", "http://h/a b/{id}", "path must be percent-encoded"},
		{"bad escape", "http://h/%zz/{id}", "url template"},
		{"reserved word", "http://h/" + sentinel + "/{id}", "reserved word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTemplate(tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseTemplate(%q) error = %v; want one containing %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestTemplateBuildKeepsTheRestVerbatim(t *testing.T) {
	tests := []struct {
		name, tmpl, id, want string
	}{
		{"default shape", "http://h:8080/api/v2/entities/{id}?select=id,label,location", "a/b",
			"http://h:8080/api/v2/entities/a%2Fb?select=id,label,location"},
		{"https with prefix and suffix in segment", "https://h/e/id-{id}.json?x=%2F&y={z}", "?#",
			"https://h/e/id-%3F%23.json?x=%2F&y={z}"},
		{"escaped template path kept", "http://h/a%20b/{id}", "x y", "http://h/a%20b/x%20y"},
		{"placeholder mid path", "http://h/v1/{id}/location", "../x", "http://h/v1/..%2Fx/location"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := parseTemplate(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			u, err := tp.build(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.String(); got != tt.want {
				t.Fatalf("build(%q) = %s; want %s", tt.id, got, tt.want)
			}
		})
	}
}

func TestEscapeSegment(t *testing.T) {
	tests := []struct{ id, want string }{
		{"abc-DEF_1.2~3", "abc-DEF_1.2~3"},
		{"../../admin", "..%2F..%2Fadmin"},
		{"a/b", "a%2Fb"},
		{"x?y=1#z", "x%3Fy%3D1%23z"},
		{"%2F", "%252F"},
		{"a b+c", "a%20b%2Bc"},
		{"Zürich", "Z%C3%BCrich"},
		{"東京", "%E6%9D%B1%E4%BA%AC"},
		{";:@&=$,!'()*[]", "%3B%3A%40%26%3D%24%2C%21%27%28%29%2A%5B%5D"},
		{`\"<>{}|^` + "`", "%5C%22%3C%3E%7B%7D%7C%5E%60"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := escapeSegment(tt.id); got != tt.want {
				t.Fatalf("escapeSegment(%q) = %q; want %q", tt.id, got, tt.want)
			}
		})
	}
}

// FuzzEscapeSegment checks that any ID stays one segment that decodes back
// to itself, and that the built URL carries exactly that segment.
func FuzzEscapeSegment(f *testing.F) {
	for _, s := range []string{"../../admin", "a/b", "x?y=1#z", "%2F", " ", "ü", "\x00", "..", "%", "%%41"} {
		f.Add(s)
	}
	tp, err := parseTemplate("http://h/api/v2/entities/{id}?select=id")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		seg := escapeSegment(id)
		if strings.ContainsAny(seg, "/?#") {
			t.Fatalf("escapeSegment(%q) = %q; contains a delimiter", id, seg)
		}
		back, err := url.PathUnescape(seg)
		if err != nil || back != id {
			t.Fatalf("PathUnescape(%q) = %q, %v; want %q", seg, back, err, id)
		}
		u, err := tp.build(id)
		if err != nil {
			t.Fatalf("build(%q): %v", id, err)
		}
		if got, want := u.RequestURI(), "/api/v2/entities/"+seg+"?select=id"; got != want {
			t.Fatalf("RequestURI = %q; want %q", got, want)
		}
	})
}
