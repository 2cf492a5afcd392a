//go:build deps

// Package main: this file only pins the modules the packages are being built
// against while they are written; removed once they import them.
package main

import (
	_ "github.com/duckdb/duckdb-go/v2"
	_ "github.com/gin-gonic/gin"
	_ "github.com/go-redis/redis_rate/v10"
	_ "github.com/redis/go-redis/v9"
	_ "gonum.org/v1/plot"
	_ "gonum.org/v1/plot/plotter"
	_ "gonum.org/v1/plot/vg"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/snowflakedb/gosnowflake"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sync/semaphore"
	_ "golang.org/x/sync/singleflight"
	_ "golang.org/x/term"
	_ "golang.org/x/time/rate"
)
