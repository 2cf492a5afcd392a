package jsontext

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Marshal is encoding/json's encoding of v, the reference the hand-written
// encoders are held to: json.Marshal when html is true, else a json.Encoder
// with SetEscapeHTML(false), without the newline it adds.
func Marshal(v any, html bool) ([]byte, error) {
	if html {
		return json.Marshal(v)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Compare checks a hand-written encoding of v against Marshal(v, html): it
// returns nil when got is the same bytes, or when both failed, and else an
// error saying how they differ. Fuzz targets call it so that every encoder
// is compared the same way.
func Compare(v any, html bool, got []byte, gotErr error) error {
	want, wantErr := Marshal(v, html)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		return fmt.Errorf("error %s; encoding/json's error %s", errText(gotErr), errText(wantErr))
	case gotErr != nil:
		return nil
	case !bytes.Equal(got, want):
		return fmt.Errorf("got %q; encoding/json gives %q", got, want)
	}
	return nil
}

// errText names err for Compare's message, where one of two errors is nil.
func errText(err error) string {
	if err == nil {
		return "none"
	}
	return strconv.Quote(err.Error())
}
