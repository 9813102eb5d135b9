"""The parent's side of a helper process that answers numbered requests over a pipe.

The mailer's compose helper (:mod:`mailer.compose_process`) is one: a child
``python -m <module>`` reading requests on stdin and writing
answers on stdout; the requests of one turn of the event loop go in one pipe write;
answers are matched to requests by number, so they may come back in any order. If the
child dies, every pending and later request raises the helper's ``Unavailable`` error
and the caller does the work itself, asking :meth:`PipedHelper.revive` to start a new
child (at most once per :attr:`PipedHelper.restart_interval_s`), so a crash costs speed
for a moment, not for the rest of the pod's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from typing import Generic, TypeVar

from mailer.mailer_metrics import HELPER_RESTARTS
from shared.errors import BridgeError

__all__ = ["HelperUnavailable", "PipedHelper", "write_answers"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class HelperUnavailable(BridgeError, RuntimeError):
    """The helper process is not running (never started, exited or closed)."""


class PipedHelper(Generic[T]):
    """Subclasses say how a request is framed (:meth:`_frame`) and how one answer is read
    (:meth:`_read_answer`); this class runs the child and matches answers to requests."""

    unavailable: type[HelperUnavailable] = HelperUnavailable
    what = "helper process"  # for the log line when the child exits
    restart_interval_s = 10.0  # a child that keeps dying is restarted no more often

    def __init__(self, module: str, *args: str, first: bytes = b"") -> None:
        self._argv = [sys.executable, "-m", module, *args]
        self._first = first  # written before any request (e.g. the child's settings)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[T]] = {}
        self._next = 0
        self._outbox = bytearray()
        self._outbox_numbers: list[int] = []
        self._closing = False  # close() ends the child: its exit is not an error then
        self._started_at = 0.0
        self._reviving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._started_at = time.monotonic()
        self._process = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        if self._first:
            assert self._process.stdin is not None
            self._process.stdin.write(self._first)
        self._reader = asyncio.create_task(self._read_answers(), name=f"{self.what} answers")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return (
            self._process is not None
            and self._process.returncode is None
            and self._reader is not None
            and not self._reader.done()
        )

    def revive(self) -> None:
        """Start a new child in the background if this one has died (not if it was closed,
        and at most once per ``restart_interval_s``); callers fall back meanwhile."""
        if (
            self._closing
            or self._process is None
            or self.alive
            or (self._reviving is not None and not self._reviving.done())
            or time.monotonic() - self._started_at < self.restart_interval_s
        ):
            return
        self._reviving = asyncio.get_running_loop().create_task(
            self._restart(), name=f"{self.what} restart"
        )

    async def _restart(self) -> None:
        old = self._process
        if old is not None and old.returncode is None:
            old.kill()  # its answers can no longer be read: a new child replaces it
            await old.wait()
        if self._closing:
            return
        HELPER_RESTARTS.labels(self.what).inc()
        log.warning("restarting helper process", extra={"helper": self.what})
        try:
            await self.start()
        except OSError as exc:
            log.error(
                "cannot restart helper process", extra={"helper": self.what, "error": str(exc)}
            )

    async def _request(self, payload: bytes) -> T:
        if not self.alive:
            raise self.unavailable(f"the {self.what} is not running")
        number = self._next
        self._next = (self._next + 1) % 2**32
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._pending[number] = answer
        if not self._outbox:
            loop.call_soon(self._flush)  # one pipe write for all requests of this turn
        self._outbox += self._frame(number, payload)
        self._outbox_numbers.append(number)
        return await answer

    def _frame(self, number: int, payload: bytes) -> bytes:
        raise NotImplementedError

    async def _read_answer(self, stdout: asyncio.StreamReader) -> tuple[int, T | Exception]:
        """The next answer's request number and its result (or the error to raise)."""
        raise NotImplementedError

    def _flush(self) -> None:
        requests, self._outbox = bytes(self._outbox), bytearray()
        numbers, self._outbox_numbers = self._outbox_numbers, []
        process = self._process
        try:
            if process is None or process.stdin is None:
                raise ConnectionError("closed")
            process.stdin.write(requests)
        except (ConnectionError, RuntimeError) as exc:
            for number in numbers:
                waiter = self._pending.pop(number, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(self.unavailable(f"the {self.what} is gone: {exc}"))

    async def _read_answers(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        try:
            while True:
                number, result = await self._read_answer(stdout)
                waiter = self._pending.pop(number, None)
                if waiter is None or waiter.done():
                    continue
                if isinstance(result, Exception):
                    waiter.set_exception(result)
                else:
                    waiter.set_result(result)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not self._closing:
                log.error(
                    "helper process exited; its work is done on the event loop now",
                    extra={"helper": self.what, "error": str(exc)},
                )
        finally:
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(self.unavailable(f"the {self.what} exited"))
            self._pending.clear()

    async def close(self) -> None:
        self._closing = True
        if self._reviving is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reviving
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()  # EOF: the child's loop ends
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def write_answers(fd: int, answers: bytes | bytearray) -> bool:
    """The child's side: write all of ``answers`` to the parent; False once it is gone."""
    view = memoryview(answers)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BrokenPipeError:
            return False
    return True
