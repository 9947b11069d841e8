"""Test payloads shared by the interop helpers (and `python3 payload.py KIND SIZE` for the shell).

kind "binary": random bytes; kind "text": compressible UTF-8 text with multi-byte characters,
exactly SIZE bytes long.
"""

import os
import random
import sys

SIZES = [0, 1, 125, 64 << 10, 1 << 20, 16 << 20]
WORDS = ["the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dogs ", "héllo ", "wörld ",
         "€uro ", "✓ ", "日本語 ", "🦀 ", "\n"]


def text(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed * 1_000_003 + size)
    parts, n = [], 0
    while n < size:
        w = rng.choice(WORDS) if rng.random() < 0.9 else "%08x " % rng.getrandbits(32)
        b = w.encode()
        if n + len(b) > size:
            b = b"x" * (size - n)  # pad with ASCII: the result stays valid UTF-8
        parts.append(b)
        n += len(b)
    return b"".join(parts)


def binary(size: int) -> bytes:
    return os.urandom(size)


def make(kind: str, size: int) -> bytes:
    return text(size) if kind == "text" else binary(size)


if __name__ == "__main__":
    sys.stdout.buffer.write(make(sys.argv[1], int(sys.argv[2])))
