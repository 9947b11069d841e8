#!/usr/bin/env bash
# Run the Autobahn|Testsuite (wstest) against ferrosocket.
#
#   scripts/autobahn.sh server [--cases PATTERN,...] [--exclude PATTERN,...|none]
#   scripts/autobahn.sh client [--cases PATTERN,...] [--exclude PATTERN,...|none]
#   scripts/autobahn.sh setup   (only install wstest)
#
# server: starts `ferrosocket echo` on 127.0.0.1:9001 and runs `wstest -m fuzzingclient` at it.
# client: starts `wstest -m fuzzingserver` on 127.0.0.1:9002 and runs `ferrosocket autobahn-client`.
# Then scripts/autobahn-summary.py checks autobahn/reports/<mode>/index.json and writes
# autobahn/summary-<mode>.md. Default cases: "*" minus "12.*,13.*" (301 cases; all = 517).
#
# Environment overrides (for stand-ins while the binary is unfinished):
#   FERROSOCKET_ECHO_CMD    server-mode testee, must listen on 127.0.0.1:9001 (path /ws);
#                           "{addr}" in it is replaced by 127.0.0.1:9001 (as in browser-test.sh)
#                           e.g. ".venv-autobahn/bin/wstest -m echoserver -w ws://127.0.0.1:9001"
#   FERROSOCKET_CLIENT_CMD  client-mode testee, e.g.
#                           ".venv-autobahn/bin/wstest -m testeeclient -w ws://127.0.0.1:9002 -i ferrosocket"
#   AUTOBAHN_TIMEOUT        seconds allowed for the wstest run / the client run (default 1200)
#   AUTOBAHN_AGENT          agent name expected in the report (default ferrosocket)
#   AUTOBAHN_STREAM=1       drive the streamed-message API (echo --stream / autobahn-client
#                           --stream) on ports 9003/9004, reports in autobahn/reports/MODE-stream
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

MODE=${1:-}
[[ $MODE == server || $MODE == client || $MODE == setup ]] || usage
shift
CASES='*'
EXCLUDE='12.*,13.*'
while [[ $# -gt 0 ]]; do
  case $1 in
    --cases) CASES=${2:?--cases needs a value}; shift 2 ;;
    --cases=*) CASES=${1#*=}; shift ;;
    --exclude) EXCLUDE=${2?--exclude needs a value}; shift 2 ;;
    --exclude=*) EXCLUDE=${1#*=}; shift ;;
    -h|--help) usage ;;
    *) echo "autobahn.sh: unknown argument: $1" >&2; usage ;;
  esac
done
[[ $EXCLUDE == none ]] && EXCLUDE=''

AGENT=${AUTOBAHN_AGENT:-ferrosocket}
RUN_TIMEOUT=${AUTOBAHN_TIMEOUT:-1200}
WSTEST_VERSION=25.10.1
VENV=$ROOT/.venv-autobahn
WSTEST=$VENV/bin/wstest
REPORTS=$ROOT/autobahn/reports
# AUTOBAHN_STREAM=1: the testee uses the streamed-message API (`echo --stream`,
# `autobahn-client --stream`), on its own ports and report files so it can run beside the others.
if [[ ${AUTOBAHN_STREAM:-0} == 1 ]]; then
  SUFFIX=-stream SPORT=9003 CPORT=9004 STREAM_FLAG=" --stream"
else
  SUFFIX="" SPORT=9001 CPORT=9002 STREAM_FLAG=""
fi
OUTDIR=$REPORTS/$MODE$SUFFIX
BIN=$ROOT/target/release/ferrosocket
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore PYTHONDONTWRITEBYTECODE=1

