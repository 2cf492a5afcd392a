package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
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
}

func addResolverFlags(fs *flag.FlagSet) *resolverFlags {
	rf := &resolverFlags{}
	fs.StringVar(&rf.upstreamURL, "upstream-url", defaultUpstreamURL, "provider URL template; {id} is replaced by the escaped ID (token from SNOWGATE_UPSTREAM_TOKEN)")
	fs.Float64Var(&rf.rate, "rate", 100, "provider requests per second for this process (0 = unlimited); lowered automatically on 429")
	fs.IntVar(&rf.burst, "burst", 1, "provider requests allowed at once above the rate")
	fs.IntVar(&rf.concurrency, "upstream-concurrency", 64, "provider requests in flight at most")
	fs.DurationVar(&rf.timeout, "upstream-timeout", 10*time.Second, "timeout of one provider request attempt")
	fs.IntVar(&rf.maxIDLen, "max-id-length", locapi.DefaultMaxIDLen, "longest ID in bytes sent to the provider; longer IDs are rejected")
	fs.IntVar(&rf.cacheSize, "cache-size", 100_000, "resolved IDs kept in memory (LRU)")
	fs.DurationVar(&rf.cacheTTL, "cache-ttl", 24*time.Hour, "how long a found record is served from the cache")
	fs.DurationVar(&rf.negativeTTL, "negative-ttl", time.Hour, "how long a not-found or no-location answer is served from the cache")
	return rf
}

// build makes the provider client and the resolver over it. close releases
// both; call it once the last user is done.
func (rf *resolverFlags) build(reg prometheus.Registerer, logger *slog.Logger) (res *cache.Resolver, client *locapi.Client, close func(), err error) {
	client, err = locapi.New(locapi.Config{
		URL:         rf.upstreamURL,
		Token:       os.Getenv("SNOWGATE_UPSTREAM_TOKEN"),
		Rate:        rf.rate,
		Burst:       rf.burst,
		Concurrency: rf.concurrency,
		Timeout:     rf.timeout,
		MaxIDLen:    rf.maxIDLen,
		Logger:      logger,
	}, reg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("provider client: %w", err)
	}
	res, err = cache.New(client, cache.Config{
		Size:        rf.cacheSize,
		TTL:         rf.cacheTTL,
		NegativeTTL: rf.negativeTTL,
		Concurrency: rf.concurrency,
	}, reg)
	if err != nil {
		client.Close()
		return nil, nil, nil, fmt.Errorf("resolver: %w", err)
	}
	return res, client, func() { res.Close(); client.Close() }, nil
}
