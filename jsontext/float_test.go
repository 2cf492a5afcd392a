package jsontext

import (
	"errors"
	"math"
	"testing"
)

var errNotJSON = errors.New("not a JSON number")

// appendFloatErr is AppendFloat in the shape Compare takes.
func appendFloatErr(f float64) ([]byte, error) {
	b, ok := AppendFloat(nil, f)
	if !ok {
		return nil, errNotJSON
	}
	return b, nil
}

func TestAppendFloat(t *testing.T) {
	tests := []struct {
		f    float64
		want string // "" for a failure
	}{
		{0, "0"}, {math.Copysign(0, -1), "-0"}, {90, "90"}, {-180, "-180"},
		{0.1, "0.1"}, {0.30000000000000004, "0.30000000000000004"}, {-33.832664, "-33.832664"},
		{1e-6, "0.000001"}, {1e-7, "1e-7"},
		{1.5e-10, "1.5e-10"}, {-2e-100, "-2e-100"}, {-5e-324, "-5e-324"},
		{1e20, "100000000000000000000"}, {1e21, "1e+21"}, {-math.MaxFloat64, "-1.7976931348623157e+308"},
		{math.NaN(), ""}, {math.Inf(1), ""}, {math.Inf(-1), ""},
	}
	for _, tt := range tests {
		b, ok := AppendFloat([]byte("p"), tt.f)
		switch {
		case tt.want == "" && (ok || string(b) != "p"):
			t.Errorf("AppendFloat(%v) = %q, %v; want p, false", tt.f, b, ok)
		case tt.want != "" && (!ok || string(b) != "p"+tt.want):
			t.Errorf("AppendFloat(%v) = %q, %v; want p%s, true", tt.f, b, ok, tt.want)
		}
		got, err := appendFloatErr(tt.f)
		if err := Compare(tt.f, true, got, err); err != nil {
			t.Errorf("AppendFloat(%v): %v", tt.f, err)
		}
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, 51.77, 1e-7, 1e21, -5e-324, math.NaN(), math.Inf(-1)} {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		got, err := appendFloatErr(v)
		if err := Compare(v, true, got, err); err != nil {
			t.Fatalf("AppendFloat(%v): %v", v, err)
		}
	})
}
