package jsontext

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	every := make([]byte, 128)
	for i := range every {
		every[i] = byte(i)
	}
	tests := []struct {
		name      string
		s         string
		html, raw string // the expected quoted forms, html-safe and not
	}{
		{"empty", "", `""`, `""`},
		{"plain", "w1 Depot", `"w1 Depot"`, `"w1 Depot"`},
		{"quotes and backslashes", `a"b\c/d`, `"a\"b\\c/d"`, `"a\"b\\c/d"`},
		{"html", "<a>&", `"\u003ca\u003e\u0026"`, `"<a>&"`},
		{"short escapes", "\b\f\n\r\t", `"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
		{"other controls and DEL", "\x00\x1f\x7f", `"\u0000\u001f` + "\x7f\"", `"\u0000\u001f` + "\x7f\""},
		{"line separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`, `"a\u2028b\u2029c"`},
		{"invalid UTF-8", "a\xffb\xed\xa0\x80", `"a\ufffdb\ufffd\ufffd\ufffd"`, `"a\ufffdb\ufffd\ufffd\ufffd"`},
		{"unicode", "Łódź 東京 😀", `"Łódź 東京 😀"`, `"Łódź 東京 😀"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendString([]byte("p"), tt.s, true)); got != "p"+tt.html {
				t.Errorf("AppendString(%q, html) = %s; want p%s", tt.s, got, tt.html)
			}
			if got := string(AppendString(nil, tt.s, false)); got != tt.raw {
				t.Errorf("AppendString(%q, not html) = %s; want %s", tt.s, got, tt.raw)
			}
			for _, html := range []bool{true, false} {
				if err := Compare(tt.s, html, AppendString(nil, tt.s, html), nil); err != nil {
					t.Errorf("html=%v: %v", html, err)
				}
			}
		})
	}
	for _, html := range []bool{true, false} {
		if err := Compare(string(every), html, AppendString(nil, string(every), html), nil); err != nil {
			t.Errorf("every ASCII byte, html=%v: %v", html, err)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "w1", "<&>", "\u2028\x00\x7f", "\xff\xed\xa0\x80", `"\`, "😀\b\f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			if err := Compare(s, html, AppendString(nil, s, html), nil); err != nil {
				t.Fatalf("AppendString(%q, %v): %v", s, html, err)
			}
		}
	})
}

func TestCompare(t *testing.T) {
	fail := errors.New("cannot encode")
	tests := []struct {
		name   string
		v      any
		html   bool
		got    []byte
		gotErr error
		ok     bool
	}{
		{"same", "<a>", true, []byte(`"\u003ca\u003e"`), nil, true},
		{"same without html escapes", "<a>", false, []byte(`"<a>"`), nil, true},
		{"html escapes missing", "<a>", true, []byte(`"<a>"`), nil, false},
		{"html escapes not wanted", "<a>", false, []byte(`"\u003ca\u003e"`), nil, false},
		{"both fail", math.NaN(), true, nil, fail, true},
		{"only encoding/json fails", math.Inf(1), true, []byte("1e999"), nil, false},
		{"only the encoder fails", "a", true, nil, fail, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Compare(tt.v, tt.html, tt.got, tt.gotErr)
			if (err == nil) != tt.ok {
				t.Errorf("Compare(%v, %v, %q, %v) = %v; want ok %v", tt.v, tt.html, tt.got, tt.gotErr, err, tt.ok)
			}
		})
	}
}

func TestLoneSurrogate(t *testing.T) {
	tests := []struct {
		raw  string
		want bool
	}{
		{`""`, false},
		{`"abc"`, false},
		{`"\ud83d\ude00"`, false},      // a pair: 😀
		{`"\uD83D\uDE00x"`, false},     // upper-case hex
		{`"\u00e9\n\\u0041"`, false},   // no surrogate; \\u is not an escape
		{`"\ud800"`, true},             // high at the end
		{`"\udc00"`, true},             // low alone
		{`"\ud800x"`, true},            // high, then a character
		{`"\ud800\n"`, true},           // high, then a one-letter escape
		{`"\ud800\u0041"`, true},       // high, then a non-surrogate escape
		{`"\ud800\ud800\udc00"`, true}, // high, then a pair
		{`"\ude00\ud83d"`, true},       // the halves in the wrong order
		{`"\\ud800"`, false},           // an escaped backslash, then text
	}
	for _, tt := range tests {
		if got := LoneSurrogate([]byte(tt.raw)); got != tt.want {
			t.Errorf("LoneSurrogate(%s) = %v; want %v", tt.raw, got, tt.want)
		}
		if ref, ok := loneByDecoding([]byte(tt.raw)); !ok || ref != tt.want {
			t.Errorf("encoding/json on %s: lone %v (valid %v); the table says %v", tt.raw, ref, ok, tt.want)
		}
	}
	for _, bad := range []string{``, `"\`, `"\u`, `"\ud8`, `"\ud800\u12`, `\`} {
		LoneSurrogate([]byte(bad)) // must not panic on text that is not a JSON string
	}
}

// loneByDecoding is the reference for LoneSurrogate: encoding/json writes
// U+FFFD for each lone surrogate escape, so raw has one exactly when the
// decoded string has more U+FFFD than raw spells out itself. ok is false
// when raw is not a valid JSON string in valid UTF-8.
func loneByDecoding(raw []byte) (lone, ok bool) {
	var s string
	if !utf8.Valid(raw) || json.Unmarshal(raw, &s) != nil {
		return false, false
	}
	spelt := 0
	for i := 0; i < len(raw); {
		switch {
		case raw[i] == '\\' && raw[i+1] == 'u':
			if v, _ := hex4(raw[i+2:]); v == utf8.RuneError {
				spelt++
			}
			i += 6
		case raw[i] == '\\':
			i += 2
		default:
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError {
				spelt++
			}
			i += n
		}
	}
	return strings.Count(s, "\ufffd") > spelt, true
}

func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{`"\ud83d\ude00"`, `"\ud800x"`, `"\udc00"`, `"\ufffd\ud800"`, `"\\ud800"`, "\"\ufffd\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := LoneSurrogate([]byte(raw))
		if want, ok := loneByDecoding([]byte(raw)); ok && got != want {
			t.Fatalf("LoneSurrogate(%s) = %v; encoding/json says %v", raw, got, want)
		}
	})
}
