// Node `ws` as a client of an echo server: sends each size of each kind, checks the echo is
// byte-identical and that permessage-deflate was negotiated.
//
// usage: node node_client.mjs URL LABEL [SIZES (comma-separated)] [TIMEOUT_SECS]
// Prints RESULT lines like py_client.py; exit status 1 if any failed.
import WebSocket from 'ws';
import { SIZES, make } from './payload.mjs';

const [url, label, sizesArg, timeoutArg] = process.argv.slice(2);
const sizes = sizesArg ? sizesArg.split(',').filter(Boolean).map(Number) : SIZES;
const timeoutMs = Number(timeoutArg || 60) * 1000;

let negotiated = 'none';
const ws = new WebSocket(url, {
  // Compress every message (ws's default threshold leaves those under 1 KiB alone).
  perMessageDeflate: { threshold: 0 },
  maxPayload: 64 << 20,
  handshakeTimeout: 10000,
});
ws.on('upgrade', (res) => { negotiated = res.headers['sec-websocket-extensions'] || 'none'; });

const inbox = [];
let waiter = null;
ws.on('message', (data, isBinary) => {
  inbox.push({ data, isBinary });
  if (waiter) waiter();
});
let closed = null;
ws.on('close', (code, reason) => { closed = `closed ${code} ${reason}`; if (waiter) waiter(); });
ws.on('error', (e) => { closed = `error ${e.message}`; if (waiter) waiter(); });

function recv() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
    const check = () => {
      if (inbox.length) { clearTimeout(timer); waiter = null; resolve(inbox.shift()); }
      else if (closed) { clearTimeout(timer); waiter = null; reject(new Error(closed)); }
    };
    waiter = check;
    check();
  });
}

await new Promise((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
}).catch((e) => { console.error(`${label}: cannot connect: ${e.message}`); process.exit(1); });

let failed = 0;
let lost = null;
for (const kind of ['text', 'binary']) {
  for (const size of sizes) {
    const data = make(kind, size);
    const t0 = performance.now();
    let ok = false;
    let detail = '';
    if (lost) {
      detail = `not run: ${lost}`;
    } else {
      try {
        ws.send(kind === 'text' ? data.toString('utf8') : data, { binary: kind === 'binary' });
        const reply = await recv();
        ok = reply.isBinary === (kind === 'binary') && Buffer.compare(reply.data, data) === 0;
        if (!ok) detail = `echo differs: ${reply.data.length} bytes, binary=${reply.isBinary}`;
      } catch (e) {
        lost = e.message;
        detail = e.message;
      }
    }
    if (!negotiated.startsWith('permessage-deflate')) { ok = false; detail = `${detail} compression not negotiated`.trim(); }
    if (!ok) failed++;
    console.log(['RESULT', label, kind, size, ok ? 'ok' : 'FAIL', negotiated,
      (performance.now() - t0).toFixed(0), detail].join('\t'));
  }
}
ws.close(1000);
await Promise.race([new Promise((r) => ws.once('close', r)), new Promise((r) => setTimeout(r, 5000))]);
process.exit(failed ? 1 : 0);
