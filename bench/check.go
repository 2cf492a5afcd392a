package bench

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// checkFound compares every row of a table of found records with the
// simulator, field by field.
func checkFound(ctx context.Context, db *sql.DB, table string, o *oracle, ck *CheckReport, seen []bool) error {
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT ID, LABEL, GEO_LABEL, CITY_LABEL, POSTAL_CODE,
		COUNTRY_LABEL, LATITUDE, LONGITUDE, STREET_ADDRESS FROM %s`, table))
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var label, geo, city, postal, country, street sql.Null[string]
		var lat, lon sql.Null[float64]
		if err := rows.Scan(&id, &label, &geo, &city, &postal, &country, &lat, &lon, &street); err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		ck.Checked++
		if !mark(seen, id, ck) {
			continue
		}
		got := &locapi.Record{ID: id, Label: ptr(label), GeoLabel: ptr(geo), CityLabel: ptr(city),
			PostalCode: ptr(postal), CountryLabel: ptr(country), Latitude: ptr(lat), Longitude: ptr(lon),
			StreetAddress: ptr(street)}
		kind, want, err := o.truth(id)
		switch {
		case err != nil:
			return err
		case kind != sim.Found:
			ck.wrong("%s: stored as found; the simulator says %s", id, kind)
		default:
			if why := diffRecord(got, want); why != "" {
				ck.wrong("%s: %s", id, why)
			} else {
				ck.Right++
			}
		}
	}
	return rows.Err()
}

func ptr[T any](n sql.Null[T]) *T {
	if !n.Valid {
		return nil
	}
	return &n.V
}

// checkMisses checks that every not-found and no-location outcome is the
// simulator's.
func checkMisses(ctx context.Context, db *sql.DB, o *oracle, ck *CheckReport, seen []bool) error {
	table := loader.DefaultTargetTable + loader.MissesSuffix
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT ID, OUTCOME FROM %s", table))
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, outcome string
		if err := rows.Scan(&id, &outcome); err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		ck.Checked++
		if !mark(seen, id, ck) {
			continue
		}
		if kind, _ := o.sim.Expected(id); kind.String() != outcome {
			ck.wrong("%s: recorded as %s; the simulator says %s", id, outcome, kind)
			continue
		}
		ck.Right++
	}
	return rows.Err()
}

// checkFailures counts a failure of an ID the provider always fails as
// right, and any other as lost (but recorded, to be retried).
func checkFailures(ctx context.Context, db *sql.DB, o *oracle, ck *CheckReport, seen []bool) error {
	table := loader.DefaultTargetTable + loader.FailuresSuffix
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT ID FROM %s", table))
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		ck.Checked++
		if !mark(seen, id, ck) {
			continue
		}
		if kind, _ := o.sim.Expected(id); kind == sim.PermanentFail {
			ck.Right++
		} else {
			ck.Failed++
		}
	}
	return rows.Err()
}
