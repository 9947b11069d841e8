#!/usr/bin/env bash
# Memory per connection of each echo server: opens N (default 10,000) WebSocket connections
# to it with bench/peers' `ws-hold`, and reads the server's RSS (VmRSS in /proc/PID/status)
#   1. before any connection,
#   2. with every connection upgraded and idle,
#   3. after every connection echoed one 64 KiB message and went idle again,
# then reports (RSS - RSS before) / N for 2 and 3. Servers are single-threaded and pinned to
# core 0, the client to core 1. Loopback only; each server's run is bounded by `timeout`.
#
#   scripts/bench-memory.sh [--connections N] [--size BYTES] [--settle SECS]
#                           [--servers "ferrosocket fastwebsockets tokio-tungstenite"] [--out FILE]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

conns=10000
size=65536
settle=2
servers="ferrosocket fastwebsockets tokio-tungstenite"
out="bench/results/memory-$(date +%Y-%m-%d).md"
while [ $# -gt 0 ]; do
    case "$1" in
        --connections) conns=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --settle) settle=$2; shift 2 ;;
        --servers) servers=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

# Both ends hold one descriptor per connection.
ulimit -n $((conns * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building (release): ferrosocket-cli and bench/peers" >&2
cargo build --release -q -p ferrosocket-cli
cargo build --release -q --manifest-path bench/peers/Cargo.toml
fs="$root/target/release/ferrosocket"
peers="$root/bench/peers/target/release"

server_pid=""
client_pid=""
workdir=$(mktemp -d)
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Waits (at most $3 seconds) for a line starting with $2 in file $1; prints it.
wait_for() {
    local file=$1 word=$2 limit=$3 i
    for i in $(seq $((limit * 10))); do
        if grep -q "^$word" "$file" 2>/dev/null; then
            grep "^$word" "$file" | head -1
            return 0
        fi
        sleep 0.1
    done
    return 1
}

rows=""
for name in $servers; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    addr="127.0.0.1:$port"
    case "$name" in
        ferrosocket) timeout 900 taskset -c 0 "$fs" echo --listen "$addr" --threads 1 --quiet --no-compression ${FERROSOCKET_ECHO_ARGS:-} >/dev/null 2>&1 & ;;
        fastwebsockets) timeout 900 taskset -c 0 "$peers/fastwebsockets-echo" --listen "$addr" >/dev/null 2>&1 & ;;
        tokio-tungstenite) timeout 900 taskset -c 0 "$peers/tokio-tungstenite-echo" --listen "$addr" >/dev/null 2>&1 & ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    sleep 0.5
    # `timeout` runs the server as its child: measure the server process itself.
    spid=$(pgrep -P "$server_pid" | head -1)
    spid=${spid:-$server_pid}
    base=$(rss_kib "$spid")

    fifo="$workdir/in-$name"
    mkfifo "$fifo"
    log="$workdir/out-$name"
    timeout 600 taskset -c 1 "$peers/ws-hold" --url "ws://$addr/ws" --connections "$conns" --size "$size" \
        --timeout 550 <"$fifo" >"$log" 2>&1 &
    client_pid=$!
    exec 7>"$fifo"

    if ! up=$(wait_for "$log" upgraded 300); then
        echo "$name: connections were not all upgraded in time: $(cat "$log")" >&2
        exit 1
    fi
    sleep "$settle"
    idle=$(rss_kib "$spid")
    echo go >&7
    if ! echoed=$(wait_for "$log" echoed 300); then
        echo "$name: echoes did not complete in time: $(cat "$log")" >&2
        exit 1
    fi
    sleep "$settle"
    after=$(rss_kib "$spid")
    echo go >&7
    exec 7>&-
    wait "$client_pid" 2>/dev/null || true
    client_pid=""
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""

    ok=$(echo "$up" | awk '{print $2}')
    eok=$(echo "$echoed" | awk '{print $2}')
    per_idle=$(( (idle - base) * 1024 / (ok > 0 ? ok : 1) ))
    per_after=$(( (after - base) * 1024 / (ok > 0 ? ok : 1) ))
    echo "$name: base ${base} KiB, $up -> ${idle} KiB ($per_idle B/conn), $echoed -> ${after} KiB ($per_after B/conn)" >&2
    rows="$rows| $name | $ok | $eok | $base | $idle | $((per_idle / 1024)).$(( (per_idle % 1024) * 10 / 1024 )) KiB | $after | $((per_after / 1024)).$(( (per_after % 1024) * 10 / 1024 )) KiB |
"
done

mkdir -p "$(dirname "$out")"
{
    echo "# Memory per connection ($(date +%Y-%m-%d))"
    echo
    echo "$conns connections per server (single-threaded, core 0); RSS from /proc/PID/status VmRSS, ${settle} s after each step."
    echo "Per connection = (RSS - RSS before any connection) / connections upgraded. Echo: one $size-byte binary message per connection, then idle."
    echo
    echo "| server | upgraded | echoed | RSS before (KiB) | RSS idle (KiB) | per conn, idle | RSS after echo (KiB) | per conn, after echo |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s' "$rows"
} >"$out"
cat "$out"
echo "written to $out"
