#!/usr/bin/env bash
# Builds the snowgate binary. The Dockerfile's build stage and CI both run
# this script, so a green CI proves the image's build step compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bin/snowgate}
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
# DuckDB is linked in through cgo (the embedded warehouse for backfill and
# demo), so CGO stays on.
CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "$out" ./cmd/snowgate
size=$(stat -c %s "$out")
echo "built $out ($version): $((size / 1024 / 1024)) MiB ($size bytes)"
