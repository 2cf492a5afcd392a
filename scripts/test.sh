#!/usr/bin/env bash
# Every check the project has, as CI runs it: formatting, vet, module
# tidiness, the release build, the tests under the race detector, short
# fuzzes of the hand-written decoders and encoder and the quick benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go mod tidy -diff
bin=$(mktemp -d)/snowgate
OUT=$bin bash scripts/build.sh
go test -race -count=1 -timeout 20m ./...
go test -run '^$' -fuzz '^FuzzDecodeBatch$' -fuzztime 15s ./gateway/
# Each must give exactly what encoding/json gives.
go test -run '^$' -fuzz '^FuzzDecodeEntity$' -fuzztime 10s ./locapi/
go test -run '^$' -fuzz '^FuzzRecordJSON$' -fuzztime 10s ./locapi/
# The published benchmark's quick preset: figures are not asserted, but it
# fails if any row it checked was wrong.
"$bin" bench --quick
