"""Python `websockets` as a client of an echo server: sends each size of each kind, checks
the echo is byte-identical, and that permessage-deflate was negotiated.

usage: py_client.py URL LABEL [--sizes 0,1,...] [--offer default|params] [--timeout SECS]
Prints one line per message: RESULT <label> <kind> <size> <ok|FAIL> <negotiated extension>
<milliseconds> [detail]; exit status 1 if any failed.
"""

import argparse
import asyncio
import sys
import time

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import payload


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("label")
    ap.add_argument("--sizes", default=",".join(map(str, payload.SIZES)))
    ap.add_argument("--offer", choices=["default", "params"], default="default")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    kwargs = {}
    if args.offer == "params":
        # Every parameter, with windows smaller than the defaults: the server must honour them.
        kwargs["extensions"] = [ClientPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=10, client_max_window_bits=9)]
        kwargs["compression"] = None
    failed, lost = 0, None
    async with connect(args.url, max_size=None, open_timeout=10, close_timeout=5,
                       ping_interval=None, **kwargs) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions") or "none"
        for kind in ("text", "binary"):
            for size in sizes:
                data = payload.make(kind, size)
                t0 = time.monotonic()
                ok, detail = False, ""
                if lost:
                    detail = f"not run: {lost}"
                else:
                    try:
                        await asyncio.wait_for(ws.send(data.decode() if kind == "text" else data),
                                               args.timeout)
                        reply = await asyncio.wait_for(ws.recv(), args.timeout)
                        got = reply.encode() if isinstance(reply, str) else reply
                        ok = got == data and isinstance(reply, str) == (kind == "text")
                        if not ok:
                            detail = f"echo differs: {len(got)} bytes, {type(reply).__name__}"
                    except Exception as e:  # the connection is gone: report the rest as not run
                        lost = detail = f"{type(e).__name__}: {e}".replace("\t", " ").replace("\n", " ")
                ms = (time.monotonic() - t0) * 1000
                if not negotiated.startswith("permessage-deflate"):
                    ok, detail = False, (detail + " compression not negotiated").strip()
                failed += not ok
                print(f"RESULT\t{args.label}\t{kind}\t{size}\t{'ok' if ok else 'FAIL'}\t{negotiated}"
                      f"\t{ms:.0f}\t{detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
