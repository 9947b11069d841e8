#!/usr/bin/env bash
# Compares ferrosocket's echo server with peers: a raw TCP echo (the ceiling), fastwebsockets
# and tokio-tungstenite (bench/peers, its own cargo workspace), all single-threaded.
#
#   scripts/bench-peers.sh [--reps N] [--duration SECS] [--warmup SECS] [--quick]
#                          [--servers "raw ferrosocket fastwebsockets tokio-tungstenite"]
#                          (also "ferrosocket-before": the binary named by $FERROSOCKET_BEFORE)
#                          [--cap-mib MIB] [--out FILE]
#
# For each cell (payload 16 B, 1 KiB, 16 KiB, 1 MiB x connections 1, 100, 1000 x in flight 1,
# 16) every server runs pinned to core 0 and `ferrosocket bench` to core 1; servers are
# interleaved (A B C D A B C D ...) over --reps repetitions (default 3), each run --duration
# seconds (default 5) after a --warmup (default 1). Each run starts a fresh server. Cells whose
# bytes in flight (payload x connections x in flight) exceed --cap-mib (default 256 MiB) are
# skipped: 1 MiB x 1000 x 1, 1 MiB x 100 x 16 and 1 MiB x 1000 x 16.
#
# Recorded per run: msgs/s and the server's CPU time (utime+stime from /proc/PID/stat,
# sampled by the bench tool at the start and end of the measured interval) per message.
# Writes a markdown table of medians to bench/results/peers-<date>.md (and the raw JSON lines
# next to it) and prints it. --quick: 5 cells, 2 repetitions of 2 s (a smoke run).
#
# Loopback only; every run is bounded by `timeout`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

reps=3
duration=5
warmup=1
quick=0
servers="raw ferrosocket fastwebsockets tokio-tungstenite"
cap_mib=256
out=""
reps_set=0
duration_set=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=$2; reps_set=1; shift 2 ;;
        --duration) duration=$2; duration_set=1; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --servers) servers=$2; shift 2 ;;
        --cap-mib) cap_mib=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

if [ "$quick" = 1 ]; then
    [ "$reps_set" = 1 ] || reps=2
    [ "$duration_set" = 1 ] || duration=2
    warmup=0.5
    cells="16:1:1 16:100:1 16:100:16 16384:100:1 1048576:1:1"
elif [ -n "${BENCH_CELLS:-}" ]; then
    # e.g. BENCH_CELLS="1024:100:16 16384:1:16" (payload:connections:in-flight)
    cells=$BENCH_CELLS
else
    cells=""
    for size in 16 1024 16384 1048576; do
        for conns in 1 100 1000; do
            for k in 1 16; do
                cells="$cells $size:$conns:$k"
            done
        done
    done
fi

date_tag=$(date +%Y-%m-%d)
suffix=""
[ "$quick" = 1 ] && suffix="-quick"
[ -n "$out" ] || out="bench/results/peers-${date_tag}${suffix}.md"
jsonl="${out%.md}.jsonl"
mkdir -p "$(dirname "$out")"
: > "$jsonl"

# 1000 connections need more than the usual 1024 descriptors, on both ends.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "building (release): ferrosocket-cli and bench/peers" >&2
cargo build --release -q -p ferrosocket-cli
cargo build --release -q --manifest-path bench/peers/Cargo.toml
fs="$root/target/release/ferrosocket"
peers="$root/bench/peers/target/release"

server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_server() { # name port
    local name=$1 port=$2 addr="127.0.0.1:$2"
    case "$name" in
        raw) taskset -c 0 "$peers/raw-tcp-echo" --listen "$addr" >/dev/null 2>&1 & ;;
        ferrosocket) taskset -c 0 "$fs" echo --listen "$addr" --threads 1 --quiet --no-compression >/dev/null 2>&1 & ;;
        # Another build of ferrosocket (e.g. main before a change), from $FERROSOCKET_BEFORE.
        ferrosocket-before) taskset -c 0 "${FERROSOCKET_BEFORE:?set FERROSOCKET_BEFORE to a ferrosocket binary}" echo --listen "$addr" --threads 1 --quiet --no-compression >/dev/null 2>&1 & ;;
        fastwebsockets) taskset -c 0 "$peers/fastwebsockets-echo" --listen "$addr" >/dev/null 2>&1 & ;;
        tokio-tungstenite) taskset -c 0 "$peers/tokio-tungstenite-echo" --listen "$addr" >/dev/null 2>&1 & ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "server $name did not start on $addr" >&2
    return 1
}

stop_server() {
    cleanup
    server_pid=""
}

run_timeout=$(python3 -c "print(int($duration + $warmup + 60))")
total=0
for cell in $cells; do total=$((total + 1)); done
n=0
for cell in $cells; do
    n=$((n + 1))
    IFS=: read -r size conns k <<<"$cell"
    bytes=$((size * conns * k))
    if [ "$bytes" -gt $((cap_mib << 20)) ]; then
        echo "[$n/$total] skip $size B x $conns x $k in flight: $((bytes >> 20)) MiB in flight > ${cap_mib} MiB cap" >&2
        printf '{"server":"*","size":%d,"conns":%d,"k":%d,"skipped":true}\n' "$size" "$conns" "$k" >>"$jsonl"
        continue
    fi
    for rep in $(seq "$reps"); do
        for name in $servers; do
            port=$(free_port)
            start_server "$name" "$port"
            extra=""
            [ "$name" = raw ] && extra="--raw-echo"
            line=$(timeout "$run_timeout" taskset -c 1 "$fs" bench "ws://127.0.0.1:$port/ws" $extra \
                --connections "$conns" --size "$size" --in-flight "$k" \
                --duration "$duration" --warmup "$warmup" --json --server-pid "$server_pid" --timeout 10 \
                2>/dev/null) || true
            stop_server
            [ -n "$line" ] || line='{"messages":0,"msgs_per_sec":0,"errors":-1,"first_error":"bench failed or timed out"}'
            printf '{"server":"%s","size":%d,"conns":%d,"k":%d,"rep":%d,"result":%s}\n' \
                "$name" "$size" "$conns" "$k" "$rep" "$line" >>"$jsonl"
            rate=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1]).get("msgs_per_sec",0)))' "$line" 2>/dev/null || echo "?")
            echo "[$n/$total] $size B x $conns conns x $k in flight, rep $rep, $name: $rate msgs/s" >&2
        done
    done
