package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// BaselineReport is the original workflow's strategy on the same simulator
// settings: blocks of IDs read with LIMIT/OFFSET, a fresh pool of
// connections per block, every request of a block started at once and
// awaited together, no retry, no limiter.
type BaselineReport struct {
	Rows   int64 `json:"rows"`   // IDs read
	Blocks int   `json:"blocks"` // blocks read
	// Good rows got a usable answer (found, not found, no location); Lost
	// rows did not, and the strategy never asks again. LostTo splits them
	// by cause: 429, 5xx, network (timeouts, resets), malformed.
	Good          int64            `json:"good"`
	Lost          int64            `json:"lost"`
	LostTo        map[string]int64 `json:"lost_to"`
	Seconds       float64          `json:"seconds"`
	GoodPerSecond float64          `json:"good_rows_per_sec"`
	// Wrong counts stored rows that disagree with the simulator; it checks
	// the bench, and is expected to be 0.
	Wrong    int64          `json:"wrong"`
	Provider ProviderReport `json:"provider"`
	RowsDone []Point        `json:"rows_done"`
}

// Causes of a lost baseline row.
const (
	lost429       = "429"
	lost5xx       = "5xx"
	lostNetwork   = "network"
	lostMalformed = "malformed"
	lostOther     = "other_status"
)

// baselineAnswer is what one baseline request brought back.
type baselineAnswer struct {
	kind sim.Kind // Found, NotFound or NoLocation when good
	rec  *locapi.Record
	lost string // the cause when not good
}

