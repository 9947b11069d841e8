"""RFC 8441 by hand: WebSockets over HTTP/2 with the `h2` library (python-hyper), as a peer
nobody here wrote.

Opens ONE HTTP/2 connection (TLS with ALPN h2, or cleartext prior knowledge), waits for the
server's SETTINGS_ENABLE_CONNECT_PROTOCOL, opens several WebSockets on it as extended CONNECT
streams, and on each echoes text and binary messages of every size (masked client frames built
here, permessage-deflate with context takeover done here with zlib when --deflate), then closes
with 1000 and expects the server's close back.

usage: h2_client.py HOST PORT PATH [--label L] [--tls] [--sockets N] [--sizes 0,125,...] [--deflate]
Prints one RESULT line per kind and size (all sockets) and one for the closes, in the interop
table's format; exit status 1 on any mismatch.
"""

import argparse
import os
import socket
import ssl
import struct
import sys
import time
import zlib

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

import payload

TAIL = b"\x00\x00\xff\xff"


def frame(opcode: int, data: bytes, rsv1: bool = False) -> bytes:
    """One masked client frame, FIN set."""
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    mask = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big") if n else b""
    return head + key + masked


class Socket:
    """One WebSocket on an HTTP/2 stream: bytes in, whole messages out."""

    def __init__(self, stream_id: int, deflate: bool):
        self.id = stream_id
        self.buf = bytearray()
        self.need = 0
        self.parts = []
        self.first = None
        self.compressed = False
        self.messages = []
        self.ended = False
        self.deflate = deflate
        self.comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)

    def feed(self, data: bytes):
        self.buf += data
        if len(self.buf) < self.need:
            return  # the frame in progress is still incomplete
        self.need = 0
        while True:
            if len(self.buf) < 2:
                return
            b0, b1 = self.buf[0], self.buf[1]
            if b1 & 0x80:
                raise ValueError("server frame is masked")
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < off + n:
                self.need = off + n
                return
            data = bytes(self.buf[off:off + n])
            del self.buf[:off + n]
            opcode, fin = b0 & 0x0F, bool(b0 & 0x80)
            if opcode >= 8:
                self.messages.append((opcode, data))
                continue
            if opcode != 0:
                self.first, self.compressed = opcode, bool(b0 & 0x40)
            self.parts.append(data)
            if fin:
                whole = b"".join(self.parts)
                self.parts = []
                if self.compressed:
                    whole = self.decomp.decompress(whole + TAIL)
                self.messages.append((self.first, whole))

    def message(self, opcode: int, data: bytes) -> bytes:
        if self.deflate and opcode in (1, 2):
            body = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
            return frame(opcode, body[:-4] if body.endswith(TAIL) else body, rsv1=True)
        return frame(opcode, data)


