"""A wall-clock deadline and a cancel switch for every byte an endpoint request moves.

httpx's timeouts bound each socket operation, not the request: a server that sends one byte every two seconds
never trips a ten-second read timeout, and keeps a run waiting as long as it likes. httpcore, under httpx,
lets a network backend wrap the sockets; the one here clips every connect, write and read to what is left of
the calling thread's budget (a request's I/O runs in the thread that sent it), and waits in short slices so
that a cancelled run (Ctrl-C) lets go of its sockets within a fraction of a second instead of holding the
process open until the server answers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore2
import httpx2

SLICE_S = 0.1
"""The longest a read waits before it looks at the deadline and the cancel switch again."""


class Cancelled(Exception):
    """The run stopped (Ctrl-C): a request in flight gives up its socket."""


class _Budget(threading.local):
    """The deadline of the request the current thread is sending, and the switch that cancels it."""

    deadline: float = math.inf
    cancel: threading.Event | None = None

    def left(self, timeout: float | None, kind: type[httpcore2.TimeoutException]) -> float:
        """Seconds this operation may wait: its own timeout, clipped to the request's deadline."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the run was interrupted")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise kind("the request's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)


_budget = _Budget()


@contextmanager
def deadline(seconds: float, cancel: threading.Event) -> Iterator[None]:
    """Bound every network operation this thread starts inside the block to `seconds` from now, all together."""
    _budget.deadline, _budget.cancel = time.monotonic() + seconds, cancel
    try:
        yield
    finally:
        _budget.deadline, _budget.cancel = math.inf, None


class _Stream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # A socket read that times out has consumed nothing, so it can be asked again: wait in slices, looking at
        # the deadline and the cancel switch between them, until the operation's own timeout is spent.
        until = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            wait = min(_budget.left(until - time.monotonic(), httpcore2.ReadTimeout), SLICE_S)
            if wait <= 0:
                raise httpcore2.ReadTimeout("timed out")
            try:
                return self._stream.read(max_bytes, wait)
            except httpcore2.ReadTimeout:
                continue

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _budget.left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        left = _budget.left(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore2.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        left = _budget.left(timeout, httpcore2.ConnectTimeout)
        return _Stream(super().connect_tcp(host, port, left, local_address, socket_options))


_BACKEND = _Backend()


def keep_deadlines(client: httpx2.Client) -> None:
    """Put the deadline-keeping backend under every connection pool of `client`: its own transport and the
    proxies httpx mounted from the environment (`HTTPS_PROXY`), so its TLS, proxy and pool settings stay httpx's.
    httpx takes no network backend of its own; its transports hold httpcore pools, which read it per connection."""
    for transport in [client._transport, *client._mounts.values()]:
        if isinstance(transport, httpx2.HTTPTransport):  # not a test's mock transport, which moves no bytes
            transport._pool._network_backend = _BACKEND
