package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/snowgate/snowgate/awslambda"
	"github.com/snowgate/snowgate/gateway"
)

// runtimeAPIEnv is set by AWS Lambda, to the address of its Runtime API,
// in every process it starts: serve then runs as a Lambda function.
const runtimeAPIEnv = "AWS_LAMBDA_RUNTIME_API"

// lambdaMaxResponse is --max-response under Lambda, whose synchronous
// invocations answer at most 6 MiB (awslambda.MaxPayload). A text answer
// travels as a JSON string in the proxy response, its quotes escaped: 1.12
// times its size for the simulator's records (4,096 rows), so 6,000,000
// bytes of answer would not fit; 5,000,000 leaves room for records with
// more quotes, and the gateway's error names the MAX_BATCH_ROWS that fits.
const lambdaMaxResponse = 5_000_000

func inLambda() bool { return os.Getenv(runtimeAPIEnv) != "" }

// lambdaDefaults changes serve's defaults for Lambda, before the flags are
// parsed: a flag or its SNOWGATE_* twin still wins over them.
func lambdaDefaults(fs *flag.FlagSet) {
	if !inLambda() {
		return
	}
	f := fs.Lookup("max-response")
	f.DefValue = strconv.Itoa(lambdaMaxResponse)
	// The Value's own Set, not the FlagSet's: the flag stays unset, so
	// parseFlags still reads SNOWGATE_MAX_RESPONSE into it.
	_ = f.Value.Set(f.DefValue) // in range: a constant the flag allows
}

// checkLambda rejects serve's settings that cannot work under Lambda.
func checkLambda(sf *serveFlags) error {
	if inLambda() && sf.cfg.Async {
		// Lambda freezes an instance between invocations, so a batch
		// answered 202 would make no progress until the next one.
		return usagef("serve: --async does not work under AWS Lambda: an instance is frozen between invocations")
	}
	return nil
}

// serveLambda answers Lambda invocations with gw until ctx ends (SIGTERM).
func serveLambda(ctx context.Context, gw *gateway.Server, cfg gateway.Config, shared bool, logger *slog.Logger) error {
	logger.Info("lambda mode: answering invocations from the Runtime API, no listener",
		"runtime_api", os.Getenv(runtimeAPIEnv), "path", cfg.Path, "bigquery_path", cfg.BigQueryPath,
		"rest_prefix", cfg.RESTPrefix, "max_response", cfg.MaxResponse, "auth", cfg.AuthHeader != "",
		"on_row_error", cfg.OnRowError, "redis", shared)
	if !shared {
		logger.Warn("no --redis-url: every Lambda instance has its own cache and the whole --rate budget, " +
			"so N instances may call the provider at N times --rate and each misses its own cache")
	}
	// The loop runs until the process ends: aws-lambda-go offers no way to
	// stop it, and exits the process itself if the Runtime API fails
	// (Lambda then starts a new instance).
	go lambda.StartWithOptions(awslambda.Handler(gw))
	// Serve on a listener that never accepts: the gateway's upkeep (answers
	// expiring, shared ones republished) and its drain run as they do over
	// HTTP, and ctx's end drains the invocations still running.
	return gw.Serve(ctx, newIdleListener())
}

// idleListener accepts nothing until it is closed.
type idleListener struct {
	once   sync.Once
	closed chan struct{}
}

func newIdleListener() *idleListener { return &idleListener{closed: make(chan struct{})} }

func (l *idleListener) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}

func (l *idleListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *idleListener) Addr() net.Addr { return lambdaAddr{} }

// lambdaAddr names the idle listener in errors and logs.
type lambdaAddr struct{}

func (lambdaAddr) Network() string { return "lambda" }
func (lambdaAddr) String() string  { return "aws-lambda-runtime-api" }
