#!/usr/bin/env bash
# Runs a command several times while two busy loops keep both cores of a
# small machine occupied, the way a developer's build or another job does.
# The tests must pass like this: they assert what always holds, not speed.
#
#   bash scripts/busy.sh [-n RUNS] [-- COMMAND ...]
#
# Without a command it runs `bash scripts/test.sh`, 3 times. It prints each
# run's result and duration and exits non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: bash scripts/busy.sh [-n RUNS] [-- COMMAND ...]" >&2
  exit 2
}

runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    -n)
      [ $# -ge 2 ] || usage
      runs=$2
      shift 2
      ;;
    --)
      shift
      break
      ;;
    -h | --help) usage ;;
    *)
      echo "busy.sh: unknown argument $1" >&2
      usage
      ;;
  esac
done
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "busy.sh: -n must be a positive whole number, got '$runs'" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  set -- bash scripts/test.sh
fi

loops=()
cmd=""
stop_all() {
  [ -n "$cmd" ] && kill "$cmd" 2>/dev/null
  for pid in "${loops[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${loops[@]}"; do
    wait "$pid" 2>/dev/null
  done
  loops=()
}
# Whatever ends the script, the loops end with it: EXIT fires on every exit,
# and INT and TERM exit at once (the command runs in the background and is
# waited for, so a signal is not held until it finishes).
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in 1 2; do
  sh -c 'while :; do :; done' &
  loops+=("$!")
done
echo "busy.sh: busy loops ${loops[*]} running; $runs run(s) of: $*"

failed=0
results=()
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  "$@" &
  cmd=$!
  wait "$cmd"
  rc=$?
  cmd=""
  took=$(($(date +%s) - start))
  if [ "$rc" -eq 0 ]; then
    results+=("run $i: pass in ${took}s")
  else
    results+=("run $i: FAIL (exit $rc) in ${took}s")
    failed=$((failed + 1))
  fi
  echo "busy.sh: ${results[-1]}"
done

echo "busy.sh: summary under two busy loops:"
printf '  %s\n' "${results[@]}"
if [ "$failed" -gt 0 ]; then
  echo "busy.sh: $failed of $runs run(s) failed" >&2
  exit 1
fi
