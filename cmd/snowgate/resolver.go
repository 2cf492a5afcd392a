package main

import (
	"errors"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/stack"
)

// defaultUpstreamURL points at `snowgate sim` on its default address, so a
// local trial works with no flags; production sets --upstream-url.
const defaultUpstreamURL = "http://127.0.0.1:9090/api/v2/entities/{id}?select=id,label,location"

// resolverFlags are the flags serve and backfill share: how to reach the
// provider, how fast, and how much to remember.
type resolverFlags struct {
	upstreamURL string
	rate        float64
	burst       int
	concurrency int
	timeout     time.Duration
	maxIDLen    int
	cacheSize   int
	cacheTTL    time.Duration
	negativeTTL time.Duration
	redisURL    string
	redisPrefix string
	redisShare  float64
}

func addResolverFlags(fs *flag.FlagSet) *resolverFlags {
	rf := &resolverFlags{}
	fs.StringVar(&rf.upstreamURL, "upstream-url", defaultUpstreamURL, "provider URL template; {id} is replaced by the escaped ID (token from SNOWGATE_UPSTREAM_TOKEN)")
	numVar(fs, &rf.rate, "rate", 100, atLeast(0.0).zeroMeans("unlimited"),
		"provider requests per second for this process (0 = unlimited); lowered automatically on 429")
	// 0 is allowed because the provider client reads it as 1, and bench
	// passes its burst on to a child backfill as it is.
	numVar(fs, &rf.burst, "burst", 1, between(0, maxBurst), "provider requests allowed at once above the rate (0 = 1)")
	numVar(fs, &rf.concurrency, "upstream-concurrency", 64, between(1, maxConcurrency), "provider requests in flight at most")
	numVar(fs, &rf.timeout, "upstream-timeout", 10*time.Second, between(time.Millisecond, time.Hour), "timeout of one provider request attempt")
	// An ID is escaped into the URL's path, up to three bytes per byte;
	// servers commonly refuse request lines past 8 to 16 KB.
	numVar(fs, &rf.maxIDLen, "max-id-length", locapi.DefaultMaxIDLen, between(1, 4096),
		"longest ID in bytes sent to the provider; longer IDs are rejected")
	// About 800 bytes an entry: the top is some 80 GB.
	numVar(fs, &rf.cacheSize, "cache-size", 100_000, between(1, 100_000_000), "resolved IDs kept in memory (LRU)")
	// A year is the longest TTL the shared Redis cache keeps too.
	numVar(fs, &rf.cacheTTL, "cache-ttl", 24*time.Hour, between(time.Millisecond, maxTTL), "how long a found record is served from the cache")
	numVar(fs, &rf.negativeTTL, "negative-ttl", time.Hour, between(time.Millisecond, maxTTL),
		"how long a not-found or no-location answer is served from the cache")
	fs.StringVar(&rf.redisURL, "redis-url", "",
		"Redis shared by every replica and backfill (redis://[user:password@]host:6379/0, rediss:// for TLS): one provider budget, "+
			"a shared cache and async batches any replica can answer; empty = this process alone. Prefer the environment variable: it may hold a password")
	fs.StringVar(&rf.redisPrefix, "redis-prefix", cluster.DefaultPrefix, "prefix of every Redis key; deployments sharing one Redis need different ones")
	numVar(fs, &rf.redisShare, "redis-local-share", locapi.DefaultBudgetShare, between(0.0, 1).openLo(),
		"share of --rate this process keeps to while Redis is unreachable; 1/(replicas + backfills) keeps them all within the provider's limit")
	return rf
}

// Limits shared by the flags of several commands, so that what bench
// passes on to a child backfill is always accepted there.
const (
	maxBurst       = 1_000_000
	maxConcurrency = 100_000
	maxTTL         = 365 * 24 * time.Hour
)

// stack builds the provider client, the optional Redis shared state and
// the resolver, all sized by --upstream-concurrency.
func (rf *resolverFlags) stack(reg prometheus.Registerer, logger *slog.Logger) (*stack.Parts, error) {
	p, err := stack.New(stack.Config{
		Provider: locapi.Config{
			URL:      rf.upstreamURL,
			Token:    os.Getenv("SNOWGATE_UPSTREAM_TOKEN"),
			Rate:     rf.rate,
			Burst:    rf.burst,
			Timeout:  rf.timeout,
			MaxIDLen: rf.maxIDLen,
		},
		// Found records are kept as the gateway's VARIANT bytes: serve
		// answers with them and resolve_location returns them.
		Cache:       cache.Config{Size: rf.cacheSize, TTL: rf.cacheTTL, NegativeTTL: rf.negativeTTL, Encode: gateway.EncodeRecord},
		Concurrency: rf.concurrency,
		RedisURL:    rf.redisURL,
		Redis:       cluster.Config{Prefix: rf.redisPrefix},
		RedisShare:  rf.redisShare,
		Logger:      logger,
	}, reg)
	var ue *stack.RedisURLError
	if errors.As(err, &ue) {
		return nil, usagef("--redis-url: %v", ue.Err)
	}
	return p, err
}
