// Package duckfn puts snowgate's resolver inside DuckDB: it registers
// resolve_location(id) as a scalar SQL function, so
//
//	SELECT id, resolve_location(id) FROM 'ids.parquet'
//
// enriches rows in a DuckDB file, a Parquet or CSV file, or anything DuckDB
// reads, through the same cache, coalescing, limiter and retries as the
// gateway. Each chunk DuckDB hands the function (up to 2,048 rows) becomes
// one ResolveMany call: its distinct IDs are fetched once and concurrently.
//
// It sits beside gateway/ and loader/: it imports cache/ and the DuckDB
// driver, and nothing below it imports it.
package duckfn

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

// Resolver answers a batch of IDs; *cache.Resolver is one.
type Resolver interface {
	ResolveMany(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats)
}

// Row-error choices for Options.OnRowError, the values of the gateway's
// --on-row-error flag.
const (
	RowErrorNull   = "null"  // the row's value is NULL
	RowErrorObject = "error" // the row's value is {"error": reason}
	RowErrorFail   = "fail"  // the statement fails, naming the ID
)

// Options configure the function. Zero values are the defaults.
type Options struct {
	// Name is the SQL function's name. Default "resolve_location".
	Name string
	// NotFoundObject answers a not-found or no-location ID with
	// {"found": false, "id": ..., "status": ...} instead of NULL, like the
	// gateway's --not-found object.
	NotFoundObject bool
	// OnRowError is what a row gets when its ID is invalid or the provider
	// failed it after its retries: RowErrorNull (the default),
	// RowErrorObject or RowErrorFail.
	OnRowError string
	// Observe, when set, is called after every chunk with the number of
	// rows it answered and the resolver's figures for it; chunks may run
	// on several DuckDB threads at once.
	Observe func(rows int, st cache.Stats)
}

// Register adds the function to the database conn belongs to, with one
// overload for text IDs (VARCHAR) and one each for BIGINT, UBIGINT and
// HUGEINT IDs, which are looked up by their decimal text. It returns JSON:
// the record the gateway answers for a found ID. The resolver must outlive
// every statement that calls the function.
func Register(ctx context.Context, conn *sql.Conn, res Resolver, opt Options) error {
	if res == nil {
		return errors.New("duckfn: nil resolver")
	}
	if opt.Name == "" {
		opt.Name = "resolve_location"
	}
	switch opt.OnRowError {
	case "":
		opt.OnRowError = RowErrorNull
	case RowErrorNull, RowErrorObject, RowErrorFail:
	default:
		return fmt.Errorf("duckfn: OnRowError %q: want %q, %q or %q", opt.OnRowError, RowErrorNull, RowErrorObject, RowErrorFail)
	}
	out, err := jsonType(ctx, conn)
	if err != nil {
		return err
	}
	var fns []duckdb.ScalarFunc
	for _, t := range []duckdb.Type{duckdb.TYPE_VARCHAR, duckdb.TYPE_BIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_HUGEINT} {
		in, err := duckdb.NewTypeInfo(t)
		if err != nil {
			return fmt.Errorf("duckfn: %w", err)
		}
		fns = append(fns, &function{in: in, out: out, res: res, opt: opt})
	}
	if err := duckdb.RegisterScalarUDFSet(conn, opt.Name, fns...); err != nil {
		return fmt.Errorf("duckfn: register %s: %w", opt.Name, err)
	}
	return nil
}

// jsonType is DuckDB's JSON type. The driver makes only untagged types;
// one read back from a statement keeps its JSON alias, which is what
// makes ->> and json_extract see the result as JSON.
func jsonType(ctx context.Context, conn *sql.Conn) (duckdb.TypeInfo, error) {
	var info duckdb.TypeInfo
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("connection is a %T, not DuckDB's", dc)
		}
		st, err := c.PrepareContext(ctx, "SELECT NULL::JSON")
		if err != nil {
			return err
		}
		// Only prepared, never run: its Close has nothing to report.
		defer func() { _ = st.Close() }()
		ds, ok := st.(*duckdb.Stmt)
		if !ok {
			return fmt.Errorf("statement is a %T, not DuckDB's", st)
		}
		info, err = ds.ColumnTypeInfo(0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("duckdb: JSON type: %w", err)
	}
	if info.Alias() != "JSON" {
		return nil, fmt.Errorf("duckfn: JSON type has alias %q; is DuckDB's json extension missing?", info.Alias())
	}
	return info, nil
}

// function is one overload of the function set.
type function struct {
	in, out duckdb.TypeInfo
	res     Resolver
	opt     Options
}

