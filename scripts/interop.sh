#!/usr/bin/env bash
# permessage-deflate interop: ferrosocket against Python websockets and Node ws, compression on.
#
#   scripts/interop.sh [--sizes 0,1,125,65536,1048576,16777216] [--no-build]
#
# 1. `ferrosocket echo` as the server, with clients: websockets (its default offer, and one
#    with every parameter and small windows) and ws; each sends text and random binary
#    messages of every size, checks the echo byte for byte and that permessage-deflate was
#    negotiated (the client's view).
# 2. `ferrosocket client URL --once` (stdin -> one message -> reply on stdout) against a
#    websockets and a ws echo server with compression on (the servers report what they
#    negotiated); skipped with a message if the binary has no `client --once`.
# Installs what it needs on first use: .venv-interop/ (websockets), scripts/interop/node_modules
# (ws, pinned in scripts/interop/package.json); builds target/release/ferrosocket if missing or
# older than the sources (unless --no-build). Everything listens on 127.0.0.1 only.
# Prints a table; exits 1 on any mismatch, error, or compression not negotiated.
#
# Environment: INTEROP_TIMEOUT seconds per message (default 60); INTEROP_RUN_TIMEOUT seconds
# per client program (default 900); FERROSOCKET_BIN another ferrosocket binary (never built).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

SIZES=0,1,125,65536,1048576,16777216
BUILD=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) SIZES=${2:?--sizes needs a value}; shift 2 ;;
    --sizes=*) SIZES=${1#*=}; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage ;;
    *) echo "interop.sh: unknown argument: $1" >&2; usage ;;
  esac