// baseline runs the original strategy over the rows IDs of table (distinct
// of them different) against a fresh simulator, storing found rows in
// BASELINE_LOCATIONS.
func (r *runner) baseline(ctx context.Context, table string, rows, distinct int) (*BaselineReport, error) {
	prov, err := startProvider(ctx, r.cfg.Provider, r.log)
	if err != nil {
		return nil, err
	}
	defer prov.Close()
	db, err := openDuck(r.db)
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }() // checked below once the table is whole
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE OR REPLACE TABLE %s (ID VARCHAR, LABEL VARCHAR,
		GEO_LABEL VARCHAR, CITY_LABEL VARCHAR, POSTAL_CODE VARCHAR, COUNTRY_LABEL VARCHAR, LATITUDE DOUBLE,
		LONGITUDE DOUBLE, STREET_ADDRESS VARCHAR)`, baselineTable)); err != nil {
		return nil, fmt.Errorf("baseline: create %s: %w", baselineTable, err)
	}
	rep := &BaselineReport{LostTo: map[string]int64{}}
	var good atomic.Int64
	r.log.Info("bench phase", "phase", "baseline", "source", table)
	smp := startSampler("baseline", rows, func() float64 { return float64(good.Load()) }, r.log)
	start := time.Now()
	err = r.baselineBlocks(ctx, db, prov.url, table, rep, &good)
	end := time.Now()
	rep.RowsDone = smp.finish()
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	rep.Good = good.Load()
	rep.Seconds = end.Sub(start).Seconds()
	rep.GoodPerSecond = float64(rep.Good) / rep.Seconds
	rep.Provider = r.providerReport(prov, start, end, distinct)
	// One request per row read, repeats included: no cache, no retry.
	rep.Provider.CallsPerIDExpected = float64(rep.Rows) / float64(max(1, distinct))
	ck := &CheckReport{}
	if err := checkFound(ctx, db, baselineTable, &oracle{sim: prov.Server}, ck, nil); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	rep.Wrong = ck.Wrong
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("baseline: close: %w", err)
	}
	return rep, nil
}

// baselineBlocks is the original loop: read a block with OFFSET, fetch all
// of it at once, store it, next block.
func (r *runner) baselineBlocks(ctx context.Context, db *sql.DB, base, table string, rep *BaselineReport, good *atomic.Int64) error {
	query := fmt.Sprintf("SELECT ID FROM %s LIMIT %d OFFSET ?", table, r.cfg.BaselineBlock)
	for offset := 0; ; offset += r.cfg.BaselineBlock {
		ids, err := readIDs(ctx, db, query, offset)
		if err != nil || len(ids) == 0 {
			return err
		}
		answers := fetchBlock(ctx, base, ids, r.cfg.BaselineConns, r.cfg.BaselineTimeout, good)
		if err := ctx.Err(); err != nil {
			return err
		}
		var found []int
		for i, a := range answers {
			switch {
			case a.lost != "":
				rep.Lost++
				rep.LostTo[a.lost]++
			case a.kind == sim.Found:
				found = append(found, i)
			}
		}
		err = appendRows(ctx, db, baselineTable, len(found), func(k int) []driver.Value {
			return recordValues(ids[found[k]], answers[found[k]].rec)
		})
		if err != nil {
			return err
		}
		rep.Rows += int64(len(ids))
		rep.Blocks++
	}
}

func readIDs(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read ids: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// fetchBlock starts every request of the block at once on a fresh pool of
// conns connections and waits for all of them.
func fetchBlock(ctx context.Context, base string, ids []string, conns int, timeout time.Duration, good *atomic.Int64) []baselineAnswer {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost = conns, conns
	client := &http.Client{Transport: t, Timeout: timeout}
	defer t.CloseIdleConnections()
	out := make([]baselineAnswer, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			out[i] = fetchOne(ctx, client, sim.EntityURL(base, id), id)
			if out[i].lost == "" {
				good.Add(1)
			}
		})
	}
	wg.Wait()
	return out
}

// fetchOne is one request with no retry: anything but an answer is lost.
func fetchOne(ctx context.Context, client *http.Client, url, id string) baselineAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return baselineAnswer{lost: lostOther}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return baselineAnswer{lost: lostNetwork}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, locapi.MaxBodyBytes))
	switch {
	case err != nil:
		return baselineAnswer{lost: lostNetwork}
	case resp.StatusCode == http.StatusNotFound:
		return baselineAnswer{kind: sim.NotFound}
	case resp.StatusCode == http.StatusTooManyRequests:
		return baselineAnswer{lost: lost429}
	case resp.StatusCode >= 500:
		return baselineAnswer{lost: lost5xx}
	case resp.StatusCode != http.StatusOK:
		return baselineAnswer{lost: lostOther}
	}
	kind, rec, err := decodeEntity(body, id)
	if err != nil {
		return baselineAnswer{lost: lostMalformed}
	}
	return baselineAnswer{kind: kind, rec: rec}
}

// decodeEntity turns a provider answer into a record, the way the original
// workflow flattened it.
func decodeEntity(body []byte, id string) (sim.Kind, *locapi.Record, error) {
	var e sim.Entity
	if err := json.Unmarshal(body, &e); err != nil {
		return 0, nil, err
	}
	if e.ID != id {
		return 0, nil, errors.New("answer for another id")
	}
	rec := &locapi.Record{ID: e.ID, Label: e.Label}
	if e.Location == nil {
		return sim.NoLocation, rec, nil
	}
	l := e.Location
	rec.GeoLabel, rec.StreetAddress, rec.CityLabel = l.GeoLabel, l.StreetAddress, l.CityLabel
	rec.PostalCode, rec.CountryLabel, rec.Latitude, rec.Longitude = l.PostalCode, l.CountryLabel, l.Latitude, l.Longitude
	return sim.Found, rec, nil
}

// recordValues is a found row in the column order of BASELINE_LOCATIONS
// (and of STANDARDIZED_LOCATIONS without RESOLVED_AT).
func recordValues(id string, rec *locapi.Record) []driver.Value {
	s := func(p *string) driver.Value {
		if p == nil {
			return nil
		}
		return *p
	}
	f := func(p *float64) driver.Value {
		if p == nil {
			return nil
		}
		return *p
	}
	return []driver.Value{id, s(rec.Label), s(rec.GeoLabel), s(rec.CityLabel), s(rec.PostalCode),
		s(rec.CountryLabel), f(rec.Latitude), f(rec.Longitude), s(rec.StreetAddress)}
}
