//go:build !unix

package gateway

import "time"

// processCPU is not measured here; BenchmarkServeHTTP then reports wall
// time only.
func processCPU() time.Duration { return 0 }
