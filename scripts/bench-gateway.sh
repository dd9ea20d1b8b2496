#!/usr/bin/env bash
# bench-gateway.sh: throughput and latency of zonegate against a direct connection and haproxy.
#
# All on loopback with ports chosen at run time: `zonegate sim` is the device; `zonegate run`
# stands in front of it (enforce mode, events on: audit log to a temp file); haproxy in plain TCP
# mode (nbthread 2) is the generic-proxy floor. zonegate-loadgen (closed loop, FC 3 reads of 10
# registers, or FC 16 writes of 10 in-bounds values with --op write) drives every target in
# INTERLEAVED rounds: for each concurrency, R rounds, each round runs every target once, in an
# order rotated from round to round. The table shows the median over rounds.
# Never a pass/fail on timing: it prints numbers.
#
# Usage: scripts/bench-gateway.sh [options]
#   --audit LIST     audit modes of the zonegate targets, comma separated: off | writes | every |
#                    batch (default: writes). One gateway per mode, all in the same interleaved
#                    run, e.g. --audit off,writes,every for the audit issue. `off` = no audit
#                    section (events go to the gateway's stdout, discarded).
#   --monitor LIST   live monitor of the zonegate targets, comma separated: off | on (default:
#                    off). `on` adds a `monitor:` section (default thresholds, no baseline);
#                    --monitor off,on runs a monitor-off and a monitor-on gateway per audit
#                    mode in the same interleaved run (the monitor issue's on/off ratio).
#   --share LIST     device connections of the zonegate targets, comma separated: off | N
#                    (default: off). N sets `max_upstream_in_flight: N`: the sessions share the
#                    device connections, N requests in flight on each, coalesced into one write
#                    (one connection per N client connections). --share off,16 runs both
#                    gateways of each audit/monitor mode in the same interleaved run.
#   --threads LIST   data-path threads of the zonegate targets, comma separated: default (one
#                    session thread per CPU but one) | N (`zonegate run --threads N`) | wsN (the
#                    work-stealing runtime with N workers, `--work-stealing --threads N`);
#                    default: default. --threads default,1,ws2 runs the three in one run.
#   --op read|write  the load: FC 3 reads (default) or FC 16 writes inside the rule's bounds
#   --conns LIST     concurrencies (default "1,16,64")
#   --rounds R       rounds per concurrency (default 3)
#   --duration S     measured seconds per run (default 5)
#   --warmup S       unmeasured seconds before each run (default 0.5)
#   --no-haproxy     leave haproxy out
#   --no-build       use the binaries in target/release as they are
#   --out DIR        keep the raw JSON results and logs in DIR (default: a temp dir, removed)
#   --report FILE    only print the table of an earlier run's DIR/results.jsonl (or crowd.jsonl)
# Crowd modes (instead of the --conns table; both may be given, each runs in its own pass):
#   --idle N         N idle client connections (each makes one FC 3 read first, as an HMI does)
#                    held open to each target in turn while --well clients run the closed loop;
#                    the table gives the target's RSS with none and with N (VmRSS/VmHWM).
#   --hostile N      N hostile connections: N/2 slowloris (an FC 3 request one byte every 2 s,
#                    never completed) and N/2 never-read (pipelined FC 3 requests written as fast
#                    as the socket takes them, at most --noread-bytes each, replies never read).
#   --noread-bytes B request bytes one never-read connection writes at most (default 65536: 5,461
#                    requests whose replies, 155 KiB, overfill a default 128 KiB receive buffer,
#                    so the target's send buffer fills; more is a CPU flood of the device)
#   --well C         well-behaved closed-loop connections during a crowd run (default 1)
#   --idle-sources K spread the idle connections over 127.0.0.2..127.0.0.(K+1) (default: 1
#                    source, 127.0.0.1; needed only past ~28,000 connections per target)
# Crowd runs raise `ulimit -n` (to 2 x N + 4096 when root, else to the hard limit), and the
# gateways' max_connections / max_connections_per_source and haproxy's maxconn to N + 64.
# Default run: 3 x 3 rounds x 3 targets x 5.5 s = about 2.5 minutes after the build.
set -euo pipefail

