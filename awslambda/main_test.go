package awslambda

import (
	"os"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestMain keeps gin's debug route listing out of the test output, as
// snowgate's main does for the process.
func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}
