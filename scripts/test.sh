#!/usr/bin/env bash
# Every check the project has, as CI runs it: formatting, vet, module
# tidiness, the release build, the tests under the race detector, and a short
# fuzz of the request decoder.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go mod tidy -diff
OUT=$(mktemp -d)/snowgate bash scripts/build.sh
go test -race -count=1 -timeout 20m ./...
go test -run '^$' -fuzz '^FuzzDecodeBatch$' -fuzztime 15s ./gateway/