AUDIT="writes"
MONITOR="off"
SHARE="off"
THREADS="default"
OP="read"
CONNS="1,16,64"
ROUNDS=3
DURATION=5
WARMUP=0.5
HAPROXY=1
BUILD=1
OUT=""
REPORT=""
IDLE=0
HOSTILE=0
WELL=1
IDLE_SOURCES=0
NOREAD_BYTES=65536
while [[ $# -gt 0 ]]; do
  case "$1" in
    --audit) AUDIT="$2"; shift 2 ;;
    --monitor) MONITOR="$2"; shift 2 ;;
    --share) SHARE="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --op) OP="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --no-haproxy) HAPROXY=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --report) REPORT="$2"; shift 2 ;;
    --idle) IDLE="$2"; shift 2 ;;
    --hostile) HOSTILE="$2"; shift 2 ;;
    --well) WELL="$2"; shift 2 ;;
    --idle-sources) IDLE_SOURCES="$2"; shift 2 ;;
    --noread-bytes) NOREAD_BYTES="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-gateway.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$OP" in read|write) ;; *) echo "--op must be read or write" >&2; exit 2 ;; esac
for v in "$IDLE" "$HOSTILE" "$WELL" "$IDLE_SOURCES" "$NOREAD_BYTES"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "--idle, --hostile, --well, --idle-sources take a number" >&2; exit 2; }
done
CROWD=$(( IDLE > 0 || HOSTILE > 0 ))
MAXC=256  # the gateways' max_connections (and per source), haproxy's maxconn floor
if [[ $CROWD -eq 1 ]]; then
  MAXC=$(( (IDLE > HOSTILE ? IDLE : HOSTILE) + WELL + 64 ))
  (( MAXC < 256 )) && MAXC=256
  need=$(( 2 * MAXC + 4096 ))  # haproxy: a client and a server socket per connection
  if (( $(ulimit -Hn) < need )); then ulimit -Hn "$need" 2>/dev/null || true; fi
  ulimit -Sn "$(ulimit -Hn)"
fi
# haproxy holds two sockets per connection and refuses to start if 2 x maxconn does not fit in
# its fd limit: where the hard limit cannot be raised (no CAP_SYS_RESOURCE), its maxconn and
# its share of the crowd are lowered to fit, and the table says so (the N column).
HAPROXY_MAXC=$MAXC
HAPROXY_CROWD_MAX=$MAXC
if [[ $CROWD -eq 1 ]] && (( 2 * MAXC + 200 > $(ulimit -Hn) )); then
  HAPROXY_MAXC=$(( ($(ulimit -Hn) - 200) / 2 ))
  HAPROXY_CROWD_MAX=$(( HAPROXY_MAXC - WELL - 16 ))
fi

