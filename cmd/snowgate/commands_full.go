//go:build !slim

package main

// warehouseCommands are the commands that need DuckDB, gosnowflake or the
// plotting library; a slim build has none of them.
func warehouseCommands() []command {
	return []command{
		{"backfill", "Resolve every ID of a warehouse table into STANDARDIZED_LOCATIONS, resumably.", runBackfill},
		{"sql", "Run SQL in DuckDB with resolve_location(id) registered: enrichment with no server.", runSQL},
		{"demo", "Run the whole thing locally: DuckDB, simulator, backfill, gateway, report.", runDemo},
		{"bench", "Measure snowgate against the simulator and the original workflow's strategy.", runBench},
	}
}