done

python3 - "$jsonl" "$out" "$reps" "$duration" "$warmup" "$cap_mib" "$servers" <<'EOF'
import json, statistics, sys, platform, os, subprocess, datetime
jsonl, out, reps, duration, warmup, cap, servers = sys.argv[1:8]
servers = servers.split()
peers = [s for s in servers if s not in ("raw", "ferrosocket")]
runs, skipped = {}, []
for line in open(jsonl):
    r = json.loads(line)
    key = (r["size"], r["conns"], r["k"])
    if r.get("skipped"):
        skipped.append(key)
        continue
    runs.setdefault(key, {}).setdefault(r["server"], []).append(r["result"])

def size_label(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB" if b >= 1 << 10 else f"{b} B"

def med(rs, field):
    vals = [r.get(field) for r in rs if r.get(field) is not None and r.get("errors", 0) == 0]
    return statistics.median(vals) if vals else None

def fmt_rate(v):
    if v is None: return "n/a"
    if v >= 1e6: return f"{v/1e6:.2f}M"
    if v >= 1e4: return f"{v/1e3:.0f}k"
    if v >= 1e3: return f"{v/1e3:.1f}k"
    return f"{v:.0f}"

cpu = ""
try:
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip(); break
except OSError:
    pass
load = os.getloadavg()
lines = []
lines.append(f"# ferrosocket vs peers: echo throughput ({datetime.date.today()})\n")
lines.append(f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; load average at the end {load[0]:.1f}. "
             f"Each server single-threaded, pinned to core 0; `ferrosocket bench` (current_thread) on core 1. "
             f"Medians of {reps} runs per server, interleaved; {duration} s measured after {warmup} s warm-up; fresh server per run. "
             f"Cells with more than {cap} MiB in flight skipped. Runs with errors are left out of the medians (shown as n/a or marked).\n")
names = {"raw": "raw TCP", "ferrosocket": "ferrosocket", "fastwebsockets": "fastwebsockets 0.10",
         "tokio-tungstenite": "tokio-tungstenite 0.30"}
hdr = ["payload", "conns", "in flight"] + [names.get(s, s) for s in servers]
if "ferrosocket" in servers:
    hdr += ["ferrosocket / raw", "ferrosocket / best peer"]
lines.append("## Throughput, msgs/s (median; ratio vs raw TCP in parentheses)\n")
lines.append("| " + " | ".join(hdr) + " |")
lines.append("|" + "---|" * len(hdr))
cpu_rows = []
for key in sorted(runs):
    size, conns, k = key
    by = runs[key]
    rates = {s: med(by.get(s, []), "msgs_per_sec") for s in servers}
    cpus = {s: med(by.get(s, []), "server_cpu_us_per_msg") for s in servers}
    raw = rates.get("raw")
    row = [size_label(size), str(conns), str(k)]
    for s in servers:
        v = rates[s]
        errs = sum(1 for r in by.get(s, []) if r.get("errors", 0) != 0)
        cell = fmt_rate(v)
        if raw and v and s != "raw":
            cell += f" ({v/raw:.2f})"
        if errs:
            cell += f" [{errs} run(s) with errors]"
        row.append(cell)
    if "ferrosocket" in servers:
        fsr = rates.get("ferrosocket")
        best = max([rates[p] for p in peers if rates.get(p)] or [0])
        row.append(f"{fsr/raw:.2f}" if fsr and raw else "n/a")
        row.append(f"{fsr/best:.2f}" if fsr and best else "n/a")
    lines.append("| " + " | ".join(row) + " |")
    cpu_rows.append([size_label(size), str(conns), str(k)] +
                    [f"{cpus[s]:.2f}" if cpus[s] is not None else "n/a" for s in servers])
lines.append("")
lines.append("## Server CPU time per message, us (utime+stime over the measured interval / messages; median)\n")
h2 = ["payload", "conns", "in flight"] + [names.get(s, s) for s in servers]
lines.append("| " + " | ".join(h2) + " |")
lines.append("|" + "---|" * len(h2))
for r in cpu_rows:
    lines.append("| " + " | ".join(r) + " |")
if skipped:
    lines.append("")
    lines.append("Skipped (bytes in flight over the cap): " +
                 ", ".join(f"{size_label(s)} x {c} x {k}" for s, c, k in sorted(set(skipped))) + ".")
errs = [(key, s, r.get("first_error")) for key, by in runs.items() for s, rs in by.items() for r in rs if r.get("errors", 0) != 0]
if errs:
    lines.append("")
    lines.append("Runs with errors: " + "; ".join(f"{s} {size_label(k[0])}x{k[1]}x{k[2]}: {e}" for k, s, e in errs[:20]))
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
print(f"written to {out} (raw results: {jsonl})")
EOF
