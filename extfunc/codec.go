package extfunc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Snowflake's own messages for an answer that breaks the contract
// ([external-functions-data-format]). The decoder's errors wrap them, so a
// client reports what Snowflake would have told the SQL user. They are
// capitalised as Snowflake writes them.
var (
	ErrInvalidJSON = errors.New("Error parsing JSON: Invalid response")
	ErrNoData      = errors.New(`top-level JSON object must contain "data" JSON array element`)
	ErrRowCount    = errors.New("Function received the wrong number of rows")
	ErrRowOrder    = errors.New("Row numbers out of order") //nolint:staticcheck // ST1005: Snowflake's own message, word for word
)

// EncodeRequest returns the body of a batch, {"data": [[0, args...], [1,
// args...], ...]}: rows[i] holds the arguments of row i, in declaration
// order, and the row is numbered i. Arguments are encoded by encoding/json:
// nil is SQL NULL, a json.Number the number it holds, a string a string
// (invalid UTF-8 becoming U+FFFD).
func EncodeRequest(rows [][]any) ([]byte, error) {
	return encode(len(rows), func(dst []byte, i int) ([]byte, error) {
		for _, arg := range rows[i] {
			var err error
			if dst, err = appendArg(dst, arg); err != nil {
				return nil, err
			}
		}
		return dst, nil
	})
}

// EncodeColumn is EncodeRequest for a function of one argument: row i is
// [i, args[i]].
func EncodeColumn[T any](args []T) ([]byte, error) {
	return encode(len(args), func(dst []byte, i int) ([]byte, error) {
		return appendArg(dst, args[i])
	})
}

// encode writes the envelope around n rows; appendArgs appends row i's
// arguments, each preceded by a comma.
func encode(n int, appendArgs func(dst []byte, i int) ([]byte, error)) ([]byte, error) {
	dst := make([]byte, 0, 16+n*24)
	dst = append(dst, `{"data":[`...)
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		dst = strconv.AppendInt(dst, int64(i), 10)
		var err error
		if dst, err = appendArgs(dst, i); err != nil {
			return nil, fmt.Errorf("encode row %d: %w", i, err)
		}
		dst = append(dst, ']')
	}
	return append(dst, "]}"...), nil
}

func appendArg(dst []byte, arg any) ([]byte, error) {
	b, err := json.Marshal(arg)
	if err != nil {
		return nil, err
	}
	dst = append(dst, ',')
	return append(dst, b...), nil
}

// DecodeRows reads the envelope of an answer and returns its rows as sent,
// unchecked: for a caller that judges each row itself. Most callers want
// DecodeResponse.
func DecodeRows(body []byte) ([][]json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("response: %w: %w", ErrInvalidJSON, err)
		}
		return nil, fmt.Errorf("response: %w: the answer is not a JSON object", ErrNoData)
	}
	data := bytes.TrimLeft(top["data"], " \t\r\n")
	if len(data) == 0 || data[0] != '[' {
		return nil, fmt.Errorf("response: %w", ErrNoData)
	}
	var rows [][]json.RawMessage
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("response: %w: a row is not an array", ErrInvalidJSON)
	}
	return rows, nil
}

// DecodeResponse checks an answer to a batch of n rows numbered 0..n-1 (as
// EncodeRequest numbers them) the way Snowflake does, and returns the n
// values in row order. The answer must hold exactly n rows, row i numbered
// i, each [rowNumber, value]; a value is any JSON, null included.
func DecodeResponse(body []byte, n int) ([]json.RawMessage, error) {
	rows, err := DecodeRows(body)
	if err != nil {
		return nil, err
	}
	if len(rows) != n {
		return nil, fmt.Errorf("response: %w: %d rows answered for %d sent", ErrRowCount, len(rows), n)
	}
	values := make([]json.RawMessage, n)
	for i, row := range rows {
		if len(row) != 2 {
			return nil, fmt.Errorf("response: %w: row %d has %d elements; want [rowNumber, value]", ErrInvalidJSON, i, len(row))
		}
		if num, err := strconv.Atoi(string(row[0])); err != nil || num != i {
			return nil, fmt.Errorf("response: %w: row %d is numbered %.24s", ErrRowOrder, i, row[0])
		}
		values[i] = row[1]
	}
	return values, nil
}
