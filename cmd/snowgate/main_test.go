package main

import (
	"log/slog"
	"os"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/snowgate/snowgate/cluster"
)

// TestMain makes the process-wide settings main makes, since the tests call
// run, not main: gin's debug lines off, go-redis's messages dropped (the
// Redis tests would otherwise print one per failed dial).
func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	cluster.SetLibraryLogger(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
