#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/corpus/<target>/<name>.

Run it again after changing a target's input layout: `python3 fuzz/seeds.py`. It only
(re)writes the seeds it names; anything else in the corpus directories is left alone (the
fuzzer's own finds go to a scratch directory, see xtask/src/fuzz.rs).
"""

import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 §5.7


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(opcode, payload=b"", fin=True, rsv1=False, mask=None, len_form=None):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    form = len_form or (7 if n < 126 else 16 if n < 65536 else 64)
    m = 0x80 if mask else 0
    if form == 7:
        head = bytes([b0, m | n])
    elif form == 16:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


HELLO_DEFLATED = bytes.fromhex("f248cdc9c90700")  # RFC 7692 §7.2.3.1
assert deflate(b"Hello") == HELLO_DEFLATED


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


# ---- frame_header --------------------------------------------------------------------------
for name, data in {
    "text-hello": frame(1, b"Hello"),
    "text-hello-masked": frame(1, b"Hello", mask=KEY),
    "fragment-first": frame(1, b"Hel", fin=False),
    "continuation-last": frame(0, b"lo"),
    "binary-256-len16": frame(2, b"\0" * 256)[:4],
    "binary-64k-len64": frame(2, b"", len_form=64)[:2] + struct.pack(">Q", 65536),
    "len64-msb-set": bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    "len64-masked": bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 0, 1, 0]) + KEY,
    "ping-masked": frame(9, b"Hello", mask=KEY),
    "pong": frame(10, b"Hello"),
    "close-1000": frame(8, close_payload(1000)),
    "rsv-all-reserved-op": bytes([0xFF, 0x00]),
    "compressed": frame(1, HELLO_DEFLATED, rsv1=True),
}.items():
    write("frame_header", name, data)


# ---- connection_server / connection_client -------------------------------------------------
def conn_input(frames, flags=0x06, dp=0, dc=0x20, lim=0x10, sched=(0,), mode=0):
    """`mode`: the high bits of byte 4 (0x08 streamed, 0x10 switch, bits 5-6 chunk size)."""
    return bytes([flags, dp, dc, lim, (len(sched) - 1) | mode]) + bytes(sched) + frames


for role in ("server", "client"):
    mask = KEY if role == "server" else None
    target = "connection_" + role

    def f(opcode, payload=b"", **kw):
        return frame(opcode, payload, mask=mask, **kw)

    seeds = {
        "text-hello": conn_input(f(1, b"Hello")),
        "text-hello-bytewise": conn_input(f(1, b"Hello"), sched=(1,)),
        "binary-256": conn_input(f(2, bytes(range(256))), flags=0x16, sched=(3, 100)),
        "binary-300-len64": conn_input(f(2, b"x" * 300, len_form=64), sched=(7,)),
        "fragmented-hello": conn_input(f(1, b"Hel", fin=False) + f(0, b"lo")),
        "fragmented-ping-between": conn_input(
            f(1, b"Hel", fin=False) + f(9, b"ping") + f(0, b"lo"), flags=0x02
        ),
        "fragmented-utf8-split": conn_input(
            f(1, "κόσ".encode()[:3], fin=False) + f(0, "κόσμε".encode()[3:]), sched=(2, 5)
        ),
        "ping-pong": conn_input(f(9, b"Hello") + f(10, b"Hello"), flags=0x06),
        "ping-no-autopong": conn_input(f(9, b"x" * 125), flags=0x04),
        "close-1000-reason": conn_input(f(1, b"a") + f(8, close_payload(1000, b"bye"))),
        "close-empty-manual-reply": conn_input(f(8), flags=0x02),
        "close-one-byte": conn_input(f(8, b"\x03")),
        "close-code-1005": conn_input(f(8, close_payload(1005))),
        "close-bad-utf8": conn_input(f(8, close_payload(1000, b"\xff"))),
        "app-close-then-error": conn_input(f(1, b"a") + f(3), flags=0x86),
        "text-bad-utf8": conn_input(f(1, b"\xce\xba\xff")),
        "reserved-opcode": conn_input(f(3, b"x")),
        "reserved-bits": conn_input(bytes([0x81 | 0x20]) + f(1, b"x")[1:]),
        "control-too-long": conn_input(f(9, b"x" * 126)),
        "fragmented-control": conn_input(f(9, b"x", fin=False)),
        "unexpected-continuation": conn_input(f(0, b"x")),
        "expected-continuation": conn_input(f(1, b"a", fin=False) + f(1, b"b")),
        "message-too-large": conn_input(f(2, b"y" * 1100), lim=0x01),
        "frame-too-large": conn_input(f(2, b"y" * 20), lim=0x0C),
        "len64-msb": conn_input(bytes([0x82, 0xFF if mask else 0x7F, 0x80]) + b"\0" * 7),
        "huge-declared-length": conn_input(bytes([0x82, 0xFF if mask else 0x7F]) + struct.pack(">Q", 1 << 40)),
        "eof-mid-frame": conn_input(f(2, b"abcdef")[:-2], flags=0x26),
        "wrong-masking": conn_input(frame(1, b"Hello", mask=None if mask else KEY)),
        "deflate-hello": conn_input(f(1, HELLO_DEFLATED, rsv1=True), flags=0x47, dc=0x01),
        "deflate-hello-nct": conn_input(
            f(1, HELLO_DEFLATED, rsv1=True) * 2, flags=0x47, dp=0x03 | (2 << 2) | (1 << 5), dc=0x01
        ),
        "deflate-fragmented": conn_input(
            f(1, HELLO_DEFLATED[:3], fin=False, rsv1=True) + f(0, HELLO_DEFLATED[3:]),
            flags=0x57,
            dc=0x81,
            sched=(2, 9),
        ),
        "deflate-big-echo": conn_input(
            f(2, deflate(b"abcdefgh" * 2000), rsv1=True), flags=0x47, dc=0x06
        ),
        "deflate-window8-echo": conn_input(
            f(1, deflate(b"window eight " * 20), rsv1=True), flags=0x47, dp=0xFF, dc=0x10
        ),
        "deflate-rsv1-on-continuation": conn_input(
            f(1, HELLO_DEFLATED, fin=False, rsv1=True) + f(0, b"", rsv1=True), flags=0x07
        ),
        "deflate-garbage": conn_input(f(1, b"\xff\xff\xff\xff", rsv1=True), flags=0x07),
        "deflate-bomb": conn_input(f(2, deflate(b"\0" * 200000), rsv1=True), flags=0x07),
        "many-small": conn_input(b"".join(f(2, bytes([i])) for i in range(40)), flags=0x16, sched=(1, 2, 3)),
        "streamed-fragmented-ping": conn_input(
            f(1, b"Hello, ", fin=False) + f(9, b"p") + f(0, "κόσμε".encode()[:5], fin=False)
            + f(0, "κόσμε".encode()[5:]),
            sched=(3, 5),
            mode=0x08 | (2 << 5),
        ),
        "streamed-utf8-bytewise": conn_input(f(1, "κόσμε".encode()), sched=(1,), mode=0x08 | (1 << 5)),
        "streamed-deflate-bomb": conn_input(
            f(2, deflate(b"\0" * 200000), rsv1=True), flags=0x07, mode=0x08 | (3 << 5)
        ),
        "streamed-deflate-switch": conn_input(
            f(1, HELLO_DEFLATED, rsv1=True) * 3 + f(2, b"plain") + f(1, HELLO_DEFLATED, rsv1=True),
            flags=0x47,
            dc=0x01,
            sched=(4, 11),
            mode=0x18 | (2 << 5),
        ),
        "streamed-close-mid-message": conn_input(
            f(2, b"partial", fin=False) + f(8, b"\x03\xe8"), mode=0x08 | (2 << 5)
        ),
    }
    if role == "server":
        seeds["unmasked-accepted"] = conn_input(
            frame(1, b"Hel", fin=False) + frame(0, b"lo"), flags=0x0E
        )
    for name, data in seeds.items():
        write(target, name, data)

# ---- handshake_request ---------------------------------------------------------------------
REQ = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
for name, data in {
    "rfc6455-1.3": REQ,
    "subprotocols-b-a": REQ.replace(b"chat, superchat", b"b, a"),
    "deflate-offer": REQ.replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    ),
    "deflate-offers-two-lines": REQ.replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"
        b"Sec-WebSocket-Extensions: x-foo, permessage-deflate; client_no_context_takeover\r\n\r\n",
    ),
    "with-first-frame": REQ + frame(1, b"Hello", mask=KEY),
    "http10": REQ.replace(b"HTTP/1.1", b"HTTP/1.0"),
    "post": REQ.replace(b"GET", b"POST"),
    "bad-key": REQ.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"),
    "version-8": REQ.replace(b"Version: 13", b"Version: 8"),
    "lf-only": REQ.replace(b"\r\n", b"\n"),
}.items():
    for selector in (0x80, 0x3B):
        write("handshake_request", f"{name}-{selector:02x}", bytes([selector]) + data)

# ---- handshake_response --------------------------------------------------------------------
RESP = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def with_headers(*lines):
    return RESP.replace(b"\r\n\r\n", b"\r\n" + b"".join(l + b"\r\n" for l in lines) + b"\r\n")


for name, data in {
    "rfc6455-101": RESP,
    "subprotocol-a": with_headers(b"Sec-WebSocket-Protocol: a"),
    "deflate": with_headers(b"Sec-WebSocket-Extensions: permessage-deflate"),
    "deflate-params": with_headers(
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"server_max_window_bits=10; client_max_window_bits=9"
    ),
    "deflate-params-even": with_headers(
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8",
        b"X: y",
    ),
    "deflate-and-subprotocol": with_headers(
        b"Sec-WebSocket-Protocol: b", b"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover"
    ),
    "with-first-frame": RESP + frame(1, b"Hello"),
    "unoffered-extension": with_headers(b"Sec-WebSocket-Extensions: x-foo"),
    "status-400": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad",
}.items():
    for selector in (0x80, 0x3B):
        write("handshake_response", f"{name}-{selector:02x}", bytes([selector]) + data)

# ---- extensions ----------------------------------------------------------------------------
for i, text in enumerate(
    [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12, permessage-deflate",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        'x-webkit-deflate-frame, permessage-deflate; client_max_window_bits="9"',
        "permessage-deflate; server_max_window_bits=8\npermessage-deflate; client_max_window_bits=8",
        "permessage-deflate; foo, Permessage-Deflate; SERVER_MAX_WINDOW_BITS=15",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
    ]
):
    write("extensions", f"offer-{i}", text.encode())

# ---- inflate -------------------------------------------------------------------------------
for name, data in {
    "hello-rfc7692": bytes([0x00]) + HELLO_DEFLATED,
    "hello-text-two-fragments": bytes([0x03]) + HELLO_DEFLATED,
    "hello-twice-takeover": bytes([0x21]) + HELLO_DEFLATED,
    "hello-twice-nct-lowmem": bytes([0x39]) + HELLO_DEFLATED,
    "stored-block": bytes([0x00]) + bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello",
    "bfinal-then-more": bytes([0x00]) + bytes.fromhex("f348cdc9c90700") + HELLO_DEFLATED,
    "text-four-fragments": bytes([0x07]) + deflate("κόσμε ".encode() * 50),
    "bomb-over-1000": bytes([0x40]) + deflate(b"\0" * 5000),
    "bomb-over-1mib": bytes([0x00]) + deflate(b"\0" * ((1 << 20) + 4096)),
    "bomb-over-2.5mib": bytes([0xC0]) + deflate(b"\0" * (3 << 20)),
    "garbage": bytes([0x00]) + b"\xff\xff\xff\xff",
}.items():
    write("inflate", name, data)

# ---- hub_envelope --------------------------------------------------------------------------
ORIGIN = struct.pack(">Q", 0x0102030405060708)
for name, data in {
    "text": b"FSH1" + ORIGIN + b"\x01" + "héllo".encode(),
    "binary": b"FSH1" + ORIGIN + b"\x02" + b"\x00\xff\x80",
    "empty-text": b"FSH1" + ORIGIN + b"\x01",
    "bad-utf8": b"FSH1" + ORIGIN + b"\x01\xc3",
    "unknown-kind": b"FSH1" + ORIGIN + b"\x07x",
    "short": b"FSH1" + ORIGIN,
    "foreign": b"hello, not ours",
}.items():
    write("hub_envelope", name, data)

# ---- h3_frames -------------------------------------------------------------------------------
# First byte: piece size selector; then HTTP/3 frames (RFC 9114 §7) as a stream carries them.
def h3_frame(ty, payload):
    def varint(v):
        if v < 64:
            return bytes([v])
        if v < 16384:
            return struct.pack(">H", v | 0x4000)
        return struct.pack(">I", v | 0x80000000)
    return varint(ty) + varint(len(payload)) + payload

CONNECT = (b"\x00\x00" + b"\xcf"                      # :method CONNECT (static 15)
           + b"\x27\x02:protocol" + b"\x09websocket"  # literal name, literal value
           + b"\xd7"                                  # :scheme https (static 23)
           + b"\x50\x0blocalhost:1"                   # :authority (static name 0)
           + b"\x51\x03/ws"                           # :path (static name 1)
           + b"\x27\x0esec-websocket-version\x0213")
for name, data in {
    "settings": b"\x03" + h3_frame(4, b"\x01\x00\x07\x00\x06\x80\x00\x40\x00\x08\x01"),
    "connect": b"\x00" + h3_frame(1, CONNECT) + h3_frame(0, b"\x81\x80abcd"),
    "huffman-headers": b"\x07" + h3_frame(1, b"\x00\x00\x2f\x01\x25\xa8\x49\xe9\x5b\xa9\x7d\x7f\x89\x25\xa8\x49\xe9\x5b\xb8\xe8\xb4\xbf"),
    "unknown-then-data": b"\x02" + h3_frame(0x21, b"xyz") + h3_frame(0, b"hi"),
    "dynamic-ref": b"\x0f" + h3_frame(1, b"\x02\x00\x80"),
    "huffman-string": b"\x00\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff",
}.items():
    write("h3_frames", name, data)
