#!/usr/bin/env python3
"""Fault injector for scripts/soak.sh: misbehaving clients against `ferrosocket echo`.

    faults.py --port PORT --duration SECS [--path /ws] [--seed N]

Runs until the duration ends, each fault on a fresh connection to 127.0.0.1 (stdlib only), and
prints one JSON object on stdout: per fault kind how many ran, passed and failed, with the first
few failure reasons. A fault "fails" when the server does not behave as it must (no close code
where one is due, a wrong code or status, a connection it never drops, a handshake it refuses).
Exit status: 0 all faults passed, 1 some failed, 2 usage error.

Fault kinds (the server runs with --keepalive 2 --keepalive-timeout 2):
  rst_after_handshake  handshake, then SO_LINGER 0 + close (RST)
  rst_mid_frame        handshake, 0-3 whole 64 KiB messages then part of one, then RST
  half_open            handshake, then silence; the server must drop it within HALF_OPEN_DROP_S
                       (watched with TCP_INFO, which reads nothing); closed by us after 10 s;
                       at most 50 open at once
  mid_frame_close      a header declaring 64 KiB, 1 KiB of payload, then FIN: the server must
                       close the connection (EOF) within 5 s
  invalid:*            a bad frame (optionally after one good message, whose echo must come
                       first); a close frame with the right code (1002/1007) and then EOF are due
  slow_reader          64 KiB messages, never read, closed after 5 s; the server must stop
                       reading (backpressure: at most SLOW_READER_MAX_MIB accepted)
  http:garbage         not HTTP: 400 due
  http:oversized       a 16.5-40 KiB head or more than 64 header lines: 431 due
  slowloris            a handshake one byte per 100 ms: dropped by the 10 s handshake timeout
                       (9-13 s after connecting); no more than 2 at once, none started unless
                       it fits before the deadline
Every socket operation has a timeout; every loop is bounded in time and count.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
OP_TIMEOUT = 5.0  # every connect/send/recv
HALF_OPEN_MAX = 50
HALF_OPEN_LIFE_S = 10.0
HALF_OPEN_DROP_S = 6.0  # keepalive 2 s + timeout 2 s, plus slack for a loaded 2-core machine
SLOW_READER_S = 5.0
SLOW_READER_MAX_MIB = 64
SLOWLORIS_INTERVAL_S = 0.1
SLOWLORIS_WINDOW = (9.0, 13.0)  # the server's handshake timeout is 10 s
SLOWLORIS_MAX_S = 16.0
MAX_FAULTS_PER_THREAD = 100_000
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TCP_ESTABLISHED, TCP_CLOSE, TCP_CLOSE_WAIT = 1, 7, 8


class Failure(Exception):
    """The server did something it must not (or failed to do something due)."""


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.kinds = {}

    def _kind(self, kind):
        return self.kinds.setdefault(kind, {"run": 0, "ok": 0, "fail": 0, "errors": []})

    def record(self, kind, ok, reason=None):
        with self.lock:
            k = self._kind(kind)
            k["run"] += 1
            k["ok" if ok else "fail"] += 1
            if not ok and len(k["errors"]) < 5:
                k["errors"].append(reason)

    def maximum(self, kind, key, value):
        with self.lock:
            k = self._kind(kind)
            k[key] = max(k.get(key, value), value)

    def add(self, kind, key, n=1):
        with self.lock:
            k = self._kind(kind)
            k[key] = k.get(key, 0) + n


# ---- wire helpers -------------------------------------------------------------------------


def mask(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode, payload, fin=True, masked=True, rsv=0, length=None):
    """A client frame; `length` overrides the declared payload length."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def parse_frame(buf):
    """(opcode, payload, consumed) of the first server frame in buf, or None if incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        raise Failure("server sent a masked frame")
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < pos + n:
        return None
    return b0 & 0x0F, bytes(buf[pos : pos + n]), pos + n


def connect(port, timeout=OP_TIMEOUT):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def upgrade_request(port, path, key, pad=0):
    extra = "X-Pad: " + "p" * pad + "\r\n" if pad else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


def read_head(s, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline or len(buf) > 65536:
            raise Failure("no complete HTTP response head")
        chunk = s.recv(65536)
        if not chunk:
            raise Failure(f"connection closed before a complete response head ({buf[:40]!r})")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def handshake(port, path):
    """A connected, upgraded socket and the bytes that followed the 101 head."""
    s = connect(port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(upgrade_request(port, path, key))
        head, rest = read_head(s, time.monotonic() + OP_TIMEOUT)
        if not head.startswith(b"HTTP/1.1 101"):
            raise Failure(f"handshake refused: {head[:60]!r}")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        got = [
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"sec-websocket-accept:")
        ]
        if got != [accept]:
            raise Failure(f"Sec-WebSocket-Accept {got!r}, want {accept!r}")
        return s, rest
    except BaseException:
        s.close()
        raise


def reset(s):
    """Abortive close: SO_LINGER 0, then close sends RST."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()