report() { # results op rounds duration targets...
  python3 - "$@" <<'PY'
import json, statistics, sys
path, op, rounds, duration, *targets = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
if not targets:  # --report: targets in order of first appearance, haproxy last
    for row in rows:
        if row["result"]["label"] not in targets:
            targets.append(row["result"]["label"])
    targets.sort(key=lambda t: (t != "direct", t == "haproxy"))
    op = rows[0]["result"]["op"] if rows else op
    rounds = str(1 + max((row["round"] for row in rows), default=0))
    duration = str(rows[0]["result"]["duration_s"]) if rows else duration
by = {}
for row in rows:
    r = row["result"]
    by.setdefault((r["connections"], r["label"]), []).append(r)
conns = sorted({c for c, _ in by})
med = lambda rs, k: statistics.median(x[k] for x in rs)
zg = [t for t in targets if t.startswith("zonegate")]
print(f"Load: closed loop, {'FC 3 read' if op == 'read' else 'FC 16 write'} of 10 registers; "
      f"median of {rounds} interleaved rounds of {duration} s; loopback, `zonegate sim` as the device.\n")
print("| conns | target | req/s | (min-max over rounds) | p50 µs | p90 µs | p99 µs | p999 µs | errors | req/s vs direct | vs haproxy | p99 vs haproxy |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
# Results of loadgens before p90/p999 were recorded print an empty cell.
pct = lambda rs, k: f"{med(rs, k):.0f}" if all(k in x for x in rs) else ""
for c in conns:
    d = by.get((c, "direct"))
    h = by.get((c, "haproxy"))
    for t in targets:
        rs = by.get((c, t))
        if not rs:
            continue
        rps = med(rs, "rps")
        vs_d = f"{rps / med(d, 'rps'):.2f}x" if d and t != "direct" else ""
        vs_h = f"{rps / med(h, 'rps'):.2f}x" if h and t.startswith("zonegate") else ""
        errs = sum(x["errors"] for x in rs)
        spread = f"{min(x['rps'] for x in rs):,.0f}-{max(x['rps'] for x in rs):,.0f}"
        p99_h = f"{med(rs, 'p99_us') / med(h, 'p99_us'):.2f}x" if h and t.startswith("zonegate") else ""
        print(f"| {c} | {t} | {rps:,.0f} | {spread} | {med(rs, 'p50_us'):.0f} | {pct(rs, 'p90_us')} | "
              f"{med(rs, 'p99_us'):.0f} | {pct(rs, 'p999_us')} | {errs} | {vs_d} | {vs_h} | {p99_h} |")
if 1 in conns and by.get((1, "direct")):
    base = med(by[(1, "direct")], "p50_us")
    print()
    print(f"Added p50 latency at 1 connection (target p50 - direct p50 {base:.0f} µs):")
    for t in targets:
        if t != "direct" and by.get((1, t)):
            print(f"- {t}: {med(by[(1, t)], 'p50_us') - base:+.0f} µs")
PY
}
crowd_report() { # crowd.jsonl
  python3 - "$@" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mb = lambda r, when, k: (r.get("rss") or {}).get(when, {}) or {}
def cell(v, fmt="{:.1f}"):
    return "" if v is None else fmt.format(v)
for mode in ("idle", "hostile"):
    rs = [x for x in rows if x["mode"] == mode]
    if not rs:
        continue
    r0 = rs[0]["result"]
    if mode == "idle":
        print(f"\nIdle: N idle connections (one FC 3 read each first) held open while "
              f"{r0['connections']} well-behaved connection(s) run the closed loop (FC 3 of 10) "
              f"for {r0['duration_s']} s; RSS of the target (VmRSS) before the crowd, with it, "
              f"and its peak (VmHWM, reset before the run).\n")
        print("| target | N idle | connected | RSS none MB | RSS with N MB | peak MB | MB per 1k conns | req/s | p50 µs | p99 µs | errors | connect errors | closed by target |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        print(f"\nHostile: N connections, half slowloris (one byte every 2 s, never complete), half "
              f"never-read (pipelined FC 3, replies unread, <= {rs[0].get('noread_bytes', 1048576)} bytes each), while "
              f"{r0['connections']} well-behaved connection(s) run the closed loop for "
              f"{r0['duration_s']} s.\n")
        print("| target | N hostile | RSS none MB | RSS with N MB | peak MB | req/s | p50 µs | p99 µs | errors | slowloris closed by target | never-read closed by target | never-read blocked | median s to close |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for x in rs:
        r = x["result"]; c = r.get("crowd") or {}; rss = r.get("rss") or {}
        before = (rss.get("before") or {}).get("rss_mb")
        loaded = (rss.get("loaded") or {}).get("rss_mb")
        end = rss.get("end") or {}
        peak = max(filter(None, [end.get("hwm_mb"), rss.get("max_sampled_mb")]), default=None)
        # No answer in the whole run: no latency to show (the first error says why).
        lat = f"{r['p50_us']} | {r['p99_us']}" if r["requests"] else "- | -"
        common = f"{r['rps']:,.0f} | {lat} | {r['errors']}"
        if mode == "idle":
            i = c.get("idle", {})
            per = (loaded - before) / i["connected"] * 1000 if before is not None and loaded is not None and i.get("connected") else None
            print(f"| {r['label']} | {x['n']} | {i.get('connected', 0)} | {cell(before)} | {cell(loaded)} | {cell(peak)} | {cell(per)} | {common} | "
                  f"{i.get('connect_errors', 0) + i.get('request_errors', 0)} | {i.get('closed_by_target', 0)} |")
        else:
            s = c.get("slowloris", {}); n = c.get("noread", {})
            med = "/".join(cell(k.get("closed_after_s_median"), "{:.1f}") or "-" for k in (s, n))
            print(f"| {r['label']} | {x['n']} | {cell(before)} | {cell(loaded)} | {cell(peak)} | {common} | "
                  f"{s.get('closed_by_target', 0)}/{s.get('connected', 0)} | {n.get('closed_by_target', 0)}/{n.get('connected', 0)} | "
                  f"{n.get('blocked', 0)} | {med} |")
for x in rows:
    if x["result"].get("first_error"):
        print(f"- {x['mode']} {x['n']}, {x['result']['label']}: first error of the well-behaved client: {x['result']['first_error']}")
PY
}
if [[ -n "$REPORT" ]]; then
  if grep -q '"mode"' "$REPORT"; then crowd_report "$REPORT"; else report "$REPORT" "$OP" "$ROUNDS" "$DURATION"; fi
  exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BENCH_BIN_DIR:-$ROOT/target/release}"  # override to bench other builds
if [[ -n "$OUT" ]]; then
  mkdir -p "$OUT"; WORK="$(cd "$OUT" && pwd)"; KEEP=1
else
  WORK="$(mktemp -d -t zonegate-bench.XXXXXX)"; KEEP=0
fi
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

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port seconds pid
  local i
  for i in $(seq $(( $2 * 20 ))); do
    if ! kill -0 "$3" 2>/dev/null; then return 1; fi
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
if [[ $HAPROXY -eq 1 ]] && ! command -v haproxy >/dev/null; then
  log "haproxy not installed: leaving it out"; HAPROXY=0
fi

# --- the device ------------------------------------------------------------------------------
"$BIN/zonegate" sim --listen 127.0.0.1:0 >"$WORK/sim.log" 2>&1 &
PIDS+=($!); SIM_PID=$!
SIM_ADDR=""
for _ in $(seq 200); do
  SIM_ADDR="$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$WORK/sim.log" | head -n1)"
  [[ -n "$SIM_ADDR" && "${SIM_ADDR##*:}" != "0" ]] && break
  kill -0 "$SIM_PID" 2>/dev/null || break
  sleep 0.05