log() { echo "autobahn.sh: $*"; }
die() { echo "autobahn.sh: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- processes
PIDS=()
stop_pid() { # stop_pid PID NAME: TERM (children first), wait up to 10 s, then KILL
  local pid=$1 name=$2
  kill -0 "$pid" 2>/dev/null || return 0
  pkill -TERM -P "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM, killing"
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid" "background process"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_fg() { # run_fg CMD...: like running CMD in the foreground, but signals to this script
  # are handled at once (bash defers traps while a foreground child runs)
  "$@" </dev/null &
  local pid=$!
  PIDS+=("$pid")
  wait "$pid"
}
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() { # wait_port HOST PORT PID NAME LOGFILE [SECONDS]
  local host=$1 port=$2 pid=$3 name=$4 logf=$5 secs=${6:-60}
  for _ in $(seq 1 $((secs * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "---- $name output ----" >&2; cat "$logf" >&2 || true
      die "$name exited before listening on $host:$port"
    fi
    port_open "$host" "$port" && return 0
    sleep 0.1
  done
  echo "---- $name output ----" >&2; cat "$logf" >&2 || true
  die "$name did not listen on $host:$port within ${secs}s"
}
start_bg() { # start_bg LOGFILE CMD... ; sets BG_PID
  local logf=$1
  shift
  "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

# ---------------------------------------------------------------- wstest setup
# autobahntestsuite 25.10.1 is Python 2.7 only. Its own requirements.txt pins the direct
# dependencies (Twisted 19.10.0, autobahn 0.10.9, pyOpenSSL 19.1.0, cryptography 3.3.2,
# service_identity 18.1.0, six 1.16.0, zope.interface 4.6.0, txaio 2.1.0, setuptools 44.0.0,
# ...) and installs cleanly with pip 20.3.4 (the venv's pip) under CPython 2.7.18.
# No extra pins were needed, but the full resolved set that was verified to work is
# pinned below (constraints) so a new upload of a transitive dependency cannot break it.
# virtualenv must be < 20.22 (20.22 dropped Python 2); pip on 2.7 picks 20.15.1.
CONSTRAINTS="attrs==21.4.0
autobahn==0.10.9
Automat==22.10.0
cffi==1.15.1
constantly==15.1.0
cryptography==3.3.2
enum34==1.1.10
hyperlink==21.0.0
idna==2.10
incremental==16.10.1
ipaddress==1.0.23
Jinja2==2.11.3
klein==17.10.0
linecache2==1.0.0
MarkupSafe==1.1.1
pyasn1==0.5.1
pyasn1-modules==0.3.0
pycparser==2.21
PyHamcrest==1.10.1
pyOpenSSL==19.1.0
service-identity==18.1.0
six==1.16.0
traceback2==1.4.0
Twisted==19.10.0
txaio==2.1.0
typing==3.10.0.0
ujson==2.0.3
unittest2==1.1.0
Werkzeug==1.0.1
wsaccel==0.6.6
zope.interface==4.6.0"

wstest_ok() {
  [[ -x $WSTEST ]] && "$WSTEST" -a 2>/dev/null | grep -qx "AutobahnTestSuite $WSTEST_VERSION"
}

setup_wstest() {
  if wstest_ok; then
    log "wstest $WSTEST_VERSION already installed in ${VENV#"$ROOT"/}"
    return 0
  fi
  local pyroot py27 logf cons
  if command -v pyenv >/dev/null 2>&1; then pyroot=$(pyenv root); else pyroot=${PYENV_ROOT:-$HOME/.pyenv}; fi
  py27=$pyroot/versions/2.7.18/bin/python
  [[ -x $py27 ]] || die "Python 2.7.18 not found at $py27 (needed by autobahntestsuite)"
  logf=$(mktemp /tmp/autobahn-setup.XXXXXX.log)
  log "installing wstest $WSTEST_VERSION into ${VENV#"$ROOT"/} (log: $logf)"
  {
    if ! "$py27" -m virtualenv --version >/dev/null 2>&1; then
      timeout 600 "$py27" -m pip install -q 'virtualenv<20.22'
    fi
    rm -rf "$VENV"
    timeout 300 "$py27" -m virtualenv -q "$VENV"
    cons=$(mktemp /tmp/autobahn-constraints.XXXXXX.txt)
    printf '%s\n' "$CONSTRAINTS" >"$cons"
    timeout 900 "$VENV/bin/pip" install -q -c "$cons" "autobahntestsuite==$WSTEST_VERSION"
    rm -f "$cons"
  } >"$logf" 2>&1 </dev/null || { cat "$logf" >&2; rm -rf "$VENV"; die "wstest installation failed"; }
  "$WSTEST" --help >/dev/null 2>&1 || { "$WSTEST" --help >&2 || true; die "wstest --help does not work"; }
  wstest_ok || die "wstest -a does not report AutobahnTestSuite $WSTEST_VERSION"
  rm -f "$logf"
  log "wstest installed: $("$WSTEST" -a | tr '\n' ' ')"
}

# ---------------------------------------------------------------- spec + expected count
json_list() { # comma-separated patterns -> JSON list
  python3 -c 'import json,sys; print(json.dumps([p.strip() for p in sys.argv[1].split(",") if p.strip()]))' "$1"
}

write_spec() { # write_spec FILE KEY VALUE  (KEY is "servers" json or "url")
  local file=$1 cases excl
  cases=$(json_list "$CASES"); excl=$(json_list "$EXCLUDE")
  if [[ $MODE == server ]]; then
    cat >"$file" <<EOF
{
  "options": {"failByDrop": false},
  "outdir": "$OUTDIR",
  "servers": [{"agent": "$AGENT", "url": "ws://127.0.0.1:$SPORT/ws"}],
  "cases": $cases,
  "exclude-cases": $excl,
  "exclude-agent-cases": {}
}
EOF
  else
    cat >"$file" <<EOF
{
  "url": "ws://127.0.0.1:$CPORT",
  "options": {"failByDrop": false},
  "outdir": "$OUTDIR",
  "cases": $cases,
  "exclude-cases": $excl,
  "exclude-agent-cases": {}
}
EOF
  fi
}

# Count the cases wstest itself selects for this spec (its own CaseSet parser).
expected_cases() {
  "$VENV/bin/python" - "$1" <<'EOF'
import json, sys
from autobahntestsuite import fuzzing
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseBasename
from autobahntestsuite.caseset import CaseSet
spec = json.load(open(sys.argv[1]))
cs = CaseSet(fuzzing.CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
print(len(cs.parseSpecCases(spec)))
assert len(cs.parseSpecCases({"cases": ["*"]})) == 517
assert len(cs.parseSpecCases({"cases": ["*"], "exclude-cases": ["12.*", "13.*"]})) == 301
EOF
}

build_bin() {
  log "building ferrosocket (release)"
  cargo build --release -q -p ferrosocket-cli </dev/null
  [[ -x $BIN ]] || die "$BIN was not built"
}

# ---------------------------------------------------------------- main
# Two runs may start side by side (CI runs both roles at once): install under a lock.
mkdir -p "$ROOT/autobahn"
exec 9>"$ROOT/autobahn/.setup.lock"
flock 9
setup_wstest
flock -u 9
[[ $MODE == setup ]] && exit 0
mkdir -p "$REPORTS"
rm -rf "$OUTDIR"
SPEC=$REPORTS/$( [[ $MODE == server ]] && echo fuzzingclient || echo fuzzingserver )$SUFFIX.json
write_spec "$SPEC"
EXPECT=$(expected_cases "$SPEC") || die "could not count the selected cases"
[[ $EXPECT -gt 0 ]] || die "case selection '$CASES' minus '$EXCLUDE' selects no case"
log "mode=$MODE cases=$CASES exclude=${EXCLUDE:-none} -> $EXPECT cases (spec: ${SPEC#"$ROOT"/})"
T0=$SECONDS

if [[ $MODE == server ]]; then
  port_open 127.0.0.1 $SPORT && die "127.0.0.1:$SPORT is already in use; stop whatever listens there"
  if [[ -n ${FERROSOCKET_ECHO_CMD:-} ]]; then
    ECHO_CMD=${FERROSOCKET_ECHO_CMD//\{addr\}/127.0.0.1:$SPORT}
  else
    build_bin
    ECHO_CMD="$BIN echo --listen 127.0.0.1:$SPORT --quiet$STREAM_FLAG"
  fi
  SRVLOG=$REPORTS/server-testee$SUFFIX.log
  log "starting testee: $ECHO_CMD"
  start_bg "$SRVLOG" bash -c "exec $ECHO_CMD"
  SRV_PID=$BG_PID
  wait_port 127.0.0.1 $SPORT "$SRV_PID" testee "$SRVLOG" 60
  log "running wstest -m fuzzingclient (timeout ${RUN_TIMEOUT}s)"
  rc=0
  run_fg timeout -k 10 "$RUN_TIMEOUT" "$WSTEST" -m fuzzingclient -s "$SPEC" >"$REPORTS/wstest-server$SUFFIX.log" 2>&1 || rc=$?
  [[ $rc -eq 124 ]] && { tail -20 "$REPORTS/wstest-server$SUFFIX.log" >&2; die "wstest timed out after ${RUN_TIMEOUT}s"; }
  [[ $rc -eq 0 ]] || { tail -40 "$REPORTS/wstest-server$SUFFIX.log" >&2; die "wstest exited with $rc"; }
  if ! kill -0 "$SRV_PID" 2>/dev/null; then
    tail -40 "$SRVLOG" >&2 || true
    die "the testee server died during the run (log: ${SRVLOG#"$ROOT"/})"
  fi
  stop_pid "$SRV_PID" testee
else
  port_open 127.0.0.1 $CPORT && die "127.0.0.1:$CPORT is already in use; stop whatever listens there"
  if [[ -n ${FERROSOCKET_CLIENT_CMD:-} ]]; then
    CLIENT_CMD=$FERROSOCKET_CLIENT_CMD
  else
    build_bin
    CLIENT_CMD="$BIN autobahn-client --url ws://127.0.0.1:$CPORT --agent $AGENT$STREAM_FLAG"
  fi
  # wstest's fuzzingserver always binds all interfaces (listenWS(..., interface='')) and has
  # no option for it; wrap it so it binds 127.0.0.1 only. `-u 0` disables its 8080 web server.
  WSLOG=$REPORTS/wstest-client$SUFFIX.log
  log "starting wstest -m fuzzingserver on 127.0.0.1:$CPORT"
  start_bg "$WSLOG" "$VENV/bin/python" -c '
import sys
import autobahntestsuite.fuzzing as fz
_listen = fz.listenWS
fz.listenWS = lambda factory, ctx=None, backlog=50, interface="127.0.0.1": _listen(factory, ctx, backlog, interface)
from autobahntestsuite.wstest import run
sys.argv[0] = "wstest"
run()' -m fuzzingserver -s "$SPEC" -u 0
  WS_PID=$BG_PID
  wait_port 127.0.0.1 $CPORT "$WS_PID" "wstest fuzzingserver" "$WSLOG" 60
  log "running testee client: $CLIENT_CMD (timeout ${RUN_TIMEOUT}s)"
  rc=0
  run_fg timeout -k 10 "$RUN_TIMEOUT" bash -c "exec $CLIENT_CMD" >"$REPORTS/client-testee$SUFFIX.log" 2>&1 || rc=$?
  [[ $rc -eq 124 ]] && { tail -20 "$REPORTS/client-testee$SUFFIX.log" >&2; die "testee client timed out after ${RUN_TIMEOUT}s"; }
  [[ $rc -eq 0 ]] || { tail -40 "$REPORTS/client-testee$SUFFIX.log" >&2; die "testee client exited with $rc (log: autobahn/reports/client-testee$SUFFIX.log)"; }
  kill -0 "$WS_PID" 2>/dev/null || { tail -40 "$WSLOG" >&2; die "wstest fuzzingserver died during the run"; }
  stop_pid "$WS_PID" "wstest fuzzingserver"
fi
log "run finished in $((SECONDS - T0))s"

[[ -f $OUTDIR/index.json ]] || die "no report: ${OUTDIR#"$ROOT"/}/index.json is missing"
python3 "$ROOT/scripts/autobahn-summary.py" "$OUTDIR/index.json" \
  --expect "$EXPECT" --agent "$AGENT" --mode "$MODE" \
  --selection "cases: $CASES; excluded: ${EXCLUDE:-none}" \
  --markdown "$ROOT/autobahn/summary-$MODE$SUFFIX.md"
