#!/usr/bin/env bash
# Builds the snowgate binary. The Dockerfile's build stage and CI both run
# this script, so a green CI proves the image's build step compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bin/snowgate}
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
# DuckDB is linked in through cgo (the embedded warehouse for backfill,
# sql and demo), so CGO stays on for the full binary. lambda.norpc leaves
# out aws-lambda-go's RPC mode, which only the retired go1.x Lambda runtime
# used (21 MB of binary). The serve-only build for Lambda and the slim
# image: TAGS=slim,lambda.norpc CGO=0 (static, about 20 MB).
tags=${TAGS:-lambda.norpc}
CGO_ENABLED=${CGO:-1} go build -tags "$tags" -trimpath -ldflags "-s -w -X main.version=${version}" -o "$out" ./cmd/snowgate
size=$(stat -c %s "$out")
echo "built $out ($version, tags $tags): $((size / 1024 / 1024)) MiB ($size bytes)"
