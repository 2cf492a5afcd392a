package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine is where a run happened. The machine may be shared: LoadStart and
// LoadEnd are /proc/loadavg's three averages at both ends of the run.
type Machine struct {
	CPUs          int    `json:"cpus"`
	GOMAXPROCS    int    `json:"gomaxprocs"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	GoVersion     string `json:"go_version"`
	MemTotalBytes int64  `json:"mem_total_bytes"`
	LoadStart     string `json:"load_start"`
	LoadEnd       string `json:"load_end"`
}

func machine() Machine {
	return Machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS, Arch: runtime.GOARCH,
		GoVersion: runtime.Version(), MemTotalBytes: procKB("/proc/meminfo", "MemTotal:") * 1024,
		LoadStart: loadAvg(),
	}
}

// loadAvg is the 1, 5 and 15 minute load averages, "" where unknown.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// peakRSSSelf is this process's peak resident set (VmHWM), 0 where /proc
// is not available.
func peakRSSSelf() int64 { return procKB("/proc/self/status", "VmHWM:") * 1024 }

// procKB reads a "Key: N kB" line of a /proc file; 0 if absent.
func procKB(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n
	}
	return 0
}

// tail is the last n bytes of s, for an error message.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
