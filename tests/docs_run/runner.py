"""Runs one ```python block of the docs the way a reader would: the prelude that defines the
names the page takes from its prose, then the block, then (optionally) an epilogue that checks
what the block promises, all in one `__main__` namespace.

    python runner.py PAGE FIRST_LINE PRELUDE.py BLOCK.py [EPILOGUE.py]

The block is compiled under the page's path with its own line numbers, so a traceback points
at the line of the Markdown file. Any connection to a host other than this machine is refused
and reported on stderr with NETWORK_MARK: the docs must run offline.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

NETWORK_MARK = "docs-run: network refused:"
LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0"}


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0] if isinstance(address, tuple) and address else None
    return host in LOCAL_HOSTS or str(host).startswith("127.")


def refuse_the_network() -> None:
    """Connections and name lookups of other hosts fail (OSError), and say so on stderr."""

    def refused(what):
        print(f"{NETWORK_MARK} {what!r}", file=sys.stderr, flush=True)
        return OSError(f"the docs tests run offline: {what!r}")

    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def guarded_connect(self, address):
        if not _is_local(address):
            raise refused(address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if not _is_local(address):
            raise refused(address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not _is_local((name,)):
            raise refused(name)
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo


def main(page: str, first_line: str, prelude: str, block: str, epilogue: str | None = None):
    sys.path[0] = os.getcwd()  # as `python script.py` run from the reader's folder
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/: docs_run.tiny
    refuse_the_network()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(Path(prelude).read_text(), f"<prelude of {page}>", "exec"), namespace)
    code = "\n" * (int(first_line) - 1) + Path(block).read_text()
    exec(compile(code, page, "exec"), namespace)
    if epilogue:
        exec(compile(Path(epilogue).read_text(), f"<epilogue of {page}>", "exec"), namespace)


if __name__ == "__main__":
    main(*sys.argv[1:])
