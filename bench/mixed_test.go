package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestMixedPhase runs the mixed-protocol phase on tinyConfig's rows (whose
// provider has faults, which the phase switches off) and holds it to its
// invariants: every row of every protocol answered and right, no gateway
// 429, one provider call per distinct ID.
func TestMixedPhase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard: seconds when idle
	defer cancel()
	cfg, err := tinyConfig().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: cfg, log: cfg.Logger}
	m, err := r.mixedPhase(ctx)
	if err != nil {
		t.Fatalf("mixedPhase: %v", err)
	}
	if err := m.err(); err != nil {
		t.Fatalf("err: got %v; want nil", err)
	}
	checkMixedReport(t, m, cfg)
}

func checkMixedReport(t *testing.T, m *MixedReport, cfg Config) {
	t.Helper()
	wantDistinct := cfg.Rows - int(float64(cfg.Rows)*cfg.RepeatRatio)
	if m.Rows != cfg.Rows || m.Distinct != wantDistinct || m.Batches != 12 || len(m.Protocols) != 4 {
		t.Fatalf("rows, distinct, batches, protocols: got %d, %d, %d, %d; want %d, %d, 12, 4",
			m.Rows, m.Distinct, m.Batches, len(m.Protocols), cfg.Rows, wantDistinct)
	}
	var rows int64
	for i, p := range m.Protocols {
		// 12 batches of 100 taking turns: 3 each.
		if p.Name != mixedProtocols[i] || p.Batches != 3 || p.Rows != 300 || p.Right != 300 {
			t.Errorf("%s: got name %q, %d batches, %d rows, %d right (%d failed, %d wrong, %d missing: %v); want %q, 3, 300, 300",
				mixedProtocols[i], p.Name, p.Batches, p.Rows, p.Right, p.Failed, p.Wrong, p.Missing, p.Examples, mixedProtocols[i])
		}
		if p.Gateway429s != 0 || p.RowsPerSec <= 0 {
			t.Errorf("%s: got %d gateway 429s, %v rows/s; want 0, > 0", p.Name, p.Gateway429s, p.RowsPerSec)
		}
		rows += p.Right
	}
	if rows != int64(cfg.Rows) || m.RowsPerSec <= 0 || m.Seconds <= 0 {
		t.Errorf("overall: got %d rows, %v rows/s in %v s; want %d, > 0", rows, m.RowsPerSec, m.Seconds, cfg.Rows)
	}
	if m.ProviderCalls != m.Distinct {
		t.Errorf("provider calls: got %d; want %d (one per distinct ID)", m.ProviderCalls, m.Distinct)
	}
}

// TestMixedErr: the phase's verdict names each broken invariant.
func TestMixedErr(t *testing.T) {
	good := func() *MixedReport {
		m := &MixedReport{Distinct: 10, ProviderCalls: 10}
		for _, name := range mixedProtocols {
			m.Protocols = append(m.Protocols, ProtocolReport{Name: name, Right: 5})
		}
		return m
	}
	tests := []struct {
		name   string
		mutate func(*MixedReport)
		want   string
	}{
		{"all right", func(*MixedReport) {}, ""},
		{"a wrong row", func(m *MixedReport) { m.Protocols[2].Wrong = 1 }, "mixed rest: 1 rows wrong"},
		{"a batch never answered", func(m *MixedReport) { m.Protocols[3].Missing = 100 }, "mixed redshift: 0 rows wrong, 100 never answered"},
		{"a gateway 429", func(m *MixedReport) { m.Protocols[1].Gateway429s = 2 }, "mixed bigquery: 2 gateway 429s"},
		{"a second provider call", func(m *MixedReport) { m.ProviderCalls = 11 }, "11 provider calls for 10 distinct IDs"},
		{"an ID never asked", func(m *MixedReport) { m.ProviderCalls = 9 }, "9 provider calls for 10 distinct IDs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.mutate(m)
			err := (&Report{Mixed: m}).Err()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestMixedJudge: an answer with a wrong value, or too few values, is
// counted wrong; right values are right.
func TestMixedJudge(t *testing.T) {
	o, ids := testOracle(t, 20)
	m := &mixedClient{sf: &sfClient{oracle: o}}
	right := make([]json.RawMessage, 0, len(ids))
	var usable []string
	for _, id := range ids {
		kind, rec, err := o.truth(id)
		if v := gatewayValue(id, kind, rec); err == nil && v != nil {
			right, usable = append(right, v), append(usable, id)
		}
	}
	p := newPass("judge")
	m.judge(p, "b1", usable, right)
	if p.right.Load() != int64(len(usable)) || p.wrong.Load() != 0 {
		t.Errorf("right answers: got %d right, %d wrong; want %d, 0", p.right.Load(), p.wrong.Load(), len(usable))
	}
	swapped := append([]json.RawMessage{right[1], right[0]}, right[2:]...)
	p = newPass("judge")
	m.judge(p, "b2", usable, swapped)
	if p.wrong.Load() != 2 {
		t.Errorf("two values swapped: got %d wrong; want 2", p.wrong.Load())
	}
	p = newPass("judge")
	m.judge(p, "b3", usable, right[1:])
	if p.wrong.Load() != int64(len(usable)) {
		t.Errorf("one value short: got %d wrong; want %d (the whole batch)", p.wrong.Load(), len(usable))
	}
}
