#!/usr/bin/env bash
# Browser end-to-end test of the echo page: starts `ferrosocket echo` on a free loopback port
# and drives http://127.0.0.1:PORT/ in headless Debian Chromium with playwright-core
# (scripts/browser/echo-page.mjs). Screenshot: target/browser-echo.png.
#
# Installs what it needs when missing: Debian's chromium (apt-get) and playwright-core
# (npm, into scripts/browser/node_modules, version pinned in scripts/browser/package.json).
#
# Environment:
#   FERROSOCKET_ECHO_CMD   testee command instead of target/release/ferrosocket; "{addr}" is
#                          replaced by 127.0.0.1:PORT. It must serve the page at / and echo on /ws.
#   BROWSER_TEST_TIMEOUT   overall limit in seconds (default 1200, installs included)
set -euo pipefail

# Overall timeout: re-run this script under timeout(1), which signals the whole process
# group (this script, the server, node) when the limit is hit.
if [[ -z ${_BROWSER_TEST_INNER:-} ]]; then
  export _BROWSER_TEST_INNER=1
  # Background + wait, so that a signal to this script is forwarded at once.
  timeout -k 15 "${BROWSER_TEST_TIMEOUT:-1200}" bash "${BASH_SOURCE[0]}" "$@" </dev/null &
  inner=$!
  trap 'kill -TERM "$inner" 2>/dev/null; wait "$inner"; exit 143' TERM
  trap 'kill -TERM "$inner" 2>/dev/null; wait "$inner"; exit 130' INT
  rc=0
  wait "$inner" || rc=$?
  [[ $rc -eq 124 ]] && echo "browser-test: FAIL: overall timeout of ${BROWSER_TEST_TIMEOUT:-1200}s reached" >&2
  exit "$rc"
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BROWSER_DIR=$ROOT/scripts/browser
CHROMIUM=/usr/bin/chromium
BIN=$ROOT/target/release/ferrosocket
SCREENSHOT=$ROOT/target/browser-echo.png

log() { echo "browser-test: $*"; }
die() { echo "browser-test: FAIL: $*" >&2; exit 1; }

SRV_PID=
NODE_PID=
cleanup() {
  local rc=$? i
  if [[ -n $NODE_PID ]]; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  if [[ -n $SRV_PID ]] && kill -0 "$SRV_PID" 2>/dev/null; then
    pkill -TERM -P "$SRV_PID" 2>/dev/null || true
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- chromium (Debian package)
if [[ ! -x $CHROMIUM ]]; then
  log "installing Debian chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  aptlog=$(mktemp /tmp/browser-apt.XXXXXX.log)
  { timeout 300 apt-get update -q && timeout 900 apt-get install -y -q chromium; } \
      >"$aptlog" 2>&1 </dev/null || { tail -40 "$aptlog" >&2; die "apt-get install chromium failed"; }
  rm -f "$aptlog"
fi
log "$("$CHROMIUM" --version 2>/dev/null || echo "chromium: version unknown")"

# ---- playwright-core (npm)
want=$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$BROWSER_DIR/package.json")
have=$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
  "$BROWSER_DIR/node_modules/playwright-core/package.json" 2>/dev/null || true)
if [[ $have != "$want" ]]; then
  log "installing playwright-core $want (npm)"
  (cd "$BROWSER_DIR" && timeout 600 npm install --no-audit --no-fund --no-package-lock --loglevel=error </dev/null) \
    || die "npm install playwright-core failed"
fi

# ---- testee server on a free loopback port
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
ADDR=127.0.0.1:$PORT
if [[ -n ${FERROSOCKET_ECHO_CMD:-} ]]; then
  ECHO_CMD=${FERROSOCKET_ECHO_CMD//\{addr\}/$ADDR}
else
  log "building ferrosocket (release)"
  cargo build --release -q -p ferrosocket-cli </dev/null
  [[ -x $BIN ]] || die "$BIN was not built"
  ECHO_CMD="$BIN echo --listen $ADDR"
fi
mkdir -p "$ROOT/target"
SRVLOG=$ROOT/target/browser-echo-server.log
log "starting testee: $ECHO_CMD"
bash -c "exec $ECHO_CMD" >"$SRVLOG" 2>&1 </dev/null &
SRV_PID=$!
for i in $(seq 1 300); do
  kill -0 "$SRV_PID" 2>/dev/null || { cat "$SRVLOG" >&2; die "testee exited before listening on $ADDR"; }
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  [[ $i -eq 300 ]] && { cat "$SRVLOG" >&2; die "testee did not listen on $ADDR within 30s"; }
  sleep 0.1
done

# ---- drive the page
rm -f "$SCREENSHOT"
rc=0
timeout -k 5 180 node "$BROWSER_DIR/echo-page.mjs" "http://$ADDR/" "$SCREENSHOT" </dev/null &
NODE_PID=$!
wait "$NODE_PID" || rc=$?
NODE_PID=
if [[ $rc -ne 0 ]]; then
  echo "---- testee output (last 30 lines) ----" >&2
  tail -30 "$SRVLOG" >&2 || true
  [[ $rc -eq 124 ]] && die "echo-page.mjs timed out after 180s"
  die "echo-page.mjs failed (exit $rc)"
fi
kill -0 "$SRV_PID" 2>/dev/null || die "testee died during the browser test"
log "PASS (screenshot: ${SCREENSHOT#"$ROOT"/})"
