#!/usr/bin/env bash
# bench-replicate.sh: one-way replication latency and throughput (issue 13).
#
# In one process on loopback (crates/replicate/examples/bench.rs): a simulated device, the
# transmit agent polling it, the receive agent serving the replica, a Modbus client. For 1, 100
# and 10,000 registers per period it reports:
#   - source read -> replica visible, p50/p99 (the agent's read time is carried in every
#     datagram; "visible" is the first replica read that returns the new value);
#   - device write -> replica visible, p50/p99 (what a historian sees: adds up to one period);
#   - points per second delivered (registers x polls completed / s, with the datagrams lost);
#   - polling the device directly instead: one full read of the block (p50/p99) and points/s in
#     a closed loop.
# Never a pass/fail on timing: it prints numbers.
#
# Usage: scripts/bench-replicate.sh [--period MS] [--samples N] [--debug] [--no-build]
#   --period MS   block period (default 100)
#   --samples N   latency samples per size (default 100)
#   --debug       build and run the debug profile (numbers are then pessimistic)
#   --no-build    run what is built
set -euo pipefail
PERIOD=100
SAMPLES=100
PROFILE=release
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --period) PERIOD="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;;
    --debug) PROFILE=debug; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-replicate.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
if [[ $BUILD == 1 ]]; then
  if [[ $PROFILE == release ]]; then
    cargo build -q --release -p zonegate-replicate --example bench
  else
    cargo build -q -p zonegate-replicate --example bench
  fi
fi
BIN="target/$PROFILE/examples/bench"
"$BIN" "$PERIOD" "$SAMPLES" | PROFILE="$PROFILE" python3 -c '
import json, os, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
first = rows[0]
print("profile: %s, period %d ms, %d samples per size\n" % (os.environ["PROFILE"], first["period_ms"], first["samples"]))
print("| registers / period | source read -> replica visible p50 / p99 (ms) | device write -> visible p50 / p99 (ms) | replicated points/s | datagrams lost | direct poll of the block p50 / p99 (ms) | direct points/s |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    s, w, d = r["source_to_visible_ms"], r["write_to_visible_ms"], r["direct_read_ms"]
    print("| {:,} | {:.2f} / {:.2f} | {:.1f} / {:.1f} | {:,.0f} | {} | {:.2f} / {:.2f} | {:,.0f} |".format(
        r["registers"], s["p50"], s["p99"], w["p50"], w["p99"], r["replicated_points_per_s"],
        r["datagrams_lost"], d["p50"], d["p99"], r["direct_points_per_s"]))
'