done
[[ -n "$SIM_ADDR" ]] || { echo "zonegate sim did not start:"; cat "$WORK/sim.log"; exit 1; } >&2
log "device: zonegate sim on $SIM_ADDR"

# --- the gateways ----------------------------------------------------------------------------
model() { # listen audit-mode events-file monitor share
  cat <<EOF
facility: "zonegate benchmark"
standard: "IEC 62443-3-2:2020"
zones:
  - zone_id: Z1-CTRL
    name: "Control (the simulated device)"
    purdue_level: 1
    security_level_target: "SL 2"
    assets: ["simulated PLC"]
    allowed_conduits: [C1-BENCH]
  - zone_id: Z2-OPS
    name: "Operations (the load generator)"
    purdue_level: 2
    security_level_target: "SL 2"
    networks: [127.0.0.0/8]  # 127.0.0.x aliases as extra sources
    allowed_conduits: [C1-BENCH]
conduits:
  - conduit_id: C1-BENCH
    name: "benchmark conduit"
    connects: [Z2-OPS, Z1-CTRL]
    security_level: "SL 2"
    gateway:
      listen: $1
      upstream: tcp://$SIM_ADDR
      mode: enforce
      deny: exception
      idle_timeout: 60s
      request_timeout: 2s
      max_connections: $MAXC
      max_connections_per_source: $MAXC
      max_upstream_connections: 256
$( [[ "$5" != off ]] && echo "      max_upstream_in_flight: $5" )
    rules:
      - id: bench-read
        from: [Z2-OPS]
        unit_ids: [1]
        functions: [read_holding_registers]
        holding: 0-199
      - id: bench-setpoints
        from: [Z2-OPS]
        unit_ids: [1]
        functions: [write_multiple_registers]
        holding: 100-109
        values: {min: 180, max: 240}
EOF
  if [[ "$2" != "off" ]]; then
    printf 'audit:\n  path: %s\n  sync: %s\n' "$3" "$2"
  fi
  if [[ "$4" == "on" ]]; then
    printf 'monitor:\n  queue: 8192\n'
  fi
}

