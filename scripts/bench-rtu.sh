#!/usr/bin/env bash
# Modbus RTU benchmark (issue 11, point 8): transactions/s and latency p50/p99 of one closed-loop
# master reading 10 holding registers, (a) straight on the device's pty and (b) through zonegate
# (rtu:// upstream on a socat pty pair), for the line settings 9600, 19200 and 115200 baud.
#
# A pty moves bytes without baud timing, so the script also reports the gateway's added time per
# transaction as a fraction of the *real* line time of that transaction: request (8) + response
# (25) characters at 11 bits each + two t3.5 silences. Goal: < 5 % at 19200 baud.
#
# The added time includes the t3.5 silence the gateway keeps before each frame (it is part of
# the line time on a real bus too); the report shows it separately. Nothing passes or fails.
#
#   scripts/bench-rtu.sh [--count N] [--out FILE]     (default 1000 transactions per run)
#
# Needs: socat (Debian), python3 with pyserial (the e2e venv .venv-e2e has it), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=1000
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PY=.venv-e2e/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -c 'import serial' 2>/dev/null || { echo "pyserial missing: run make venv" >&2; exit 2; }
command -v socat >/dev/null || { echo "socat missing (apt-get install socat)" >&2; exit 2; }

cargo build --release -q -p zonegate
ZG=target/release/zonegate
WORK=$(mktemp -d /tmp/bench-rtu.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_pair() { # $1 name -> $WORK/$1-a, $WORK/$1-b
  socat "pty,raw,echo=0,link=$WORK/$1-a" "pty,raw,echo=0,link=$WORK/$1-b" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -e "$WORK/$1-a" ] && [ -e "$WORK/$1-b" ] && return; sleep 0.05; done
  echo "socat did not start" >&2; exit 1
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RESULTS="$WORK/results.txt"
: > "$RESULTS"

# (a) direct: the client on the pty, the sim on the other end.
start_pair direct
"$ZG" sim --rtu "$WORK/direct-b" --units 1 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.3
"$PY" scripts/bench_rtu_client.py direct "$WORK/direct-a" "$COUNT" >> "$RESULTS"

# (b) through zonegate, once per line setting.
for BAUD in 9600 19200 115200; do
  start_pair "gw$BAUD"
  "$ZG" sim --rtu "$WORK/gw$BAUD-b" --units 1 >/dev/null 2>&1 &
  PIDS+=($!)
  PORT=$(free_port)
  cat > "$WORK/model-$BAUD.yaml" <<YAML
facility: bench
zones:
  - zone_id: OPS
    security_level_target: 1
    networks: [127.0.0.1/32]
    assets: [bench master]
  - zone_id: FIELD
    security_level_target: 1
    assets: [bus devices]
conduits:
  - conduit_id: C-BENCH
    connects: [OPS, FIELD]
    gateway:
      listen: 127.0.0.1:$PORT
      upstream: rtu://$WORK/gw$BAUD-a?baud=$BAUD&parity=none
      request_timeout: 1s
    rules:
      - id: read
        from: [127.0.0.1/32]
        unit_ids: [1]
        functions: [read_holding_registers]
        holding: 0-99
audit:
  path: $WORK/audit-$BAUD.log
  sync: batch
YAML
  "$ZG" run -c "$WORK/model-$BAUD.yaml" > "$WORK/gw-$BAUD.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$WORK/gw-$BAUD.out" 2>/dev/null && break; sleep 0.05; done
  "$PY" scripts/bench_rtu_client.py "zonegate@$BAUD" "127.0.0.1:$PORT" "$COUNT" >> "$RESULTS"
done

"$PY" - "$RESULTS" <<'PYEOF' | tee ${OUT:+"$OUT"}
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
res = {r[0]: dict(tps=float(r[1]), p50=float(r[2]), p99=float(r[3]), errors=int(r[4])) for r in rows}
d = res["direct"]
print("Closed loop, 1 master, FC 3 read of 10 registers (8-char request, 25-char response).")
print("| path | tx/s | p50 µs | p99 µs | errors | added p50 µs | of which t3.5 µs | line time µs | added / line time | (added - t3.5) / line time |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| direct (pty) | {d['tps']:.0f} | {d['p50']:.0f} | {d['p99']:.0f} | {d['errors']} | | | | | |")
for baud in (9600, 19200, 115200):
    r = res[f"zonegate@{baud}"]
    char_us = 11 * 1e6 / baud
    t35 = 1750.0 if baud > 19200 else 3.5 * char_us
    line = 33 * char_us + 2 * t35
    added = r["p50"] - d["p50"]
    print(f"| zonegate, rtu:// {baud} baud | {r['tps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['errors']} | "
          f"{added:.0f} | {t35:.0f} | {line:.0f} | {100*added/line:.1f} % | {100*(added-t35)/line:.1f} % |")
PYEOF