func (f *function) Config() duckdb.ScalarFuncConfig {
	return duckdb.ScalarFuncConfig{
		InputTypeInfos: []duckdb.TypeInfo{f.in},
		ResultTypeInfo: f.out,
		// Volatile: every call may reach the provider, so DuckDB must not
		// fold resolve_location('x') into a constant while it plans (with
		// no statement to cancel it) or merge calls it thinks are pure.
		Volatile: true,
		// Default NULL handling is what we want: a NULL ID is a NULL
		// answer, skipped by Rows and never sent to the resolver.
		SpecialNullHandling: false,
	}
}

func (f *function) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{ChunkContextExecutor: f.chunk, ScalarBinder: bindStatementCtx}
}

// bindStatementCtx hands the statement's context to every chunk at bind
// time. Without a binder, duckdb-go v2.10506.0 stores it lazily in the bind
// data from each of DuckDB's worker threads at once, a data race the race
// detector reports (scalarFuncContext.setCtx); bound here, once, the workers
// only read it.
func bindStatementCtx(ctx context.Context, _ []duckdb.ScalarUDFArg) (context.Context, error) {
	return ctx, nil
}

// chunk answers one chunk: its IDs in one ResolveMany, then one result
// per row. ctx is the statement's: when it ends, the statement fails with
// its error rather than answering NULL for the rows left.
func (f *function) chunk(ctx context.Context, chunk *duckdb.ChunkIteratorState) error {
	var ids []string
	for row, err := range chunk.Rows() {
		if err != nil {
			return err
		}
		ids = append(ids, idText(*row.GetValuePtr(0)))
	}
	if len(ids) == 0 {
		return nil
	}
	outs, st := f.res.ResolveMany(ctx, ids)
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(outs) != len(ids) {
		return fmt.Errorf("resolver answered %d of %d ids", len(outs), len(ids))
	}
	if f.opt.Observe != nil {
		f.opt.Observe(len(ids), st)
	}
	i := 0
	for row, err := range chunk.Rows() {
		if err != nil {
			return err
		}
		v, err := f.value(ids[i], &outs[i])
		if err != nil {
			return err
		}
		if err := row.SetResult(v); err != nil {
			return err
		}
		i++
	}
	return nil
}

// idText is the ID the provider is asked about: text as it is, integers
// as their decimal text (what the gateway does with a numeric ID).
func idText(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return fmt.Sprint(x)
	case uint64:
		return fmt.Sprint(x)
	case *big.Int:
		return x.String()
	}
	return fmt.Sprint(v)
}

// value is one row's answer: the gateway's JSON for a found record (its
// cached encoding, not re-encoded), NULL or an object for the rest.
func (f *function) value(id string, o *cache.Outcome) (any, error) {
	switch {
	case o.Err != nil:
		return f.rowError(id, o.Err)
	case o.Entry == nil:
		return f.rowError(id, errors.New("resolver gave no answer"))
	}
	switch o.Status {
	case locapi.Found:
		return json.RawMessage(o.JSON), nil
	case locapi.NotFound, locapi.NoLocation:
		if !f.opt.NotFoundObject {
			return nil, nil
		}
		return notFound{ID: id, Status: o.Status.String()}, nil
	}
	return f.rowError(id, fmt.Errorf("resolver gave unknown status %d", o.Status))
}

// notFound is the gateway's --not-found object.
type notFound struct {
	Found  bool   `json:"found"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

// rowError answers an ID that has no value per Options.OnRowError.
func (f *function) rowError(id string, err error) (any, error) {
	switch f.opt.OnRowError {
	case RowErrorFail:
		return nil, fmt.Errorf("%s(%q): %s", f.opt.Name, shorten(id), reason(err))
	case RowErrorObject:
		return struct {
			Error string `json:"error"`
		}{reason(err)}, nil
	}
	return nil, nil
}

// reason is the short text a SQL user sees for a failed row, as the
// gateway gives it: why an ID is invalid, else a summary, never the
// provider's error text, which may carry URLs.
func reason(err error) string {
	switch {
	case errors.Is(err, locapi.ErrInvalidID):
		for e := err; e != nil; e = errors.Unwrap(e) {
			if errors.Unwrap(e) == locapi.ErrInvalidID { //nolint:errorlint // the direct wrap is the one wanted
				return shorten(e.Error())
			}
		}
		return locapi.ErrInvalidID.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "lookup timed out"
	case errors.Is(err, context.Canceled):
		return "lookup canceled"
	}
	return "lookup failed"
}

// shorten keeps an error message one readable line whatever the ID holds.
func shorten(s string) string {
	const limit = 120
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
