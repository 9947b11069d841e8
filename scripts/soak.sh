#!/usr/bin/env bash
# Bounded soak test of `ferrosocket echo` (issue "soak", item 6).
#
#   scripts/soak.sh [--duration SECS] [--quick]     (--quick: 60 s, for CI; default 300 s)
#   FERROSOCKET=path/to/binary to test another build; SOAK_KEEP=1 keeps the logs on PASS.
#
# 1. Starts `ferrosocket echo --listen 127.0.0.1:PORT --quiet --keepalive 2 --keepalive-timeout 2`
#    on a free port (a copy of the binary, so that a concurrent rebuild cannot swap it mid-run;
#    built first if missing), warms it up, then measures its RSS and open fds.
# 2. Well-behaved load for the whole duration: `ferrosocket bench --verify --json` runs back to
#    back, 20 connections each, cycling 16 B / 4 KiB / 64 KiB messages at 1 and 8 in flight.
# 3. Faults in parallel: scripts/soak/faults.py (RSTs, half-open connections, mid-frame
#    disconnects, invalid frames, slow readers, garbage/oversized/slowloris handshakes).
# 4. Samples the server's VmRSS and fd count every 3 s, then lets it settle (15 s, long enough
#    for keepalive to reap half-open sockets) and measures again.
# PASS only if: the server stayed alive; its stderr has no "panicked"; final fds <= start + 5;
# final RSS <= start + 32 MiB; every bench run exited 0 with errors == 0, 20 connections and
# messages echoed (each byte compared by --verify); every fault saw the server behave as due.
# Prints a summary; exits 1 on FAIL (2 on usage errors). Everything runs under an overall
# `timeout`, and every loop is bounded in count and time.
set -euo pipefail

usage() {
    echo "usage: scripts/soak.sh [--duration SECS] [--quick]   (10 <= SECS <= 86400; --quick = 60)" >&2
    exit "${1:-2}"
}

duration=300
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) [ $# -ge 2 ] || usage; duration=$2; shift 2 ;;
        --duration=*) duration=${1#*=}; shift ;;
        --quick) duration=60; shift ;;
        -h | --help) usage 0 ;;
        *) usage ;;
    esac
done
case "$duration" in '' | *[!0-9]*) usage ;; esac
if [ "$duration" -lt 10 ] || [ "$duration" -gt 86400 ]; then usage; fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
settle=15
# Build (only if missing) before the clock starts; then rerun this script under an overall
# timeout, which signals the whole process group (server, faults, sampler) when it expires.
if [ -z "${SOAK_INNER:-}" ]; then
    if [ -z "${FERROSOCKET:-}" ] && [ ! -x target/release/ferrosocket ]; then
        echo "soak: building target/release/ferrosocket" >&2
        timeout 1800 cargo build --release -q -p ferrosocket-cli
    fi
    SOAK_INNER=1 exec timeout -k 10 $((duration + settle + 240)) "$0" --duration "$duration"
fi

