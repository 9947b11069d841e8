// Test payloads for the Node helpers (same shapes as payload.py): random binary, or
// compressible UTF-8 text with multi-byte characters, exactly `size` bytes.
import { randomBytes } from 'node:crypto';

export const SIZES = [0, 1, 125, 64 << 10, 1 << 20, 16 << 20];
const WORDS = ['the ', 'quick ', 'brown ', 'fox ', 'jumps ', 'over ', 'lazy ', 'dogs ', 'héllo ', 'wörld ',
  '€uro ', '✓ ', '日本語 ', '🦀 ', '\n'].map((w) => Buffer.from(w));

export function text(size, seed = 1) {
  let x = (seed * 1000003 + size) >>> 0 || 1;
  const next = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  const parts = [];
  let n = 0;
  while (n < size) {
    let b = next() % 10 < 9 ? WORDS[next() % WORDS.length] : Buffer.from(next().toString(16).padStart(8, '0') + ' ');
    if (n + b.length > size) b = Buffer.alloc(size - n, 'x');
    parts.push(b);
    n += b.length;
  }
  return Buffer.concat(parts, size);
}

export const make = (kind, size) => (kind === 'text' ? text(size) : randomBytes(size));
