package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// postBigQuery answers a BigQuery remote-function request.
// Being built in this session: not served until it is.
func (s *Server) postBigQuery(c *gin.Context) {
	writeText(c, http.StatusNotImplemented, "BigQuery adapter not built yet")
}