class Client:
    def __init__(self, args):
        raw = socket.create_connection((args.host, args.port), timeout=args.timeout)
        if args.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the certificate is made at test time
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname=args.host)
            if raw.selected_alpn_protocol() != "h2":
                raise SystemExit(f"FAIL: ALPN chose {raw.selected_alpn_protocol()!r}, not h2")
        self.sock = raw
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(1 << 30)
        self.flush()
        self.sockets = {}
        self.responses = {}
        self.settings = False

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise SystemExit("FAIL: the server closed the connection")
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings = True
            elif isinstance(ev, h2.events.ResponseReceived):
                self.responses[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                self.sockets[ev.stream_id].feed(ev.data)
            # The first of the two counts: after its END_STREAM a server may also reset the
            # stream with NO_ERROR to stop the client's side (RFC 9113 §8.1).
            elif isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id in self.sockets and not self.sockets[ev.stream_id].ended:
                    self.sockets[ev.stream_id].ended = "END_STREAM"
            elif isinstance(ev, h2.events.StreamReset):
                if ev.stream_id in self.sockets and not self.sockets[ev.stream_id].ended:
                    self.sockets[ev.stream_id].ended = f"RST_STREAM {ev.error_code!r}"
        self.flush()

    def send(self, sid: int, data: bytes):
        view, at = memoryview(data), 0
        while at < len(data):
            window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if window <= 0:
                self.pump()
                continue
            self.h2.send_data(sid, bytes(view[at:at + window]))
            at += window
            self.flush()


def result(label, kind, size, ok, ext, ms, detail=""):
    """A line in the interop table's format (see xtask/src/interop.rs, Row::parse)."""
    print("\t".join(["RESULT", label, kind, str(size), "ok" if ok else "FAIL", ext or "none",
                     str(int(ms)), detail]), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("--label", default=None)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sockets", type=int, default=3)
    ap.add_argument("--sizes", default="0,1,125,126,65535,65536,1048576")
    ap.add_argument("--deflate", action="store_true")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    label = args.label or ("h2" if args.tls else "h2c") + (" deflate" if args.deflate else "")

    c = Client(args)
    while not c.settings:
        c.pump()
    if c.h2.remote_settings.enable_connect_protocol != 1:
        result(label, "setup", 0, False, "", 0, "the server's SETTINGS do not enable extended CONNECT")
        return 1
    print(f"{label}: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1", file=sys.stderr)

    for _ in range(args.sockets):
        sid = c.h2.get_next_available_stream_id()
        headers = [(":method", "CONNECT"), (":protocol", "websocket"),
                   (":scheme", "https" if args.tls else "http"), (":path", args.path),
                   (":authority", f"{args.host}:{args.port}"), ("sec-websocket-version", "13")]
        if args.deflate:
            headers.append(("sec-websocket-extensions", "permessage-deflate"))
        c.h2.send_headers(sid, headers)
        c.sockets[sid] = Socket(sid, args.deflate)
    c.flush()
    while len(c.responses) < args.sockets:
        c.pump()
    ext = ""
    for sid, headers in sorted(c.responses.items()):
        ext = headers.get("sec-websocket-extensions", "")
        if headers.get(":status") != "200" or (args.deflate and not ext.startswith("permessage-deflate")):
            result(label, "setup", 0, False, ext, 0, f"stream {sid} answered {headers}")
            return 1
    print(f"{label}: {args.sockets} WebSockets answered 200 on one connection", file=sys.stderr)

    failed = 0
    for size in sizes:
        for kind, opcode in (("text", 1), ("binary", 2)):
            t0, bad = time.monotonic(), ""
            for sid, ws in sorted(c.sockets.items()):
                data = payload.text(size, sid) if opcode == 1 else payload.binary(size)
                c.send(sid, ws.message(opcode, data))
                while not ws.messages:
                    c.pump()
                got = ws.messages.pop(0)
                if got != (opcode, data) and not bad:
                    bad = f"stream {sid}: got opcode {got[0]}, {len(got[1])} bytes"
            result(label, kind, size, not bad, ext, (time.monotonic() - t0) * 1000, bad)
            failed += bool(bad)

    # The close handshake ends each stream cleanly: the server's END_STREAM, then ours.
    t0, bad = time.monotonic(), ""
    for sid, ws in sorted(c.sockets.items()):
        c.send(sid, frame(8, struct.pack("!H", 1000) + b"bye"))
        while not ws.messages:
            c.pump()
        opcode, data = ws.messages.pop(0)
        if opcode != 8 or data[:2] != struct.pack("!H", 1000):
            bad = bad or f"stream {sid}: close answered with opcode {opcode} {data!r}"
            continue
        while not ws.ended:
            c.pump()
        if ws.ended != "END_STREAM":
            bad = bad or f"stream {sid}: after the close the server sent {ws.ended}"
            continue
        if sid in c.h2.streams and not c.h2.streams[sid].closed:
            try:
                c.h2.end_stream(sid)
                c.flush()
            except h2.exceptions.StreamClosedError:
                pass  # the server's NO_ERROR reset closed it already
    result(label, "close", 0, not bad, ext, (time.monotonic() - t0) * 1000,
           bad or f"{args.sockets} closes answered with 1000, streams ended")
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())
