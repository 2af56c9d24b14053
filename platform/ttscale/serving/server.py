"""Running the endpoint: the socket bound first, uvicorn on it, the batcher's worker beside it.

`bind` takes the address before anything slow happens (the model loads after it), so a port in
use or an address that cannot be bound is one line at once, not a traceback a minute later.
`run_server` starts the batcher's worker, serves until SIGINT or SIGTERM (uvicorn's own
handlers: it stops accepting, gives answers in flight `GRACE_S` to finish), then closes the
batcher (requests still queued get 503) and returns normally, so the caller's cleanup — the
engine's shutdown — always runs.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket

from ttscale.errors import SpecError
from ttscale.serving.answering import Answerer
from ttscale.serving.app import create_app
from ttscale.serving.batching import Batcher

logger = logging.getLogger(__name__)

GRACE_S = 10
"""Seconds answers in flight get to finish once a stop is asked for (a CPU search can take minutes)."""


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (not listening yet: clients are refused until the
    server runs); SpecError naming the option when it cannot be bound."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as err:
        raise SpecError(f"--host: cannot resolve {host!r}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise SpecError(f"--port: {port} is in use on {host}; choose another port or stop what holds it") from None
        raise SpecError(f"--host/--port: cannot bind {host}:{port}: {err.strerror or err}") from None
    return sock


def run_server(answerer: Answerer, sock: socket.socket, *, max_batch: int) -> None:
    """Serve `answerer` on `sock` until SIGINT or SIGTERM; returns once stopped."""
    import uvicorn

    batcher = Batcher(answerer.answer, max_batch=max_batch)
    app = create_app(answerer, batcher)
    # log_config=None: uvicorn's loggers propagate to the command's log file like every library's.
    config = uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=GRACE_S, server_header=False)
    server = uvicorn.Server(config)
    # While serving, uvicorn's own handlers catch SIGINT/SIGTERM; once stopped it re-raises the
    # signal it caught. Ignored then (the server has stopped), so the caller's cleanup runs.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    batcher.start()
    try:
        server.run(sockets=[sock])
    finally:
        batcher.close(timeout_s=GRACE_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.info("serving stopped: %d searches, batch sizes %s", len(batcher.batch_sizes), batcher.batch_sizes[-20:])
