#!/usr/bin/env bash
# Benchmark: `zonegate analyze` (release build) against tshark on the largest shared capture and
# on a 20x copy (each copy on its own client ports, so it is 20x the flows and ADUs, not 19
# retransmissions), same run. Reports MB/s, ADUs/s and peak RSS (/usr/bin/time -v).
#
# Usage: scripts/bench-analyze.sh [CAPTURE]   (default ../shared/captures/ModbusTCP.pcap)
# Needs: tshark, python3, /usr/bin/time. The machine should be quiet; say so when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
capture=${1:-../shared/captures/ModbusTCP.pcap}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p zonegate
bin=target/release/zonegate

# The 20x copy: copy k moves every non-502 TCP port by k*7 (and the time by k * the span).
python3 - "$capture" "$work/x20.pcap" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
hdr, body = data[:24], data[24:]
magic = struct.unpack('<I', hdr[:4])[0]
end = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
records, at = [], 0
while at + 16 <= len(body):
    ts, us, incl, orig = struct.unpack(end + 'IIII', body[at:at + 16])
    records.append((ts, us, orig, bytearray(body[at + 16:at + 16 + incl])))
    at += 16 + incl
span = records[-1][0] - records[0][0] + 1
with open(dst, 'wb') as out:
    out.write(hdr)
    for k in range(20):
        for ts, us, orig, frame in records:
            f = bytearray(frame)
            if len(f) >= 38 and f[12:14] == b'\x08\x00' and f[23] == 6:
                ihl = (f[14] & 15) * 4
                t = 14 + ihl
                sport, dport = struct.unpack('>HH', f[t:t + 4])
                if sport != 502: sport = (sport + 7 * k) % 65536
                if dport != 502: dport = (dport + 7 * k) % 65536
                f[t:t + 4] = struct.pack('>HH', sport, dport)
            out.write(struct.pack(end + 'IIII', ts + k * span, us, len(f), orig))
            out.write(f)
PY

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -v "$@" >"$work/out" 2>"$work/time" || true
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$work/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
  echo "$label $secs $rss"
}

printf '| input | tool | MB | ADUs | seconds | MB/s | ADUs/s | peak RSS (MiB) |\n|---|---|---|---|---|---|---|---|\n'
for input in "$capture" "$work/x20.pcap"; do
  name=$(basename "$input")
  mb=$(python3 -c "import os,sys; print(os.path.getsize(sys.argv[1])/1e6)" "$input")
  adus=$("$bin" analyze --format json "$input" | python3 -c "import json,sys; r=json.load(sys.stdin); print(r['requests']+r['responses'])" || true)
  for tool in zonegate tshark; do
    if [ "$tool" = zonegate ]; then
      read -r _ secs rss < <(measure z "$bin" analyze --format json "$input")
    else
      read -r _ secs rss < <(measure t tshark -n -r "$input" -d tcp.port==502,mbtcp -T fields -e modbus.func_code)
    fi
    python3 -c "
import sys
name, tool, mb, adus, secs, rss = sys.argv[1:]
mb, adus, secs, rss = float(mb), int(adus), max(float(secs), 1e-3), int(rss)
print(f'| {name} | {tool} | {mb:.1f} | {adus} | {secs:.2f} | {mb/secs:.1f} | {adus/secs:,.0f} | {rss/1024:.1f} |')
" "$name" "$tool" "$mb" "$adus" "$secs" "$rss"
  done
done