declare -A TARGET_ADDR=()
declare -A TARGET_PID=()
TARGETS=(direct)
TARGET_ADDR[direct]="$SIM_ADDR"
IFS=',' read -r -a AUDIT_MODES <<<"$AUDIT"
IFS=',' read -r -a MONITOR_MODES <<<"$MONITOR"
IFS=',' read -r -a SHARE_MODES <<<"$SHARE"
IFS=',' read -r -a THREAD_MODES <<<"$THREADS"
KEYS=()
for mode in "${AUDIT_MODES[@]}"; do
  case "$mode" in off|writes|every|batch) ;; *) echo "bad audit mode $mode" >&2; exit 2 ;; esac
  for mon in "${MONITOR_MODES[@]}"; do
  case "$mon" in off|on) ;; *) echo "bad monitor mode $mon" >&2; exit 2 ;; esac
  for share in "${SHARE_MODES[@]}"; do
  [[ "$share" == off || "$share" =~ ^[1-9][0-9]*$ ]] || { echo "bad share mode $share" >&2; exit 2; }
  for threads in "${THREAD_MODES[@]}"; do
  case "$threads" in
    default) thread_args=() ;;
    ws[1-9]*) thread_args=(--work-stealing --threads "${threads#ws}") ;;
    [1-9]*) thread_args=(--threads "$threads") ;;
    *) echo "bad threads mode $threads" >&2; exit 2 ;;
  esac
  name="zonegate"; [[ ${#AUDIT_MODES[@]} -gt 1 ]] && name="zonegate-$mode"
  [[ ${#MONITOR_MODES[@]} -gt 1 ]] && name="$name-monitor-$mon"
  [[ "$share" != off ]] && name="$name-shared$share"
  [[ "$threads" != default ]] && name="$name-t$threads"
  key="$mode-$mon-$share-$threads"
  KEYS+=("$key")
  ok=0
  for attempt in 1 2 3; do
    port="$(free_port)"
    model "127.0.0.1:$port" "$mode" "$WORK/events-$key.jsonl" "$mon" "$share" >"$WORK/model-$key.yaml"
    events_out="$WORK/gateway-$key.out"
    [[ "$mode" == off ]] && events_out=/dev/null  # no audit section: events go to stdout
    "$BIN/zonegate" run -c "$WORK/model-$key.yaml" "${thread_args[@]}" >"$events_out" 2>"$WORK/gateway-$key.log" &
    pid=$!
    PIDS+=("$pid")
    if wait_port "$port" 15 "$pid"; then ok=1; break; fi
    log "gateway ($key) attempt $attempt did not listen; log:"; tail -n 20 "$WORK/gateway-$key.log" >&2
    kill "$pid" 2>/dev/null || true
  done
  [[ $ok -eq 1 ]] || { echo "zonegate run did not start" >&2; exit 1; }
  TARGETS+=("$name"); TARGET_ADDR[$name]="127.0.0.1:$port"; TARGET_PID[$name]=$pid
  log "$name: zonegate run on 127.0.0.1:$port (audit: $mode, monitor: $mon, max_upstream_in_flight: ${share/off/1}, threads: $threads)"
  done
  done
  done
done

if [[ $HAPROXY -eq 1 ]]; then
  ok=0
  for attempt in 1 2 3; do
    port="$(free_port)"
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn $(( HAPROXY_MAXC > 4096 || CROWD == 1 ? HAPROXY_MAXC : 4096 ))
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend modbus
    bind 127.0.0.1:$port
    default_backend device
backend device
    server sim $SIM_ADDR
EOF
    haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if wait_port "$port" 10 "$pid"; then ok=1; break; fi
    kill "$pid" 2>/dev/null || true
  done
  if [[ $ok -eq 1 ]]; then
    TARGETS+=(haproxy); TARGET_ADDR[haproxy]="127.0.0.1:$port"; TARGET_PID[haproxy]=$pid
    log "haproxy: $(haproxy -v | head -n1 | cut -d' ' -f1-3) on 127.0.0.1:$port (mode tcp, nbthread 2)"
  else
    log "haproxy did not start: leaving it out"; cat "$WORK/haproxy.log" >&2
  fi
fi

# --- crowd runs (--idle, --hostile) ----------------------------------------------------------
if [[ $CROWD -eq 1 ]]; then
  CROWD_RESULTS="$WORK/crowd.jsonl"
  : >"$CROWD_RESULTS"
  SOURCES=()
  if (( IDLE_SOURCES > 0 )); then
    for i in $(seq 2 $(( IDLE_SOURCES + 1 ))); do SOURCES+=("127.0.0.$i"); done
  fi
  SRC_ARG=()
  [[ ${#SOURCES[@]} -gt 0 ]] && SRC_ARG=(--idle-source "$(IFS=,; echo "${SOURCES[*]}")")
  MODES=()
  (( IDLE > 0 )) && MODES+=(idle)
  (( HOSTILE > 0 )) && MODES+=(hostile)
  log "crowd runs: ${MODES[*]}; ulimit -n $(ulimit -n); max_connections/maxconn $MAXC"
  START=$(date +%s)
  for mode in "${MODES[@]}"; do
    for r in $(seq 0 $((ROUNDS - 1))); do
      for t in "${TARGETS[@]}"; do
        [[ "$t" == direct ]] && continue  # the crowd is for the gateways
        n=$IDLE; [[ "$mode" == hostile ]] && n=$HOSTILE
        if [[ "$t" == haproxy ]] && (( n > HAPROXY_CROWD_MAX )); then
          log "haproxy: fd hard limit $(ulimit -Hn) fits maxconn $HAPROXY_MAXC: its $mode crowd is $HAPROXY_CROWD_MAX, not $n"
          n=$HAPROXY_CROWD_MAX
        fi
        if [[ "$mode" == idle ]]; then
          args=(--idle-conns "$n" --idle-request "${SRC_ARG[@]}")
        else
          args=(--hostile-slowloris $(( n / 2 )) --hostile-noread $(( n - n / 2 )) \
            --slowloris-interval 2s --noread-max-bytes "$NOREAD_BYTES")
        fi
        out="$(timeout $(( ${DURATION%.*} + 120 )) "$BIN/zonegate-loadgen" --target "${TARGET_ADDR[$t]}" \
          --label "$t" -c "$WELL" --duration "${DURATION}s" --warmup "${WARMUP}s" --address 100 --count 10 \
          --rss-pid "${TARGET_PID[$t]}" "${args[@]}")" || { log "loadgen failed for $t ($mode $n)"; continue; }
        echo "{\"round\": $r, \"mode\": \"$mode\", \"n\": $n, \"noread_bytes\": $NOREAD_BYTES, \"result\": $out}" >>"$CROWD_RESULTS"
        log "$mode $n round=$((r + 1))/$ROUNDS $t: $(python3 -c '
import json, sys
d = json.loads(sys.argv[1]); c = d.get("crowd") or {}; m = d.get("rss") or {}
g = lambda k: (m.get(k) or {}).get("rss_mb")
kinds = ", ".join("%s %s/%s closed by target" % (k, v["closed_by_target"], v["connected"]) for k, v in c.items() if isinstance(v, dict))
print("%.0f req/s, p50 %s us, p99 %s us, errors %s; RSS %s -> %s MB; %s" % (d["rps"], d["p50_us"], d["p99_us"], d["errors"], g("before"), g("loaded"), kinds))' "$out")"
        sleep 2  # let the target release the crowd before the next baseline
      done
    done
  done
  log "measured for $(( $(date +%s) - START )) s"
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || log "a helper process (pid $pid) died during the run"; done
  crowd_report "$CROWD_RESULTS"
  if [[ $KEEP -eq 1 ]]; then log "raw results: $CROWD_RESULTS"; fi
  exit 0
fi

# --- interleaved rounds ----------------------------------------------------------------------
LOADGEN_OP=()
[[ "$OP" == "write" ]] && LOADGEN_OP=(--write-min 180 --write-max 240)
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
IFS=',' read -r -a CONN_LIST <<<"$CONNS"
n=${#TARGETS[@]}
START=$(date +%s)
for c in "${CONN_LIST[@]}"; do
  for r in $(seq 0 $((ROUNDS - 1))); do
    for k in $(seq 0 $((n - 1))); do
      t="${TARGETS[$(( (k + r) % n ))]}"
      out="$(timeout $(( ${DURATION%.*} + 30 )) "$BIN/zonegate-loadgen" --target "${TARGET_ADDR[$t]}" \
        --label "$t" -c "$c" --duration "${DURATION}s" --warmup "${WARMUP}s" --address 100 --count 10 \
        "${LOADGEN_OP[@]}")" || { log "loadgen failed for $t at $c connections"; continue; }
      echo "{\"round\": $r, \"result\": $out}" >>"$RESULTS"
      log "c=$c round=$((r + 1))/$ROUNDS $t: $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.0f req/s, p50 %s us, p99 %s us, errors %s" % (d["rps"], d["p50_us"], d["p99_us"], d["errors"]))' "$out")"
    done
  done
done
log "measured for $(( $(date +%s) - START )) s"

for key in "${KEYS[@]}"; do
  f="$WORK/events-$key.jsonl"
  if [[ -f "$f" ]]; then  # the audit log rotates: count every file of the chain
    log "audit ($key: audit mode, monitor, sharing): $(cat "$f"* | wc -l) records in $(ls "$f"* | wc -l) file(s), $(du -ch "$f"* | tail -n1 | cut -f1), $(cat "$f"* | grep -c '"kind":"alert"' || true) alert(s)"
  fi
done
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || log "a helper process (pid $pid) died during the run"; done

# --- the table -------------------------------------------------------------------------------
report "$RESULTS" "$OP" "$ROUNDS" "$DURATION" "${TARGETS[@]}"
if [[ $KEEP -eq 1 ]]; then log "raw results: $RESULTS"; fi
