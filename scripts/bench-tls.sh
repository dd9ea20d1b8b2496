#!/usr/bin/env bash
# bench-tls.sh: Modbus/TCP Security throughput: zonegate's TLS listener vs its plaintext
# listener vs haproxy terminating TLS (`verify required`) in front of the same device.
#
# Loopback, ports chosen at run time. `zonegate sim` is the device. Certificates are made at
# run time with `zonegate cert` (lab CA, server certificate, an Operator client certificate).
# zonegate-loadgen drives each target (closed loop, FC 3 reads of 10 registers, mutual TLS
# with the client certificate where the target speaks TLS, resumption off):
#   - persistent connections at 1, 16 and 64 connections: req/s, p50, p99;
#   - full handshakes per second: a new connection (full handshake, then one read) per
#     request, at 16 connections (`--new-connection-each`).
# ONE interleaved run by default (--rounds 1): for each load, every target once, in an order
# rotated per round. Prints a markdown table; never a pass/fail on timing.
#
# Usage: scripts/bench-tls.sh [--conns "1,16,64"] [--rounds 1] [--duration 5] [--warmup 0.5]
#                             [--hs-conns 16] [--no-haproxy] [--no-build] [--out DIR]
#                             [--share N] [--threads N]
#   --share N   adds zonegate-tls-shared: the TLS listener with `max_upstream_in_flight: N`
#               (sessions share the device connections, N requests in flight on each)
#   --threads N adds zonegate-tls-tN: the TLS listener on N session threads
#               (`zonegate run --threads N`; the others run on the default)
set -euo pipefail

THREADS=0; SHARE=0; CONNS="1,16,64"; ROUNDS=1; DURATION=5; WARMUP=0.5; HS_CONNS=16; HAPROXY=1; BUILD=1; OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --conns) CONNS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --hs-conns) HS_CONNS="$2"; shift 2 ;;
    --no-haproxy) HAPROXY=0; shift ;;
    --share) SHARE="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-tls.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BENCH_BIN_DIR:-$ROOT/target/release}"
