//go:build unix

package bench

import (
	"os"
	"runtime"
	"syscall"
)

// peakRSSChild is a finished child's peak resident set from its rusage:
// kilobytes on Linux and the BSDs, bytes on macOS.
func peakRSSChild(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}
