package cluster

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// SetLibraryLogger routes go-redis's own messages (a failed dial, a
// connection dropped) to l at debug level; by default go-redis prints them
// to stderr, one per failed attempt during an outage, which the one
// warning a Client logs already covers. go-redis has one logger per
// process: call this once, from main.
func SetLibraryLogger(l *slog.Logger) {
	redis.SetLogger(libLogger{l})
}

type libLogger struct{ l *slog.Logger }

func (g libLogger) Printf(ctx context.Context, format string, v ...any) {
	if g.l.Enabled(ctx, slog.LevelDebug) {
		g.l.DebugContext(ctx, fmt.Sprintf(format, v...), "lib", "go-redis")
	}
}
