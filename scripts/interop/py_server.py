"""Python `websockets` echo server with permessage-deflate (its defaults: both windows 12 bits).

usage: py_server.py  -> prints "LISTENING <port>" (127.0.0.1, a free port), then
"EXT <negotiated Sec-WebSocket-Extensions or none>" for each connection. Stops on SIGTERM.
"""

import asyncio
import signal

from websockets.asyncio.server import serve


async def echo(ws):
    print("EXT", ws.response.headers.get("Sec-WebSocket-Extensions") or "none", flush=True)
    async for message in ws:
        await ws.send(message)


async def main():
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(echo, "127.0.0.1", 0, max_size=None, compression="deflate",
                     ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("LISTENING", port, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