def wait_eof(s, timeout):
    """True when the peer closed (EOF or reset) within timeout; reads and drops data."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
    return False


def tcp_state(s):
    try:
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return TCP_CLOSE


# ---- faults -------------------------------------------------------------------------------


def rst_after_handshake(port, path, stats):
    s, _ = handshake(port, path)
    reset(s)


def rst_mid_frame(port, path, stats):
    s, _ = handshake(port, path)
    try:
        whole = random.randint(0, 3)
        payload = os.urandom(65536)
        for _ in range(whole):
            s.sendall(frame(0x2, payload))
        part = random.randint(0, 4096)
        s.sendall(frame(0x2, payload, length=65536)[: 14 + part])
    finally:
        reset(s)


def mid_frame_close(port, path, stats):
    s, _ = handshake(port, path)
    try:
        s.sendall(frame(0x2, os.urandom(1024), length=65536)[: 14 + 1024])
        s.shutdown(socket.SHUT_WR)
        if not wait_eof(s, OP_TIMEOUT):
            raise Failure("server did not close a connection that ended mid-frame")
    finally:
        s.close()


def bad_utf8():
    return random.choice([b"\xff", b"ok\xc0\xaf", b"\xed\xa0\x80", b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"])


INVALID = {
    # name: (builder, expected close code)
    "unmasked": (lambda: frame(0x2, b"hello", masked=False), 1002),
    "reserved_opcode": (lambda: frame(random.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]), b"x"), 1002),
    "rsv_bits": (lambda: frame(0x1, b"hi", rsv=random.choice([0x40, 0x20, 0x10])), 1002),
    "bad_utf8": (lambda: frame(0x1, bad_utf8()), 1007),
    "control_too_long": (lambda: frame(random.choice([0x8, 0x9, 0xA]), b"c" * random.randint(126, 300)), 1002),
    "close_bad_utf8_reason": (lambda: frame(0x8, struct.pack("!H", 1000) + bad_utf8()), 1007),
    "misc_1002": (
        lambda: random.choice(
            [
                frame(0x0, b"orphan continuation"),
                frame(0x9, b"fragmented ping", fin=False),
                frame(0x8, b"\x03"),  # one-byte close payload
                frame(0x8, struct.pack("!H", random.choice([999, 1005, 1006, 1015, 2000]))),
                frame(0x1, b"a", fin=False) + frame(0x2, b"b"),  # new message mid-fragment
            ]
        ),
        1002,
    ),
}


def invalid_frame(name, port, path, stats):
    build, want = INVALID[name]
    s, buf = handshake(port, path)
    try:
        echo_first = random.random() < 0.5
        good = b"before the bad frame"
        data = (frame(0x1, good) if echo_first else b"") + build()
        s.sendall(data)
        deadline = time.monotonic() + OP_TIMEOUT
        buf = bytearray(buf)
        code = None
        seen_echo = False
        while code is None:
            parsed = parse_frame(buf)
            if parsed is None:
                if time.monotonic() > deadline:
                    raise Failure(f"no close frame within {OP_TIMEOUT:.0f} s (want {want})")
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    raise Failure(f"connection reset without a close frame (want {want})") from None
                if not chunk:
                    raise Failure(f"connection closed without a close frame (want {want})")
                buf += chunk
                continue
            op, payload, used = parsed
            del buf[:used]
            if op == 0x8:
                if len(payload) < 2:
                    raise Failure(f"close frame without a code (want {want})")
                code = struct.unpack("!H", payload[:2])[0]
            elif op == 0x1 and payload == good:
                seen_echo = True
            elif op in (0x9, 0xA):
                continue
            else:
                raise Failure(f"unexpected frame opcode {op:#x} before the close")
        if code != want:
            raise Failure(f"close code {code}, want {want} ({payload[2:60]!r})")
        if echo_first and not seen_echo:
            raise Failure("the good message before the bad frame was not echoed first")
        if not wait_eof(s, OP_TIMEOUT):
            raise Failure("server did not close the TCP connection after its close frame")
    finally:
        s.close()


def http_garbage(port, path, stats):
    g = random.choice(
        [
            lambda: bytes([random.randint(0x80, 0xFF)]) + os.urandom(random.randint(0, 4096)),
            lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # TLS hello
            lambda: b"SSH-2.0-OpenSSH_9.6\r\n",
            lambda: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            lambda: b"GET /ws HTTP/9.9\r\n\r\n",
            lambda: b"GET /ws HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n",
        ]
    )()
    expect_status(port, g, b"400")


def http_oversized(port, path, stats):
    if random.random() < 0.7:
        key = base64.b64encode(os.urandom(16)).decode()
        data = upgrade_request(port, path, key, pad=random.randint(16_900, 40_000))
    else:
        lines = b"".join(b"X-H%d: v\r\n" % i for i in range(random.randint(70, 300)))
        data = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n".encode() + lines + b"\r\n"
    expect_status(port, data, b"431")


def expect_status(port, data, status):
    s = connect(port)
    try:
        try:
            s.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server may answer and close before reading all of it
        try:
            head, _ = read_head(s, time.monotonic() + OP_TIMEOUT)
        except ConnectionResetError:
            raise Failure(f"reset before any answer (want {status.decode()})") from None
        if not head.startswith(b"HTTP/1.1 " + status):
            raise Failure(f"answer {head[:40]!r}, want {status.decode()}")
        if not wait_eof(s, OP_TIMEOUT):
            raise Failure(f"connection not closed after the {status.decode()} answer")
    finally:
        s.close()


def slow_reader(port, path, stats):
    s, _ = handshake(port, path)
    sent = 0
    dropped = False
    try:
        wire = frame(0x2, os.urandom(65536))
        view = memoryview(wire)
        off = 0
        end = time.monotonic() + SLOW_READER_S
        s.settimeout(0.25)
        for _ in range(100_000):
            if time.monotonic() >= end:
                break
            try:
                n = s.send(view[off:])
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                dropped = True
                break
            sent += n
            off = (off + n) % len(wire)
    finally:
        reset(s)  # unread data: the close is an RST anyway
    mib = sent / (1 << 20)
    stats.maximum("slow_reader", "max_mib_accepted", round(mib, 1))
    if dropped:
        stats.add("slow_reader", "dropped_by_server")
    if mib > SLOW_READER_MAX_MIB:
        raise Failure(f"server accepted {mib:.0f} MiB from a peer that reads nothing (no backpressure)")


def slowloris(port, path, stats):
    s = connect(port)
    t0 = time.monotonic()
    dropped_at = None
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        data = upgrade_request(port, path, key, pad=200)  # ~370 bytes: 37 s at 10 bytes/s
        for i in range(len(data)):
            now = time.monotonic()
            if now - t0 > SLOWLORIS_MAX_S:
                break
            r, _, _ = select.select([s], [], [], 0)
            if r:
                try:
                    got = s.recv(4096)
                except (ConnectionResetError, BrokenPipeError):
                    got = b""
                if got:
                    raise Failure(f"answer to an incomplete request: {got[:40]!r}")
                dropped_at = now - t0
                break
            try:
                s.send(data[i : i + 1])
            except (ConnectionResetError, BrokenPipeError):
                dropped_at = time.monotonic() - t0
                break
            time.sleep(SLOWLORIS_INTERVAL_S)
    finally:
        s.close()
    if dropped_at is None:
        raise Failure(f"not dropped within {SLOWLORIS_MAX_S:.0f} s (handshake timeout is 10 s)")
    stats.maximum("slowloris", "max_drop_s", round(dropped_at, 2))
    lo, hi = SLOWLORIS_WINDOW
    if not lo <= dropped_at <= hi:
        raise Failure(f"dropped after {dropped_at:.1f} s, want {lo:.0f}-{hi:.0f} s")


# ---- runners ------------------------------------------------------------------------------


def run_one(kind, fn, stats, *args):
    try:
        fn(*args)
        stats.record(kind, True)
    except Failure as e:
        stats.record(kind, False, str(e))
    except (OSError, ValueError) as e:  # connect refused, timeouts, resets where none were due
        stats.record(kind, False, f"{type(e).__name__}: {e}")


QUICK = [
    ("rst_after_handshake", rst_after_handshake, 2),
    ("rst_mid_frame", rst_mid_frame, 2),
    ("mid_frame_close", mid_frame_close, 2),
    ("http:garbage", http_garbage, 1),
    ("http:oversized", http_oversized, 1),
] + [("invalid:" + name, None, 1) for name in INVALID]


def mixed_worker(port, path, stats, deadline, seed):
    rnd = random.Random(seed)
    kinds = [k for k in QUICK for _ in range(k[2])]
    for _ in range(MAX_FAULTS_PER_THREAD):
        if time.monotonic() >= deadline:
            return
        kind, fn, _ = rnd.choice(kinds)
        if fn is None:
            name = kind.split(":", 1)[1]
            run_one(kind, lambda: invalid_frame(name, port, path, stats), stats)
        else:
            run_one(kind, fn, stats, port, path, stats)
        time.sleep(rnd.uniform(0.02, 0.1))


def sequential_worker(kind, fn, length, port, path, stats, deadline, start_delay):
    time.sleep(start_delay)
    for _ in range(MAX_FAULTS_PER_THREAD):
        if time.monotonic() + length > deadline:
            return
        run_one(kind, fn, stats, port, path, stats)
        time.sleep(0.2)


def half_open_worker(port, path, stats, deadline):
    """Keeps up to HALF_OPEN_MAX silent connections open (opening one per 0.2 s), watches their
    TCP state without reading, and closes each after HALF_OPEN_LIFE_S."""
    live = []  # [socket, opened_at, dropped_at]
    stop_opening = deadline - HALF_OPEN_LIFE_S
    next_open = 0.0
    peak = 0
    for _ in range(10_000_000):
        now = time.monotonic()
        if now >= stop_opening and not live:
            break
        if now > deadline + HALF_OPEN_LIFE_S + 30:
            break
        if now < stop_opening and len(live) < HALF_OPEN_MAX and now >= next_open:
            next_open = now + 0.2
            try:
                s, _ = handshake(port, path)
                live.append([s, time.monotonic(), None])
                peak = max(peak, len(live))
            except (Failure, OSError) as e:
                stats.record("half_open", False, f"handshake: {e}")
        now = time.monotonic()
        keep = []
        for entry in live:
            s, opened, dropped = entry
            if dropped is None and tcp_state(s) != TCP_ESTABLISHED:
                entry[2] = dropped = now
            if now - opened < HALF_OPEN_LIFE_S:
                keep.append(entry)
                continue
            try:
                s.setblocking(False)  # with a timeout set, Python would wait on EAGAIN
                pinged = s.recv(2, socket.MSG_PEEK)[:1] == b"\x89"
            except OSError:
                pinged = False
            if pinged:
                stats.add("half_open", "pinged")
            reset(s)
            if dropped is None:
                stats.record("half_open", False, f"still open after {HALF_OPEN_LIFE_S:.0f} s")
                continue
            stats.maximum("half_open", "max_drop_s", round(dropped - opened, 2))
            if dropped - opened > HALF_OPEN_DROP_S:
                stats.record("half_open", False, f"dropped after {dropped - opened:.1f} s")
            else:
                stats.record("half_open", True)
        live = keep
        time.sleep(0.1)
    for s, _, _ in live:
        reset(s)
    stats.maximum("half_open", "peak_open", peak)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--path", default="/ws")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if not 1 <= args.duration <= 86_400:
        ap.error("--duration must be 1 to 86400 seconds")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    random.seed(seed)
    stats = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.duration
    port, path = args.port, args.path
    threads = [
        threading.Thread(target=mixed_worker, args=(port, path, stats, deadline, seed + 1)),
        threading.Thread(target=mixed_worker, args=(port, path, stats, deadline, seed + 2)),
        threading.Thread(target=half_open_worker, args=(port, path, stats, deadline)),
        threading.Thread(
            target=sequential_worker,
            args=("slow_reader", slow_reader, SLOW_READER_S + 1, port, path, stats, deadline, 1.0),
        ),
    ] + [
        threading.Thread(
            target=sequential_worker,
            args=("slowloris", slowloris, SLOWLORIS_WINDOW[1] + 1, port, path, stats, deadline, d),
        )
        for d in (0.5, 5.0)
    ]
    for t in threads:
        t.daemon = True
        t.start()
    hard = deadline + HALF_OPEN_LIFE_S + 40
    for t in threads:
        t.join(max(0.0, hard - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    with stats.lock:
        kinds = {k: stats.kinds[k] for k in sorted(stats.kinds)}
        total = sum(k["run"] for k in kinds.values())
        failed = sum(k["fail"] for k in kinds.values())
    out = {
        "seed": seed,
        "seconds": round(time.monotonic() - t0, 1),
        "connections": total,
        "failed": failed,
        "stuck_threads": stuck,
        "kinds": kinds,
    }
    print(json.dumps(out), flush=True)
    os._exit(0 if failed == 0 and stuck == 0 else 1)


if __name__ == "__main__":
    main()
