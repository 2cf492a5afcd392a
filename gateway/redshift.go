package gateway

import (
	"context"
)

// Redshift answers one Redshift Lambda UDF invocation: event is the
// invocation's payload, the answer the JSON text Redshift reads
// ({"success": true, "num_records": n, "results": [...]}).
// Being built in this session.
func (s *Server) Redshift(ctx context.Context, event []byte) []byte {
	return []byte(`{"success":false,"error_msg":"Redshift adapter not built yet"}`)
}
