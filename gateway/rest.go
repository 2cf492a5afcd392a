package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// routeREST adds the REST API under Config.RESTPrefix.
// Being built in this session: not served until it is.
func (s *Server) routeREST(e *gin.Engine) {
	e.Any(s.cfg.RESTPrefix+"/*rest", func(c *gin.Context) {
		writeText(c, http.StatusNotImplemented, "REST API not built yet")
	})
}
