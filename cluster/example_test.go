package cluster_test

import (
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
)

// The views implement the interfaces their consumers declare.
var (
	_ locapi.Budget    = (*cluster.Budget)(nil)
	_ cache.L2         = (*cluster.Records)(nil)
	_ gateway.JobStore = (*cluster.Jobs)(nil)
)

// Example wires one gateway replica to the state it shares with the other
// replicas and backfills: every one gets the provider's whole rate, Redis
// splits it. (cmd/snowgate does this from --redis-url.)
func Example() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	reg := prometheus.NewRegistry()
	shared, err := cluster.New(os.Getenv("SNOWGATE_REDIS_URL"), cluster.Config{Logger: logger}, reg)
	if err != nil {
		logger.Error("redis", "err", err)
		return
	}
	defer shared.Close()

	client, err := locapi.New(locapi.Config{
		URL:         "https://provider.example/api/v2/entities/{id}?select=id,label,location",
		Rate:        1000, // the provider's limit, for all replicas together
		Budget:      shared.Budget("provider.example"),
		BudgetShare: 0.25, // four processes: each keeps to 250/s while Redis is down
	}, reg)
	if err != nil {
		logger.Error("provider client", "err", err)
		return
	}
	defer client.Close()
	res, err := cache.New(client, cache.Config{L2: shared.Records()}, reg)
	if err != nil {
		logger.Error("resolver", "err", err)
		return
	}
	defer res.Close()
	gw, err := gateway.New(res, gateway.Config{Async: true, Shared: shared.Jobs()}, reg)
	if err != nil {
		logger.Error("gateway", "err", err)
		return
	}
	_ = gw // gw.Serve(ctx, listener)
}
