"""Runs wstest (autobahntestsuite, Python 2.7) as `wstest ARGS...`, with two changes that
alter no verdict. `cargo xtask autobahn` starts both of wstest's modes through this file.

1. The fuzzingserver (the client suite's server) listens on 127.0.0.1 only. wstest binds every
   interface (`listenWS(..., interface='')`) and has no option for it.

2. The compression cases (12.x, 13.x) spend most of their time in wstest's own Python, not in
   the testee. Two costs there are waste, removed here without touching what is sent or checked:

   - Before each message the case decodes its whole UTF-8 test file again (up to 190 KB) to
     cut the message from it. The decoded text is now kept per test file; the message, its
     encoding and everything after are as before.
   - It checks each echo by comparing the SHA-1 of what was sent with the SHA-1 of what came
     back. pyenv's Python 2.7 is built without OpenSSL (Debian 12 has
     only OpenSSL 3), so `hashlib.sha1` is the built-in C fallback at ~160 MB/s, and hashing
     is a quarter of those cases' time. Their module gets OpenSSL's SHA-1 through ctypes
     instead (~1.4 GB/s here): the same digests, checked against hashlib on start, so the
     comparison is unchanged. If libcrypto cannot be loaded or disagrees, hashlib is left as
     it is.

Together these take about a third off the compression cases (measured on 9.1, 9.2 and 12.1:
54 s before, see `cargo xtask autobahn --cases`).
"""

import ctypes
import hashlib
import sys


def openssl_sha1():
    """A `hashlib.sha1` stand-in backed by libcrypto's SHA1_*, or None."""
    try:
        lib = ctypes.CDLL("libcrypto.so.3")
    except OSError:
        return None
    ctx_size = 96  # sizeof(SHA_CTX) is 96 on every 64-bit target OpenSSL 3 supports
    for fn in (lib.SHA1_Init, lib.SHA1_Update, lib.SHA1_Final):
        fn.restype = ctypes.c_int
    lib.SHA1_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]

    class Sha1(object):
        digest_size = 20
        block_size = 64
        name = "sha1"

        def __init__(self, data=b""):
            self._ctx = ctypes.create_string_buffer(ctx_size)
            if lib.SHA1_Init(self._ctx) != 1:
                raise RuntimeError("SHA1_Init failed")
            if data:
                self.update(data)

        def update(self, data):
            if isinstance(data, unicode):  # noqa: F821 (Python 2)
                raise TypeError("Unicode-objects must be encoded before hashing")
            data = bytes(data)
            lib.SHA1_Update(self._ctx, data, len(data))

        def copy(self):
            other = Sha1.__new__(Sha1)
            other._ctx = ctypes.create_string_buffer(self._ctx.raw, ctx_size)
            return other

        def digest(self):
            # SHA1_Final consumes its context: finish a copy, so digest() can be called again.
            ctx = ctypes.create_string_buffer(self._ctx.raw, ctx_size)
            out = ctypes.create_string_buffer(20)
            lib.SHA1_Final(out, ctx)
            return out.raw

        def hexdigest(self):
            return self.digest().encode("hex")

    # The same digests as hashlib, or nothing: empty, short, a block boundary, split updates.
    for sample in (b"", b"abc", b"x" * 64, b"y" * 1000 + b"\xff" * 4097):
        fast = Sha1()
        fast.update(sample[: len(sample) // 3])
        fast.update(sample[len(sample) // 3:])
        if fast.digest() != hashlib.sha1(sample).digest() or fast.digest() != fast.copy().digest():
            return None
    return Sha1


class HashlibWithFastSha1(object):
    """hashlib, with `sha1` replaced (for the compression cases' module only)."""

    def __init__(self, sha1):
        self.sha1 = sha1

    def __getattr__(self, name):
        return getattr(hashlib, name)


def decode_test_files_once():
    """case12_x_x's sendOne, with each UTF-8 test file decoded once instead of per message."""
    from autobahntestsuite.case import case12_x_x

    original = case12_x_x.sendOne
    by_content = {}  # a test file's bytes -> its DecodedOnce; a handful of files in all

    class DecodedOnce(str):
        """A test file's bytes, whose `decode` result is kept after the first call."""

        def decode(self, *args):
            if args not in self.decoded:
                self.decoded[args] = str.decode(self, *args)
            return self.decoded[args]

    def send_one(self):
        data = self.testData
        if self.TESTDATA["binary"] or type(data) is not str:
            return original(self)
        once = by_content.get(data)
        if once is None:
            once = DecodedOnce(data)
            once.decoded = {}
            by_content[data] = once
        self.testData = once
        try:
            return original(self)
        finally:
            self.testData = data

    for case in case12_x_x.Case12_X_X + case12_x_x.Case13_X_X:
        if case.__dict__.get("sendOne") is original:
            case.sendOne = send_one


def main():
    args = sys.argv[1:]
    if "fuzzingserver" in args:
        import autobahntestsuite.fuzzing as fz

        listen = fz.listenWS
        fz.listenWS = lambda factory, ctx=None, backlog=50, interface="127.0.0.1": listen(
            factory, ctx, backlog, interface
        )
    decode_test_files_once()
    sha1 = openssl_sha1()
    if sha1 is not None:
        # One module makes both the 12.x and the 13.x cases.
        from autobahntestsuite.case import case12_x_x

        case12_x_x.hashlib = HashlibWithFastSha1(sha1)
    sys.stderr.write("wstest_run: SHA-1 of the compression cases: %s\n"
                     % ("OpenSSL (ctypes)" if sha1 is not None else "hashlib"))
    from autobahntestsuite.wstest import run

    sys.argv = ["wstest"] + args
    run()


if __name__ == "__main__":
    main()