done
[[ $SIZES =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "interop.sh: --sizes takes numbers separated by commas" >&2; exit 2; }

WEBSOCKETS_VERSION=17.4
WS_VERSION=8.23.0
MSG_TIMEOUT=${INTEROP_TIMEOUT:-60}
RUN_TIMEOUT=${INTEROP_RUN_TIMEOUT:-900}
VENV=$ROOT/.venv-interop
PY=$VENV/bin/python
HELPERS=$ROOT/scripts/interop
BIN=${FERROSOCKET_BIN:-$ROOT/target/release/ferrosocket}
[[ -n ${FERROSOCKET_BIN:-} ]] && BUILD=0
WORK=$(mktemp -d /tmp/interop.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

log() { echo "interop.sh: $*"; }
die() { echo "interop.sh: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- processes
PIDS=()
stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() { # start_bg LOGFILE CMD... ; sets BG_PID
  local logf=$1
  shift
  "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  PIDS+=("$BG_PID")
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # wait_port PORT PID NAME LOGFILE
  for _ in $(seq 1 300); do
    kill -0 "$2" 2>/dev/null || { cat "$4" >&2; die "$3 exited before listening on 127.0.0.1:$1"; }
    port_open "$1" && return 0
    sleep 0.1
  done
  cat "$4" >&2
  die "$3 did not listen on 127.0.0.1:$1 within 30 s"
}
wait_listening() { # wait_listening PID NAME LOGFILE -> prints the port the helper reported
  local port
  for _ in $(seq 1 300); do
    port=$(awk '$1 == "LISTENING" { print $2; exit }' "$3")
    [[ -n $port ]] && { echo "$port"; return 0; }
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "$2 exited before listening"; }
    sleep 0.1
  done
  cat "$3" >&2
  die "$2 did not report its port within 30 s"
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- setup
setup_python() {
  if [[ -x $PY ]] && "$PY" -c "import sys, websockets; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    return 0
  fi
  log "installing websockets $WEBSOCKETS_VERSION into ${VENV#"$ROOT"/}"
  rm -rf "$VENV"
  timeout 300 python3 -m venv "$VENV" || die "cannot create $VENV"
  timeout 600 "$PY" -m pip install -q "websockets==$WEBSOCKETS_VERSION" </dev/null || { rm -rf "$VENV"; die "pip install websockets failed"; }
  "$PY" -c 'import websockets.asyncio.client' || die "websockets does not import"
}

setup_node() {
  command -v node >/dev/null || die "node is not installed (Node.js >= 20 is needed for ws)"
  local have
  have=$(node -p "require('$HELPERS/node_modules/ws/package.json').version" 2>/dev/null || true)
  [[ $have == "$WS_VERSION" ]] && return 0
  log "installing ws $WS_VERSION into ${HELPERS#"$ROOT"/}/node_modules"
  (cd "$HELPERS" && timeout 600 npm ci --no-audit --no-fund --silent </dev/null) || die "npm ci failed"
}

build_bin() {
  if [[ -x $BIN ]]; then
    [[ $BUILD == 0 ]] && return 0
    local newer
    newer=$(find crates Cargo.toml Cargo.lock \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) \
      -newer "$BIN" -print -quit 2>/dev/null || true)
    [[ -z $newer ]] && return 0
    log "sources changed since the last build ($newer)"
  else
    [[ $BUILD == 0 ]] && die "$BIN is missing (and --no-build was given)"
  fi
  log "building ferrosocket (release)"
  timeout 3600 cargo build --release -q -p ferrosocket-cli </dev/null || die "cargo build failed"
  [[ -x $BIN ]] || die "$BIN was not built"
}

# ---------------------------------------------------------------- results
# RESULT <peer> <kind> <size> <ok|FAIL|skip> <negotiated> <ms> <detail>, tab-separated.
result() { printf 'RESULT\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# Runs a helper client, keeping its RESULT lines; a run that crashes or times out leaves its
# missing rows as failures.
run_client() { # run_client PEER CMD...
  local peer=$1 rc=0 out=$WORK/$1.out kind size
  shift
  log "running $peer"
  timeout -k 5 "$RUN_TIMEOUT" "$@" >"$out" 2>"$WORK/$peer.err" </dev/null || rc=$?
  grep '^RESULT' "$out" >>"$RESULTS" || true
  for kind in text binary; do
    for size in ${SIZES//,/ }; do
      awk -F'\t' -v p="$peer" -v k="$kind" -v s="$size" \
        '$1 == "RESULT" && $2 == p && $3 == k && $4 == s { found = 1 } END { exit !found }' "$out" ||
        result "$peer" "$kind" "$size" FAIL "?" 0 "no result (exit $rc): $(tail -c 300 "$WORK/$peer.err" | tr '\t\n' '  ')"
    done
  done
}

# ferrosocket client --once against a server helper whose log reports "EXT ..." per connection.
run_ferrosocket_client() { # run_ferrosocket_client PEER URL SERVERLOG
  local peer=$1 url=$2 slog=$3 kind size in out err rc t0 ms status detail ext before args
  log "running $peer"
  for kind in text binary; do
    for size in ${SIZES//,/ }; do
      in=$WORK/in.bin out=$WORK/out.txt err=$WORK/err.txt
      "$PY" "$HELPERS/payload.py" "$kind" "$size" >"$in"
      args=(client "$url" --once --timeout 10)
      [[ $kind == binary ]] && args+=(--binary --binary-hex)
      before=$(grep -c '^EXT' "$slog" || true)
      t0=$(date +%s%N)
      rc=0
      timeout -k 5 "$MSG_TIMEOUT" "$BIN" "${args[@]}" <"$in" >"$out" 2>"$err" || rc=$?
      ms=$(( ($(date +%s%N) - t0) / 1000000 ))
      # The reply is printed with a newline; binary as hex.
      if [[ $kind == binary ]]; then
        "$PY" -c 'import sys; sys.stdout.write(open(sys.argv[1], "rb").read().hex() + "\n")' "$in" >"$in.expected"
      else
        { cat "$in"; printf '\n'; } >"$in.expected"
      fi
      ext=$(awk -v n="$before" '$1 == "EXT" && ++seen == n + 1 { $1 = ""; sub(/^ /, ""); print; exit }' "$slog")
      status=ok detail=
      if [[ $rc -ne 0 ]]; then
        status=FAIL detail="exit $rc: $(tr '\t\n' '  ' <"$err" | tail -c 300)"
      elif ! cmp -s "$in.expected" "$out"; then
        status=FAIL detail="reply differs ($(wc -c <"$out") bytes printed)"
      fi
      if [[ $ext != permessage-deflate* ]]; then
        status=FAIL detail="${detail:+$detail; }compression not negotiated"
      fi
      result "$peer" "$kind" "$size" "$status" "${ext:-none}" "$ms" "$detail"
    done
  done
}

skip_rows() { # skip_rows PEER REASON
  local kind size
  for kind in text binary; do
    for size in ${SIZES//,/ }; do result "$1" "$kind" "$size" skip "-" 0 "$2"; done
  done
}

print_table() {
  python3 - "$RESULTS" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t")[1:] for l in open(sys.argv[1]) if l.startswith("RESULT")]
def human(n):
    n = int(n)
    for unit, k in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k and n % k == 0:
            return f"{n // k} {unit}"
    return f"{n} B"
peers, cells, negotiated, details = [], {}, {}, []
for peer, kind, size, status, ext, ms, detail in (r + [""] * (7 - len(r)) for r in rows):
    if peer not in peers:
        peers.append(peer)
    cells[(peer, int(size), kind)] = status if status != "ok" else f"ok {ms} ms"
    if ext not in ("?", "-"):
        negotiated.setdefault(peer, set()).add(ext)
    if status == "FAIL":
        details.append(f"  {peer} {kind} {human(size)}: {detail}")
sizes = sorted({int(r[2]) for r in rows})
w = max([len(p) for p in peers] + [4])
print(f"\n{'peer':<{w}}  {'size':>7}  {'text':<12}  {'binary':<12}")
for p in peers:
    for s in sizes:
        print(f"{p:<{w}}  {human(s):>7}  {cells.get((p, s, 'text'), '-'):<12}  {cells.get((p, s, 'binary'), '-'):<12}")
print("\nnegotiated (Sec-WebSocket-Extensions):")
for p in peers:
    print(f"  {p}: {' | '.join(sorted(negotiated.get(p, {'-'})))}")
if details:
    print("\nfailures:")
    print("\n".join(details))
n = {s: sum(r[3] == s for r in rows) for s in ("ok", "FAIL", "skip")}
print(f"\ninterop: {n['ok']} passed, {n['FAIL']} failed, {n['skip']} skipped")
sys.exit(1 if n["FAIL"] or not n["ok"] else 0)
EOF
}

# ---------------------------------------------------------------- main
setup_python
setup_node
build_bin
T0=$SECONDS

# 1. Peers as clients of `ferrosocket echo`.
PORT=$(free_port)
start_bg "$WORK/echo.log" "$BIN" echo --listen "127.0.0.1:$PORT" --quiet
ECHO_PID=$BG_PID
wait_port "$PORT" "$ECHO_PID" "ferrosocket echo" "$WORK/echo.log"
URL=ws://127.0.0.1:$PORT/ws
run_client "websockets→echo" "$PY" "$HELPERS/py_client.py" "$URL" "websockets→echo" \
  --sizes "$SIZES" --timeout "$MSG_TIMEOUT"
run_client "websockets(params)→echo" "$PY" "$HELPERS/py_client.py" "$URL" "websockets(params)→echo" \
  --sizes "$SIZES" --timeout "$MSG_TIMEOUT" --offer params
run_client "ws→echo" node "$HELPERS/node_client.mjs" "$URL" "ws→echo" "$SIZES" "$MSG_TIMEOUT"
kill -0 "$ECHO_PID" 2>/dev/null || { cat "$WORK/echo.log" >&2; die "ferrosocket echo died during the run"; }
stop_pid "$ECHO_PID"

# 2. `ferrosocket client --once` against the peers' echo servers.
if timeout 10 "$BIN" client --help 2>/dev/null | grep -q -- '--once'; then
  start_bg "$WORK/py_server.log" "$PY" "$HELPERS/py_server.py"
  PY_PID=$BG_PID
  PY_PORT=$(wait_listening "$PY_PID" "websockets server" "$WORK/py_server.log")
  run_ferrosocket_client "client→websockets" "ws://127.0.0.1:$PY_PORT/" "$WORK/py_server.log"
  stop_pid "$PY_PID"

  start_bg "$WORK/node_server.log" node "$HELPERS/node_server.mjs"
  NODE_PID=$BG_PID
  NODE_PORT=$(wait_listening "$NODE_PID" "ws server" "$WORK/node_server.log")
  run_ferrosocket_client "client→ws" "ws://127.0.0.1:$NODE_PORT/" "$WORK/node_server.log"
  stop_pid "$NODE_PID"
else
  log "SKIP: $BIN has no working 'client --once' yet; the ferrosocket-as-client part is skipped"
  skip_rows "client→websockets" "no ferrosocket client --once"
  skip_rows "client→ws" "no ferrosocket client --once"
fi

log "runs finished in $((SECONDS - T0)) s"
print_table
