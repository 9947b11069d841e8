#!/usr/bin/env bash
# CI smoke test of the load generator and the echo path: starts `ferrosocket echo` on a free
# 127.0.0.1 port, sends 50,000 messages of 1 KiB over 50 connections with 16 in flight each,
# and fails unless every message came back byte for byte (messages == sent == 50000,
# errors == 0). Bounded by timeouts; the server is killed on exit.
#
#   scripts/bench-smoke.sh [--no-build]     (FERROSOCKET=path/to/binary to use another build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
expected=50000

if [ "${1:-}" != "--no-build" ]; then
    timeout 1800 cargo build --release -q -p ferrosocket-cli
fi
bin=${FERROSOCKET:-$root/target/release/ferrosocket}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp)
timeout 300 "$bin" echo --listen "127.0.0.1:$port" --path /ws --quiet --threads 1 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done

result=$(timeout 120 "$bin" bench "ws://127.0.0.1:$port/ws" --connections 50 --in-flight 16 --size 1024 \
    --messages "$expected" --duration 60 --verify --json) || {
    echo "bench-smoke: the bench run failed (exit $?): ${result:-no output}" >&2
    cat "$log" >&2
    exit 1
}
echo "$result"
python3 - "$result" "$expected" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); want = int(sys.argv[2])
problems = []
if r.get("messages") != want: problems.append(f"messages {r.get('messages')} != {want}")
if r.get("sent") != want: problems.append(f"sent {r.get('sent')} != {want}")
if r.get("errors") != 0: problems.append(f"errors {r.get('errors')}: {r.get('first_error')}")
if problems:
    print("bench-smoke: FAILED: " + "; ".join(problems), file=sys.stderr); sys.exit(1)
print(f"bench-smoke: ok: {want} messages of 1 KiB echoed byte for byte, {r['msgs_per_sec']:.0f} msgs/s, p99 {r['latency_us']['p99']} us")
PY
