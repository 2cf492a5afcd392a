package gateway

import (
	"os"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestMain does what cmd/snowgate's main does for gin's one process-wide
// mode: without it every gateway a test builds prints gin's debug lines.
func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}
