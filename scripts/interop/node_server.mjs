// Node `ws` echo server with permessage-deflate on (threshold 0: every message compressed).
//
// usage: node node_server.mjs -> prints "LISTENING <port>" (127.0.0.1, a free port), then
// "EXT <negotiated Sec-WebSocket-Extensions or none>" for each connection. Stops on SIGTERM.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: { threshold: 0 },
  maxPayload: 64 << 20,
});
wss.on('headers', (headers) => {
  const ext = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
  console.log('EXT', ext ? ext.slice(ext.indexOf(':') + 1).trim() : 'none');
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log('LISTENING', wss.address().port));
process.on('SIGTERM', () => { wss.close(); for (const c of wss.clients) c.terminate(); process.exit(0); });
