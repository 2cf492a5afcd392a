//go:build !unix

package bench

import "os"

// peakRSSChild is unknown (0) where rusage has no maxrss.
func peakRSSChild(*os.ProcessState) int64 { return 0 }
