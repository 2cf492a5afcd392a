//go:build slim

package main

// warehouseCommands is empty in a slim build (go build -tags slim, static
// with CGO_ENABLED=0): serve, sim, healthcheck and version only, for AWS
// Lambda and a small serve image. The full build adds backfill, sql, demo
// and bench, and with them DuckDB, gosnowflake and a plotting library.
func warehouseCommands() []command { return nil }
