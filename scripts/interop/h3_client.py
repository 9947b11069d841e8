#!/usr/bin/env python3
"""An independent WebSocket-over-HTTP/3 client (RFC 9220) for interop with ferrosocket.

Built on aioquic's H3Connection (aioquic==1.7.2, installed into .venv-interop by
`cargo xtask interop`); the WebSocket framing (RFC 6455: masking, lengths, close) is done
here by hand. Against an echo server it:

1. opens a QUIC connection with ALPN h3 and waits for the server's SETTINGS, which must
   enable extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, RFC 9220 section 3);
2. sends the extended CONNECT (:method CONNECT, :protocol websocket, :scheme https,
   :authority, :path, sec-websocket-version: 13) and requires :status 200;
3. echoes a text and a binary message (70,000 bytes: the 64-bit length form) and checks them
   byte for byte;
4. closes with 1000 and requires the server's close frame with 1000 and the end of its
   stream, then ends ours.

Exits 0 on success, 1 on any mismatch or error (with a message on stderr).

    python3 scripts/interop/h3_client.py HOST PORT PATH [--insecure] [--cafile PEM]
"""

import argparse
import asyncio
import os
import ssl
import struct
import sys
import traceback

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection, Setting
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent, StreamReset

TIMEOUT = 20.0


class Failure(Exception):
    pass


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.headers = {}
        self.data = {}
        self.ended = set()
        self.reset = {}
        self.changed = asyncio.Event()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamReset):
            self.reset[event.stream_id] = event.error_code
        for e in self.h3.handle_event(event):
            if isinstance(e, HeadersReceived):
                self.headers.setdefault(e.stream_id, []).append(e.headers)
                if e.stream_ended:
                    self.ended.add(e.stream_id)
            elif isinstance(e, DataReceived):
                self.data.setdefault(e.stream_id, bytearray()).extend(e.data)
                if e.stream_ended:
                    self.ended.add(e.stream_id)
        self.changed.set()

    async def until(self, what, cond):
        async def wait():
            while True:
                value = cond()
                if value is not None:
                    return value
                self.changed.clear()
                await self.changed.wait()

        try:
            return await asyncio.wait_for(wait(), TIMEOUT)
        except asyncio.TimeoutError:
            raise Failure(f"timed out waiting for {what}")


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 section 5.2), FIN set."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def parse_frame(buf: bytearray):
    """One unmasked server frame from the start of buf: (fin, opcode, payload, used) or None."""
    if len(buf) < 2:
        return None
    fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
    if buf[1] & 0x80:
        raise Failure("the server masked a frame (RFC 6455 section 5.1 forbids it)")
    n, pos = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack(">H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack(">Q", buf[2:10])[0], 10
    if len(buf) < pos + n:
        return None
    return bool(fin), opcode, bytes(buf[pos:pos + n]), pos + n


async def run(args) -> None:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    if args.insecure:
        config.verify_mode = ssl.CERT_NONE
    if args.cafile:
        config.load_verify_locations(args.cafile)
    async with connect(args.host, args.port, configuration=config, create_protocol=Client) as client:
        settings = await client.until("the server's SETTINGS", lambda: client.h3.received_settings)
        if settings.get(Setting.ENABLE_CONNECT_PROTOCOL) != 1:
            raise Failure(f"SETTINGS without ENABLE_CONNECT_PROTOCOL=1: {settings}")

        stream = client._quic.get_next_available_stream_id()
        authority = f"{args.host}:{args.port}".encode()
        client.h3.send_headers(stream, [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"https"),
            (b":authority", authority),
            (b":path", args.path.encode()),
            (b"sec-websocket-version", b"13"),
            (b"user-agent", b"aioquic-interop"),
        ], end_stream=False)
        client.transmit()
        headers = await client.until("the response HEADERS", lambda: client.headers.get(stream))
        response = dict(headers[0])
        if response.get(b":status") != b"200":
            raise Failure(f"expected :status 200, got {headers[0]}")
        for forbidden in (b"sec-websocket-accept", b"upgrade", b"connection"):
            if forbidden in response:
                raise Failure(f"the 200 carries {forbidden!r}, which RFC 9220 leaves out")

        buf = client.data.setdefault(stream, bytearray())

        async def next_frame(what):
            def parsed():
                if stream in client.reset:
                    raise Failure(f"the server reset the stream ({client.reset[stream]:#x})")
                f = parse_frame(buf)
                if f is None and stream in client.ended:
                    raise Failure(f"the stream ended before {what}")
                return f
            fin, opcode, payload, used = await client.until(what, parsed)
            del buf[:used]
            if not fin:
                raise Failure(f"{what}: fragmented echo not expected from this server")
            return opcode, payload

        def send(opcode, payload):
            client.h3.send_data(stream, ws_frame(opcode, payload), end_stream=False)
            client.transmit()

        text = "héllo over HTTP/3 from aioquic".encode()
        send(0x1, text)
        opcode, payload = await next_frame("the text echo")
        if (opcode, payload) != (0x1, text):
            raise Failure(f"text echo mismatch: opcode {opcode}, {payload[:40]!r}")

        binary = os.urandom(70_000)
        send(0x2, binary)
        opcode, payload = await next_frame("the binary echo")
        if (opcode, payload) != (0x2, binary):
            raise Failure(f"binary echo mismatch: opcode {opcode}, {len(payload)} bytes")

        send(0x8, struct.pack(">H", 1000) + b"bye")
        opcode, payload = await next_frame("the close answer")
        if opcode != 0x8 or payload[:2] != struct.pack(">H", 1000):
            raise Failure(f"close answer mismatch: opcode {opcode}, {payload!r}")
        await client.until("the end of the server's stream", lambda: True if stream in client.ended else None)
        # Our side of the stream ends too (a QUIC FIN: aioquic forgets a stream whose
        # receiving side ended, so its H3 layer no longer sends on it), unless the server,
        # done with the WebSocket, already asked us to stop sending (STOP_SENDING).
        try:
            client._quic.send_stream_data(stream, b"", end_stream=True)
        except RuntimeError:
            pass
        client.transmit()
        print(f"ok: h3 websocket echo (text, {len(binary)} binary bytes, close 1000) via {args.host}:{args.port}{args.path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    p.add_argument("--cafile", help="trust this PEM certificate")
    args = p.parse_args()
    try:
        asyncio.run(run(args))
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - any other error is a failed interop run
        traceback.print_exc()
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
