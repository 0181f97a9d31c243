"""The tunnel daemon: hosts the engine and moves packets between the TUN and the network.

Event loop: a small ``selectors`` (epoll) loop of our own rather than asyncio. The data
path is a handful of file descriptors, each drained in batches per readiness callback;
asyncio's ``add_reader`` adds a Handle allocation and a ready-queue round per callback
for nothing we use (measured: see ``SelectorLoop``). The loop offers asyncio's
``add_reader``/``add_writer``/``call_at`` names, so the servers in ``control`` run on
either.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pyipsec.daemon")


class TimerHandle:
    """A scheduled call; ``cancel()`` makes the loop skip it."""

    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


_Callback = tuple[Callable[..., object], tuple[Any, ...]]


class SelectorLoop:
    """An epoll loop: readers, writers, timers on the monotonic clock, signals.

    Signals are delivered through ``signal.set_wakeup_fd`` and run as ordinary callbacks
    between two polls, never inside the interrupted code.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._running = False
        self._signal_handlers: dict[int, _Callback] = {}
        self._pending_signals: list[int] = []
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    @staticmethod
    def time() -> float:
        return time.monotonic()

    # -- file descriptors -----------------------------------------------------------
    def _update(self, fd: int, slot: int, cb: _Callback | None) -> None:
        try:
            key = self._selector.get_key(fd)
            data: list[_Callback | None] = key.data
        except KeyError:
            key = None
            data = [None, None]
        data[slot] = cb
        events = (selectors.EVENT_READ if data[0] else 0) | (
            selectors.EVENT_WRITE if data[1] else 0
        )
        if key is None:
            if events:
                self._selector.register(fd, events, data)
        elif events:
            self._selector.modify(fd, events, data)
        else:
            self._selector.unregister(fd)

    def _has(self, fd: int, slot: int) -> bool:
        try:
            return self._selector.get_key(fd).data[slot] is not None
        except KeyError:
            return False

    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None:
        self._update(fd, 0, (callback, args))

    def remove_reader(self, fd: int) -> bool:
        if not self._has(fd, 0):
            return False
        self._update(fd, 0, None)
        return True

    def add_writer(self, fd: int, callback: Callable[..., object], *args: Any) -> None:
        self._update(fd, 1, (callback, args))

    def remove_writer(self, fd: int) -> bool:
        if not self._has(fd, 1):
            return False
        self._update(fd, 1, None)
        return True

    # -- timers ---------------------------------------------------------------------
    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        handle = TimerHandle(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), handle))
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return self.call_at(self.time() + delay, callback, *args)

    # -- signals --------------------------------------------------------------------
    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        if self._wake_w is None:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
            self.add_reader(self._wake_r.fileno(), self._drain_wakeup)
        self._signal_handlers[sig] = (callback, args)
        signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._pending_signals.append(signum)

    def _drain_wakeup(self) -> None:
        if self._wake_r is None:
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._wake_r.recv(4096):
                pass

    def _run_signals(self) -> None:
        while self._pending_signals:
            signum = self._pending_signals.pop(0)
            entry = self._signal_handlers.get(signum)
            if entry is not None:
                entry[0](*entry[1])

    # -- running --------------------------------------------------------------------
    def stop(self) -> None:
        self._running = False

    def run_once(self, max_wait: float | None = None) -> None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        timeout = max_wait
        if timers:
            delay = max(timers[0][0] - self.time(), 0.0)
            timeout = delay if timeout is None else min(timeout, delay)
        for key, events in self._selector.select(timeout):
            data = key.data
            if events & selectors.EVENT_READ and data[0] is not None:
                data[0][0](*data[0][1])
            if events & selectors.EVENT_WRITE and data[1] is not None:
                data[1][0](*data[1][1])
        self._run_signals()
        now = self.time()
        while timers and timers[0][0] <= now:
            _, _, handle = heapq.heappop(timers)
            if not handle.cancelled:
                handle.callback(*handle.args)

    def run_forever(self) -> None:
        self._running = True
        while self._running:
            self.run_once()

    def close(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)
            for sig in self._signal_handlers:
                signal.signal(sig, signal.SIG_DFL)
            self._wake_w.close()
            if self._wake_r is not None:
                self._wake_r.close()
            self._wake_w = self._wake_r = None
        self._selector.close()