src_bin=${FERROSOCKET:-$root/target/release/ferrosocket}
[ -x "$src_bin" ] || { echo "soak: no binary at $src_bin" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrosocket-soak.XXXXXX")
cp "$src_bin" "$work/ferrosocket"
bin=$work/ferrosocket

server_pid='' faults_pid='' sampler_pid='' verdict=FAIL
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    for pid in $sampler_pid $faults_pid $server_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $sampler_pid $faults_pid $server_pid; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$verdict" = PASS ] && [ -z "${SOAK_KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "soak: logs kept in $work" >&2
    fi
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
url="ws://127.0.0.1:$port/ws"
"$bin" echo --listen "127.0.0.1:$port" --path /ws --quiet --keepalive 2 --keepalive-timeout 2 \
    >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

# alive: the process exists and is not a zombie (a dead child stays one until it is waited for).
alive() {
    local st
    st=$(awk '/^State:/{print $2}' "/proc/$server_pid/status" 2>/dev/null || true)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
# measure: "RSS_KB FDS STATE", or "0 0 dead".
measure() {
    if alive; then
        local rss fds
        rss=$(awk '/^VmRSS:/{print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
        fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        echo "${rss:-0} $fds alive"
    else
        echo "0 0 dead"
    fi
}

for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
alive || { echo "soak: the server did not start" >&2; cat "$work/server.err" >&2; exit 1; }

# One bench run; appends "label<TAB>size<TAB>in_flight<TAB>exit<TAB>json" to bench.tsv.
bench() {
    local label=$1 size=$2 k=$3 secs=$4 out rc
    out=$(timeout $((secs + 30)) "$bin" bench "$url" --connections 20 --size "$size" --in-flight "$k" \
        --duration "$secs" --verify --json 2>>"$work/bench.err") && rc=0 || rc=$?
    [ -n "$out" ] || out='{}'
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$size" "$k" "$rc" "$out" >>"$work/bench.tsv"
    return "$rc"
}

# Warm-up (the allocator's arenas and buffers reach their working size), then the baseline.
: >"$work/bench.tsv"
bench warmup 65536 8 3 || true
bench warmup 4096 1 2 || true
sleep 2
read -r start_rss start_fds start_state < <(measure)
t0=$SECONDS
echo "$((SECONDS - t0)) $start_rss $start_fds $start_state" >"$work/samples.tsv"

sampler() {
    local i
    for ((i = 0; i < (duration + settle) / 3 + 40; i++)); do
        sleep 3
        [ -e "$work/stop-sampler" ] && break
        echo "$((SECONDS - t0)) $(measure)" >>"$work/samples.tsv"
    done
}
sampler &
sampler_pid=$!

timeout $((duration + 90)) python3 "$root/scripts/soak/faults.py" --port "$port" --duration "$duration" \
    >"$work/faults.json" 2>"$work/faults.err" &
faults_pid=$!

echo "soak: server pid $server_pid on $url, ${duration} s of load and faults, then ${settle} s to settle" >&2
configs=("16 1" "65536 8" "4096 1" "16 8" "65536 1" "4096 8")
per_run=$((duration >= 120 ? 10 : 6))
end=$((t0 + duration))
for ((run = 0; run < duration; run++)); do
    left=$((end - SECONDS))
    [ "$left" -ge 3 ] || break
    read -r size k <<<"${configs[run % ${#configs[@]}]}"
    bench "run$run" "$size" "$k" $((left < per_run ? left : per_run)) || sleep 1
done

faults_rc=0
wait "$faults_pid" || faults_rc=$?
faults_pid=''
load_end=$((SECONDS - t0))
sleep "$settle"
read -r end_rss end_fds end_state < <(measure)
echo "$((SECONDS - t0)) $end_rss $end_fds $end_state" >>"$work/samples.tsv"
touch "$work/stop-sampler"
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=''

# Not a pass criterion: how the server takes SIGTERM (1001 to everyone, then exit).
term_status=gone
if alive; then
    kill -TERM "$server_pid"
    term_t=$SECONDS
    for _ in $(seq 150); do alive || break; sleep 0.1; done
    if alive; then
        term_status="still running after 15 s"
    else
        rc=0
        wait "$server_pid" || rc=$?
        term_status="exit $rc within $((SECONDS - term_t + 1)) s"
    fi
fi
server_pid_shown=$server_pid
server_pid=''

rc=0
python3 - "$work" "$duration" "$load_end" "$settle" "$faults_rc" "$term_status" "$server_pid_shown" "$url" <<'PY' || rc=$?
import json, sys
work, duration, load_end, settle, faults_rc, term_status, pid, url = sys.argv[1:]
duration, load_end, settle, faults_rc = int(duration), int(load_end), int(settle), int(faults_rc)
RSS_SLACK_MIB, FD_SLACK = 32, 5
problems = []

samples = []
for line in open(f"{work}/samples.tsv"):
    t, rss, fds, state = line.split()
    samples.append((int(t), int(rss), int(fds), state))
start, end = samples[0], samples[-1]
if any(s[3] != "alive" for s in samples):
    dead = next(s for s in samples if s[3] != "alive")
    problems.append(f"server not alive at t={dead[0]} s")
errlog = open(f"{work}/server.err", errors="replace").read()
if "panicked" in errlog:
    line = next(l for l in errlog.splitlines() if "panicked" in l)
    problems.append(f"server stderr: {line.strip()[:200]}")
mib = lambda kb: kb / 1024
peak_rss = max(s[1] for s in samples)
peak_fds = max(s[2] for s in samples)
if end[3] == "alive":
    if end[2] > start[2] + FD_SLACK:
        problems.append(f"fds {start[2]} -> {end[2]} (> start + {FD_SLACK})")
    if end[1] > start[1] + RSS_SLACK_MIB * 1024:
        problems.append(f"RSS {mib(start[1]):.1f} -> {mib(end[1]):.1f} MiB (> start + {RSS_SLACK_MIB} MiB)")

runs = warm = bench_conns = msgs = 0
per_config = {}
bad_runs = []
for line in open(f"{work}/bench.tsv"):
    label, size, k, rc, out = line.rstrip("\n").split("\t", 4)
    try:
        r = json.loads(out)
    except ValueError:
        r = {}
    bench_conns += r.get("connections", 0)
    why = []
    if rc != "0":
        why.append(f"exit {rc}")
    if r.get("errors") != 0:
        why.append(f"errors {r.get('errors')}: {r.get('first_error', '')[:120]}")
    if r.get("connections") != 20:
        why.append(f"connections {r.get('connections')}")
    if not r.get("messages"):
        why.append("no message echoed")
    elif r["sent"] - r["messages"] > 20 * int(k):
        why.append(f"sent {r['sent']} but {r['messages']} echoed")
    if label == "warmup":
        warm += 1
    else:
        runs += 1
        msgs += r.get("messages", 0)
        c = per_config.setdefault((int(size), int(k)), [0, 0, []])
        c[0] += 1
        c[1] += r.get("messages", 0)
        c[2].append(r.get("msgs_per_sec", 0))
    if why:
        bad_runs.append(f"{label} ({size} B x{k}): " + "; ".join(why))
if runs == 0:
    problems.append("no bench run")
problems += [f"bench {b}" for b in bad_runs[:5]]
if len(bad_runs) > 5:
    problems.append(f"... {len(bad_runs) - 5} more failed bench runs")

try:
    faults = json.load(open(f"{work}/faults.json"))
except (OSError, ValueError):
    faults = {"connections": 0, "failed": None, "kinds": {}, "stuck_threads": None}
    problems.append(f"faults.py produced no report (exit {faults_rc})")
if faults.get("stuck_threads"):
    problems.append(f"faults.py: {faults['stuck_threads']} fault threads did not finish")
for kind, k in faults["kinds"].items():
    for e in k["errors"][:2]:
        problems.append(f"fault {kind}: {e}")
    if k["fail"] > 2:
        problems.append(f"fault {kind}: {k['fail']} failures in all")

verdict = "FAIL" if problems else "PASS"
print(f"soak: {verdict}  ({duration} s of load and faults, {settle} s settle; server {url}, pid {pid})")
print(f"  bench: {runs} runs (+{warm} warm-up), 20 connections each, 16 B / 4 KiB / 64 KiB x in-flight 1/8: "
      f"{msgs:,} messages echoed and verified byte for byte, {len(bad_runs)} failed runs")
print("    " + "; ".join(f"{size} B x{k}: {n} runs, {m:,} msgs, {sorted(rates)[len(rates) // 2]:,.0f} msgs/s"
                         for (size, k), (n, m, rates) in sorted(per_config.items())))
fc = faults.get("connections", 0)
print(f"  connections handled: {bench_conns:,} bench + {fc:,} faults = {bench_conns + fc:,}")
print(f"  faults (seed {faults.get('seed')}):  kind                          run     ok   fail  notes")
for kind, k in sorted(faults["kinds"].items()):
    notes = ", ".join(f"{n} {v}" for n, v in k.items() if n not in ("run", "ok", "fail", "errors"))
    print(f"    {kind:40} {k['run']:6} {k['ok']:6} {k['fail']:6}  {notes}")
print(f"  server RSS (MiB): start {mib(start[1]):.1f}, peak {mib(peak_rss):.1f}, end {mib(end[1]):.1f}"
      f"  (limit start + {RSS_SLACK_MIB} = {mib(start[1]) + RSS_SLACK_MIB:.1f})")
print(f"  server fds: start {start[2]}, peak {peak_fds}, end {end[2]}  (limit start + {FD_SLACK} = {start[2] + FD_SLACK})"
      f"; {len(samples)} samples, load ended at {load_end} s")
print(f"  server alive throughout: {'yes' if all(s[3] == 'alive' for s in samples) else 'NO'}; "
      f"'panicked' in stderr: {'YES' if 'panicked' in errlog else 'no'}; SIGTERM afterwards: {term_status}")
for p in problems:
    print(f"  FAIL: {p}")
sys.exit(0 if verdict == "PASS" else 1)
PY
if [ "$rc" -eq 0 ]; then verdict=PASS; fi
exit "$rc"
