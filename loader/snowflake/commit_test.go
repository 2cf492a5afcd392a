package snowflake

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/loader"
)

func TestCommitRejectsBadRows(t *testing.T) {
	s := newStandin(t, inlineThreshold)
	w := openStandin(t, s, Config{})
	ctx := testCtx(t)
	good := loader.Row{ID: "ok", Outcome: loader.OutcomeNotFound, ResolvedAt: resolvedBase}
	tests := []struct {
		name string
		bad  loader.Row
		want string
	}{
		{"found without record", loader.Row{ID: "a", Outcome: loader.OutcomeFound, ResolvedAt: resolvedBase}, "without a record"},
		{"unknown outcome", loader.Row{ID: "a", Outcome: "maybe", ResolvedAt: resolvedBase}, `unknown outcome "maybe"`},
		{"empty outcome", loader.Row{ID: "a", ResolvedAt: resolvedBase}, `unknown outcome ""`},
		{"failed without reason", loader.Row{ID: "a", Outcome: loader.OutcomeFailed, ResolvedAt: resolvedBase}, "without a reason"},
		{"no resolved-at time", loader.Row{ID: "a", Outcome: loader.OutcomeNotFound}, "no resolved-at time"},
		{"invalid UTF-8 id", loader.Row{ID: "a\xff", Outcome: loader.OutcomeNotFound, ResolvedAt: resolvedBase}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(s.statements())
			err := w.Commit(ctx, []loader.Row{good, tt.bad})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "row 1") {
				t.Fatalf("Commit = %v; want an error naming row 1 and containing %q", err, tt.want)
			}
			if got := since(s, n); len(got) != 0 {
				t.Errorf("got %d statements sent for a rejected batch (first %q); want none", len(got), got[0].SQL)
			}
		})
	}
	t.Run("empty batch sends nothing", func(t *testing.T) {
		n := len(s.statements())
		if err := w.Commit(ctx, nil); err != nil {
			t.Fatalf("Commit(nil) = %v; want nil", err)
		}
		if got := since(s, n); len(got) != 0 {
			t.Errorf("got %d statements; want none", len(got))
		}
	})
}

func TestCommitFailureRollsBack(t *testing.T) {
	s := newStandin(t, inlineThreshold)
	w := openStandin(t, s, Config{})
	ctx := testCtx(t)
	rows := testRows(40)

	s.mu.Lock()
	s.failPrefix = `MERGE INTO "STANDARDIZED_LOCATIONS_FAILURES"`
	s.mu.Unlock()
	err := w.Commit(ctx, rows)
	if err == nil || !strings.Contains(err.Error(), "injected by the stand-in") {
		t.Fatalf("Commit = %v; want the injected SQL error", err)
	}
	var sent []string
	for _, st := range s.statements() {
		sent = append(sent, strings.SplitN(st.SQL, " ", 2)[0])
	}
	if got := strings.Join(sent, " "); !strings.HasSuffix(got, "BEGIN MERGE MERGE MERGE ROLLBACK") {
		t.Errorf("got statements %s; want the transaction rolled back after the failed MERGE", got)
	}

	s.mu.Lock()
	s.failPrefix = ""
	s.mu.Unlock()
	n := len(s.statements())
	if err := w.Commit(ctx, rows); err != nil {
		t.Fatalf("retried Commit: %v", err)
	}
	got := since(s, n)
	if !strings.HasPrefix(got[0].SQL, "CREATE TEMPORARY TABLE IF NOT EXISTS ") || got[len(got)-1].SQL != "COMMIT" {
		t.Errorf("retry sent %q ... %q; want CREATE TEMPORARY TABLE IF NOT EXISTS (re-checked after a failure) ... COMMIT",
			got[0].SQL, got[len(got)-1].SQL)
	}
}

func TestCommitWaitsForSessionWithinCtx(t *testing.T) {
	s := newStandin(t, inlineThreshold)
	w := openStandin(t, s, Config{})
	w.session <- struct{}{} // a commit in progress holds the session
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Commit(ctx, testRows(1))
	<-w.session
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Commit = %v; want context.DeadlineExceeded while the session is busy", err)
	}
}

func TestPendingBindsThroughDriver(t *testing.T) {
	s := newStandin(t, inlineThreshold)
	tables, err := loader.NewTables("raw.master", "entity_id", "")
	if err != nil {
		t.Fatal(err)
	}
	w := openStandin(t, s, Config{Tables: tables})
	ctx := testCtx(t)
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	s.setSource([]string{"1", "10", "2"}, 3)
	tests := []struct {
		name      string
		sel       loader.Selection
		wantTypes []string
		wantFrom  string
	}{
		{"incremental", loader.Selection{}, []string{"TEXT"}, `FROM "RAW"."MASTER" s`},
		{"refresh", loader.Selection{RefreshOlderThan: time.Hour, Now: now}, []string{"TEXT", "TIMESTAMP_NTZ", "TIMESTAMP_NTZ"}, `FROM "RAW"."MASTER" s`},
		{"retry failed", loader.Selection{RetryFailed: true}, []string{"TEXT"}, `FROM "STANDARDIZED_LOCATIONS_FAILURES"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(s.statements())
			ids, err := w.Pending(ctx, "1", 2, tt.sel)
			if err != nil {
				t.Fatalf("Pending: %v", err)
			}
			if strings.Join(ids, ",") != "10,2" {
				t.Errorf("got %v; want [10 2] (VARCHAR order after the cursor)", ids)
			}
			st := since(s, n)[0]
			if !strings.Contains(st.SQL, tt.wantFrom) {
				t.Errorf("got %s; want %s", st.SQL, tt.wantFrom)
			}
			if len(st.Bindings) != len(tt.wantTypes) {
				t.Fatalf("got %d binds; want %d", len(st.Bindings), len(tt.wantTypes))
			}
			for i, typ := range tt.wantTypes {
				if b := st.Bindings[string(rune('1'+i))]; b.Type != typ {
					t.Errorf("bind %d: got type %s; want %s", i+1, b.Type, typ)
				}
			}
			if len(tt.wantTypes) == 3 {
				want := now.Add(-time.Hour).UnixNano()
				if got := st.Bindings["2"].scalar(t); got != strconv.FormatInt(want, 10) {
					t.Errorf("cutoff bind: got %s; want %d (epoch ns, UTC)", got, want)
				}
			}
		})
	}
	if _, err := w.Pending(ctx, "", 0, loader.Selection{}); err == nil {
		t.Error("Pending with limit 0 succeeded; want an error")
	}
}

func TestOpenErrorsHideSecrets(t *testing.T) {
	ctx := testCtx(t)
	for _, dsn := range []string{
		"tester:hunter2@/db/schema",                      // no account
		"tester:hunter2@127.0.0.1:notaport/db?account=a", // bad port
	} {
		w, err := Open(ctx, dsn, Config{})
		if err == nil {
			_ = w.Close()
			t.Fatalf("Open(%q) succeeded; want an error", dsn)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open error %q reveals the password", err)
		}
	}
}
