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
	if m.Rows != cfg.Rows || m.Distinct != wantDistinct || m.Batches != 12 {
		t.Fatalf("rows, distinct, batches: got %d, %d, %d; want %d, %d, 12", m.Rows, m.Distinct, m.Batches, cfg.Rows, wantDistinct)
	}
	cold := checkMixedPass(t, "cold", m.Cold)
	hot := checkMixedPass(t, "hot", m.Hot)
	if cold != int64(cfg.Rows) || hot == 0 || hot%int64(cfg.Rows) != 0 {
		t.Errorf("rows right: got %d cold, %d hot; want %d, a positive multiple of it", cold, hot, cfg.Rows)
	}
	if m.ProviderCalls != m.Distinct {
		t.Errorf("provider calls: got %d; want %d (one per distinct ID)", m.ProviderCalls, m.Distinct)
	}
	if m.ColdRowsPerSecondBound <= 0 {
		t.Errorf("cold bound: got %v; want > 0", m.ColdRowsPerSecondBound)
	}
}

// checkMixedPass checks that each protocol had its share of the batches (12
// batches of 100 taking turns: 3 each per round), every row right, no 429;
// it returns the rows right.
func checkMixedPass(t *testing.T, name string, mp MixedPass) int64 {
	t.Helper()
	if len(mp.Protocols) != len(mixedProtocols) || mp.Seconds <= 0 || mp.RowsPerSec <= 0 {
		t.Fatalf("%s: got %d protocols, %v s, %v rows/s; want %d, > 0, > 0", name, len(mp.Protocols), mp.Seconds, mp.RowsPerSec, len(mixedProtocols))
	}
	var rows int64
	for i, p := range mp.Protocols {
		if p.Name != mixedProtocols[i] || p.Batches == 0 || p.Batches%3 != 0 || p.Rows != int64(p.Batches)*100 || p.Right != p.Rows {
			t.Errorf("%s %s: got name %q, %d batches, %d rows, %d right (%d failed, %d wrong, %d missing: %v); want %q, a multiple of 3, 100 each, all right",
				name, mixedProtocols[i], p.Name, p.Batches, p.Rows, p.Right, p.Failed, p.Wrong, p.Missing, p.Examples, mixedProtocols[i])
		}
		if p.Gateway429s != 0 || p.RowsPerSec <= 0 {
			t.Errorf("%s %s: got %d gateway 429s, %v rows/s; want 0, > 0", name, p.Name, p.Gateway429s, p.RowsPerSec)
		}
		rows += p.Right
	}
	return rows
}

// TestMixedErr: the phase's verdict names each broken invariant.
func TestMixedErr(t *testing.T) {
	good := func() *MixedReport {
		m := &MixedReport{Distinct: 10, ProviderCalls: 10}
		for _, name := range mixedProtocols {
			m.Cold.Protocols = append(m.Cold.Protocols, ProtocolReport{Name: name, Right: 5})
			m.Hot.Protocols = append(m.Hot.Protocols, ProtocolReport{Name: name, Right: 5})
		}
		return m
	}
	tests := []struct {
		name   string
		mutate func(*MixedReport)
		want   string
	}{
		{"all right", func(*MixedReport) {}, ""},
		{"a wrong row", func(m *MixedReport) { m.Cold.Protocols[2].Wrong = 1 }, "mixed cold pass, rest: 1 rows wrong"},
		{"a batch never answered", func(m *MixedReport) { m.Hot.Protocols[3].Missing = 100 }, "mixed hot pass, redshift: 0 rows wrong, 100 never answered"},
		{"a gateway 429", func(m *MixedReport) { m.Hot.Protocols[1].Gateway429s = 2 }, "mixed hot pass, bigquery: 2 gateway 429s"},
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
