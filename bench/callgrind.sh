#!/usr/bin/env bash
# Instructions per call, counted by valgrind's callgrind: repeatable on a
# noisy machine, where wall-clock A/B runs are not (see BENCHMARKS.md).
# Runs the server under callgrind twice, for N1 and N2 calls from h2load
# (1 connection, 1 stream), dumps the counts as soon as h2load is done
# (callgrind_control), and divides the difference of the two dumps by
# N2 - N1, which cancels start-up. Shutdown is left out: under valgrind,
# which runs one thread at a time, the C core's threads can spin there for
# as long as the scheduler lets them, and a process total taken at exit
# then varies by orders of magnitude from run to run.
#
#   bench/callgrind.sh [SERVER_BINARY] [METHOD] [VALUE] [N1] [N2]
#   bench/callgrind.sh target/release/server GetSequence 46 400 1600
# STREAMS=16 keeps 16 calls in flight (default 1), which keeps the server
# busy and so makes the count depend less on the run's wall time.
# SERVER_ARGS adds flags to the server's command line, to count what one
# costs, e.g. SERVER_ARGS="--max-connection-age 0 --max-connection-idle 0".
# VALUE may be several, quoted ("4 2 1"): the request stream's messages.
# KEEP_DUMPS=DIR keeps the two dumps there, as callgrind.N1.out and
# callgrind.N2.out (bench/profile_split.py reads them).
# Needs valgrind and h2load (Debian: valgrind, nghttp2-client).
set -euo pipefail
server=${1:-target/release/server}
method=${2:-GetSequence}
value=${3:-46}
n1=${4:-400}
n2=${5:-1600}
streams=${STREAMS:-1}
for tool in valgrind h2load; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The gRPC messages holding Number{value}, built by the shared harness.
# shellcheck disable=SC2086  # several values are several messages
PYTHONPATH="$(dirname "$0")/../interop" python3 -m harness.wire $value > "$work/body"

instructions_for() {
  valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$server" --host 127.0.0.1 --port 0 ${SERVER_ARGS:-} > "$work/server.out" 2> "$work/valgrind.err" &
  local pid=$!
  for _ in $(seq 150); do
    grep -q "^listening on" "$work/server.out" 2>/dev/null && break
    sleep 0.2
  done
  local address
  address=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$work/server.out")
  h2load -c 1 -m "$streams" -n "$1" -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$work/body" "http://$address/fibonacci.Fibonacci/$method" > "$work/h2load.out" 2>&1
  callgrind_control --dump "$pid" > /dev/null 2>&1
  local dump="$work/callgrind.out.1"
  for _ in $(seq 100); do
    grep -q "^summary:" "$dump" 2>/dev/null && break
    sleep 0.1
  done
  kill -TERM "$pid"
  wait "$pid"
  sed -n 's/^summary: \([0-9]*\)/\1/p' "$dump"
  if [ -n "${KEEP_DUMPS:-}" ]; then cp "$dump" "$KEEP_DUMPS/callgrind.$1.out"; fi
  rm -f "$work"/callgrind.out*
}

first=$(instructions_for "$n1")
second=$(instructions_for "$n2")
echo "$method($value): $(( (second - first) / (n2 - n1) )) instructions per call"