if [[ -n "$OUT" ]]; then mkdir -p "$OUT"; WORK="$(cd "$OUT" && pwd)"; KEEP=1
else WORK="$(mktemp -d -t zonegate-bench-tls.XXXXXX)"; KEEP=0; fi
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [[ $KEEP -eq 0 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[bench-tls $(date -u +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port seconds pid
  local i
  for i in $(seq $(( $2 * 20 ))); do
    kill -0 "$3" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

if [[ $BUILD -eq 1 ]]; then
  log "building release binaries (cargo build --release -p zonegate -p zonegate-loadgen)"
  (cd "$ROOT" && cargo build --release -p zonegate -p zonegate-loadgen >&2)
fi
for b in zonegate zonegate-loadgen; do
  [[ -x "$BIN/$b" ]] || { echo "missing $BIN/$b (build it or drop --no-build)" >&2; exit 2; }
done
if [[ $HAPROXY -eq 1 ]] && ! command -v haproxy >/dev/null; then log "no haproxy: leaving it out"; HAPROXY=0; fi

PKI="$WORK/pki"
"$BIN/zonegate" cert ca --dir "$PKI" >/dev/null
"$BIN/zonegate" cert server --dir "$PKI" --name gateway --san localhost --san 127.0.0.1 >/dev/null
"$BIN/zonegate" cert client --dir "$PKI" --name bench --role Operator >/dev/null
TLS_ARGS=(--tls-ca "$PKI/ca.pem" --tls-cert "$PKI/bench.pem" --tls-key "$PKI/bench.key" --tls-server-name localhost)

"$BIN/zonegate" sim --listen 127.0.0.1:0 >"$WORK/sim.log" 2>&1 &
PIDS+=($!); SIM_PID=$!
SIM_ADDR=""
for _ in $(seq 200); do
  SIM_ADDR="$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$WORK/sim.log" | head -n1)"
  [[ -n "$SIM_ADDR" && "${SIM_ADDR##*:}" != "0" ]] && break
  kill -0 "$SIM_PID" 2>/dev/null || break
  sleep 0.05
done
[[ -n "$SIM_ADDR" ]] || { echo "zonegate sim did not start"; cat "$WORK/sim.log"; exit 1; } >&2

model() { # listen tls(0|1)
  cat <<EOF
facility: "zonegate TLS benchmark"
zones:
  - zone_id: Z1-CTRL
    purdue_level: 1
    security_level_target: "SL 2"
    assets: ["simulated PLC"]
    allowed_conduits: [C1-BENCH]
  - zone_id: Z2-OPS
    purdue_level: 2
    security_level_target: "SL 2"
    networks: [127.0.0.1/32]
    allowed_conduits: [C1-BENCH]
conduits:
  - conduit_id: C1-BENCH
    connects: [Z2-OPS, Z1-CTRL]
    security_level: "SL 2"
    gateway:
      listen: $1
      upstream: tcp://$SIM_ADDR
      idle_timeout: 60s
      max_connections: 256
      max_connections_per_source: 256
      # One upstream connection per client, as haproxy has: the pool must not be the limit.
      max_upstream_connections: 256
EOF
  if [[ "$4" != 0 ]]; then
    printf '      max_upstream_in_flight: %s\n' "$4"
  fi
  if [[ "$2" == 1 ]]; then
    printf '      tls:\n        cert: %s\n        key: %s\n        client_ca: %s\n' \
      "$PKI/gateway.pem" "$PKI/gateway.key" "$PKI/ca.pem"
  fi
  cat <<EOF
    rules:
      - id: bench-read
        from: [Z2-OPS]
$( [[ "$2" == 1 ]] && echo "        roles: [Operator]" )
        functions: [read_holding_registers]
        holding: 0-199
audit:
  path: $WORK/events-$3.jsonl
  sync: writes
EOF
}

declare -A ADDR=() TLS=()
start_gateway() { # name tls [share] [threads]
  local port pid attempt
  local threads=()
  [[ "${4:-0}" != 0 ]] && threads=(--threads "$4")
  for attempt in 1 2 3; do
    port="$(free_port)"
    model "127.0.0.1:$port" "$2" "$1" "${3:-0}" >"$WORK/model-$1.yaml"
    "$BIN/zonegate" run "${threads[@]}" -c "$WORK/model-$1.yaml" >"$WORK/$1.out" 2>"$WORK/$1.log" &
    pid=$!; PIDS+=("$pid")
    if wait_port "$port" 15 "$pid"; then ADDR[$1]="127.0.0.1:$port"; TLS[$1]="$2"; log "$1 on $port"; return 0; fi
    kill "$pid" 2>/dev/null || true
  done
  echo "zonegate run ($1) did not start:"; tail -n 20 "$WORK/$1.log"; exit 1
}
TARGETS=(zonegate-plain zonegate-tls)
start_gateway zonegate-plain 0
start_gateway zonegate-tls 1
if [[ "$SHARE" != 0 ]]; then
  TARGETS+=(zonegate-tls-shared)
  start_gateway zonegate-tls-shared 1 "$SHARE"
fi
if [[ "$THREADS" != 0 ]]; then
  TARGETS+=("zonegate-tls-t$THREADS")
  start_gateway "zonegate-tls-t$THREADS" 1 0 "$THREADS"
fi

if [[ $HAPROXY -eq 1 ]]; then
  cat "$PKI/gateway.pem" "$PKI/gateway.key" >"$WORK/haproxy.pem"
  port="$(free_port)"
  cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend mbaps
    bind 127.0.0.1:$port ssl crt $WORK/haproxy.pem verify required ca-file $PKI/ca.pem
    default_backend device
backend device
    server sim $SIM_ADDR
EOF
  haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if wait_port "$port" 10 "$pid"; then
    TARGETS+=(haproxy-tls); ADDR[haproxy-tls]="127.0.0.1:$port"; TLS[haproxy-tls]=1
    log "haproxy-tls on $port ($(haproxy -v | head -n1 | cut -d' ' -f1-3), nbthread 2, verify required)"
  else
    log "haproxy did not start: leaving it out"; cat "$WORK/haproxy.log" >&2
  fi
fi

RESULTS="$WORK/results.jsonl"; : >"$RESULTS"
run_one() { # target conns round kind(persist|handshake)
  local extra=() t="$1"
  [[ "${TLS[$t]}" == 1 ]] && extra+=("${TLS_ARGS[@]}")
  [[ "$4" == handshake ]] && extra+=(--new-connection-each)
  local out
  out="$(timeout $(( ${DURATION%.*} + 30 )) "$BIN/zonegate-loadgen" --target "${ADDR[$t]}" --label "$t" \
    -c "$2" --duration "${DURATION}s" --warmup "${WARMUP}s" --address 100 --count 10 "${extra[@]}")" \
    || { log "loadgen failed for $t ($4, c=$2)"; return 0; }
  echo "{\"round\": $3, \"kind\": \"$4\", \"result\": $out}" >>"$RESULTS"
  log "$4 c=$2 $t: $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.0f req/s p50 %s us p99 %s us errors %s" % (d["rps"], d["p50_us"], d["p99_us"], d["errors"]))' "$out")"
}
IFS=',' read -r -a CONN_LIST <<<"$CONNS"
n=${#TARGETS[@]}
for r in $(seq 0 $((ROUNDS - 1))); do
  for c in "${CONN_LIST[@]}"; do
    for k in $(seq 0 $((n - 1))); do run_one "${TARGETS[$(( (k + r) % n ))]}" "$c" "$r" persist; done
  done
  for k in $(seq 0 $((n - 1))); do
    t="${TARGETS[$(( (k + r) % n ))]}"
    [[ "${TLS[$t]}" == 1 ]] && run_one "$t" "$HS_CONNS" "$r" handshake
  done
done

python3 - "$RESULTS" "$ROUNDS" "$DURATION" <<'PY'
import json, statistics, sys
path, rounds, duration = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = {}
for row in rows:
    r = row["result"]
    by.setdefault((row["kind"], r["connections"], r["label"]), []).append(r)
med = lambda rs, k: statistics.median(x[k] for x in rs)
print(f"FC 3 read of 10 registers, closed loop, loopback, `zonegate sim` as the device; median of "
      f"{rounds} interleaved round(s) of {duration} s; mutual TLS with an Operator client certificate.\n")
print("| load | conns | target | req/s | p50 µs | p99 µs | errors | vs haproxy-tls (medians) | paired per round, median |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
rps_of = {(row["kind"], row["result"]["connections"], row["result"]["label"], row.get("round")): row["result"]["rps"] for row in rows}
for (kind, c, t) in sorted(by, key=lambda k: (k[0] != "persist", k[1], k[2])):
    rs = by[(kind, c, t)]
    h = by.get((kind, c, "haproxy-tls"))
    tls_target = t.startswith("zonegate-tls")
    vs = f"{med(rs, 'rps') / med(h, 'rps'):.2f}x" if h and tls_target else ""
    # The same round's haproxy run: the ratio that the machine's drift between rounds moves least.
    pairs = [v / rps_of[(kind, c, "haproxy-tls", r)] for (k2, c2, t2, r), v in rps_of.items()
             if (k2, c2, t2) == (kind, c, t) and (kind, c, "haproxy-tls", r) in rps_of and rps_of[(kind, c, "haproxy-tls", r)]]
    paired = f"{statistics.median(pairs):.2f}x" if pairs and tls_target else ""
    load = "persistent" if kind == "persist" else "full handshake + 1 read"
    print(f"| {load} | {c} | {t} | {med(rs, 'rps'):,.0f} | {med(rs, 'p50_us'):.0f} | {med(rs, 'p99_us'):.0f} | "
          f"{sum(x['errors'] for x in rs)} | {vs} | {paired} |")
PY
if [[ $KEEP -eq 1 ]]; then log "raw results: $RESULTS"; fi
