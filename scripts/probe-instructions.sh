#!/bin/bash
# Instructions per HTTP probe run of medic (docs/proof.md, "Per-probe cost").
# usage: scripts/probe-instructions.sh MEDIC_BINARY TARGETS WINDOW_SECS [keep_alive]
# Needs valgrind and curl. One fixture serves every target; medic runs under
# callgrind in dry-run; counters are zeroed after a 20 s warm-up and dumped
# after WINDOW_SECS; instructions are divided by the runs the fixture counted.
set -u
BIN=$1; N=$2; W=$3; KA=${4:-false}
D=$(mktemp -d); cd "$D"
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
FP=$(port); AP=$(port)
"$BIN" fixture --port "$FP" > fixture.out 2>&1 & FPID=$!
{ printf "mode: dry-run\nlisten: 127.0.0.1:%s\nauth: none\ndatabase: medic.db\nservices:\n" "$AP"
  for k in $(seq 0 $((N-1))); do
    printf "  t%s:\n    probes:\n      h: { http: { url: \"http://127.0.0.1:%s/healthz?t=%s\", timeout: 1s, keep_alive: %s }, interval: 1000ms }\n" "$k" "$FP" "$k" "$KA"
  done; } > medic.yaml
MEDIC_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$D/cg.out" "$BIN" run -c medic.yaml > medic.out 2>&1 & MPID=$!
for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$AP/readyz" >/dev/null && break; sleep 1; done
sleep 20
runs() { curl -s "http://127.0.0.1:$FP/metrics" | awk '/fixture_requests_total\{path="\/healthz"\}/{print $2}'; }
callgrind_control -z "$MPID" >/dev/null
C0=$(runs); sleep "$W"; C1=$(runs)
callgrind_control -d "$MPID" >/dev/null
sleep 2
kill -TERM "$MPID"; wait "$MPID" 2>/dev/null; kill -TERM "$FPID"; wait "$FPID" 2>/dev/null
IR=$(grep -h '^summary:\|^totals:' "$D"/cg.out.1 | head -1 | awk '{print $2}')
python3 -c "import sys; r=float(sys.argv[2])-float(sys.argv[1]); print(f'probe runs={r:.0f} instructions={sys.argv[3]} per run={int(sys.argv[3])/max(r,1):.0f}  (profile: callgrind_annotate --inclusive=yes {sys.argv[4]}/cg.out.1)')" "$C0" "$C1" "$IR" "$D"
