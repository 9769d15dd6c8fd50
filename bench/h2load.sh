#!/usr/bin/env bash
# Cross-check with the issue's tool: h2load (Debian's nghttp2-client), 2
# connections x 16 streams, 1 s warm-up + 4 s, one gRPC request body per
# call. Unlike target/release/bench it checks only the HTTP status (200),
# not the grpc-status or the values, and it sends each request stream whole
# (StreamSequence gets 4, 2, 1 in one body, not interleaved).
#
#   bench/h2load.sh HOST:PORT [CONNECTIONS] [STREAMS] [SECONDS]
set -euo pipefail
address=${1:?usage: bench/h2load.sh HOST:PORT [CONNECTIONS] [STREAMS] [SECONDS]}
connections=${2:-2}
streams=${3:-16}
seconds=${4:-4}
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }

bodies=$(mktemp -d)
trap 'rm -rf "$bodies"' EXIT
# A gRPC message: 0 (not compressed), 4-byte length 2, then Number{value}
# as protobuf: field 1 varint (0x08) and the value (< 128, one byte).
message() { printf '\x00\x00\x00\x00\x02\x08'"$(printf '\\x%02x' "$1")"; }
message 46 > "$bodies/AtIndex"
message 46 > "$bodies/GetSequence"
{ message 7; message 5; } > "$bodies/SumIndicies"
{ message 4; message 2; message 1; } > "$bodies/StreamSequence"

for method in AtIndex GetSequence SumIndicies StreamSequence; do
  out=$(h2load -c "$connections" -m "$streams" -D "$seconds" --warm-up-time=1 \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$bodies/$method" "http://$address/fibonacci.Fibonacci/$method" 2>&1)
  rate=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
  status=$(grep -E '^requests:' <<<"$out" | sed 's/^requests: *//')
  printf '%-15s %10s calls/s   %s\n' "$method" "$rate" "$status"
done
